"""Iris MLP: the Keras tutorial's 4-feature, 3-class multilayer perceptron.

Data: the 150-row Iris table; a stratified 80/20 train/test split with a fixed seed; features
standardised with the training rows' mean and standard deviation. 100 epochs, no early stopping.
"""

from tasks.spec import AccuracyGate, Dense, Loss, Recipe, Task

TASK = Task(
    name="iris_mlp",
    dataset="iris",
    input_shape=(4,),
    input_dtype="float32",
    layers=(
        Dense(32, "relu"),
        Dense(32, "relu"),
        Dense(32, "relu"),
        Dense(3, "softmax"),
    ),
    recipe=Recipe(
        loss=Loss.CATEGORICAL,
        batch_size=16,
        max_epochs=100,
        early_stopping=False,
        target_val_accuracy=0.90,
    ),
    n_params=2_371,
    gate=AccuracyGate(min_full=0.80, min_quick=0.80, tolerance=0.07),  # 30 test rows: 0.033 each
    quick={},  # the quick profile runs Iris exactly as the full one: it takes seconds
    seed_gap="the seed gives no loss, optimizer, batch, epochs or split: all of the recipe is ours",
)
