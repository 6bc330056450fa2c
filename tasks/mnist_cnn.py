"""MNIST CNN: the Keras "simple MNIST convnet" (two VALID 3x3 convolutions, two 2x2 poolings).

Data: MNIST 60000/10000, pixels scaled to [0, 1], NHWC float32 (28, 28, 1). Up to 30 epochs with
early stopping on val_loss. The Keras example also has Dropout(0.5) before the last Dense layer;
the suite's recipe (issue 2) leaves it out, so its 34,826 parameters are the example's.
"""

from tasks.spec import AccuracyGate, Conv2D, Dense, Flatten, Loss, MaxPool2D, Recipe, Task

TASK = Task(
    name="mnist_cnn",
    dataset="mnist",
    input_shape=(28, 28, 1),
    input_dtype="float32",
    layers=(
        Conv2D(32, (3, 3), "relu"),
        MaxPool2D((2, 2)),
        Conv2D(64, (3, 3), "relu"),
        MaxPool2D((2, 2)),
        Flatten(),
        Dense(10, "softmax"),
    ),
    recipe=Recipe(
        loss=Loss.CATEGORICAL,
        batch_size=128,
        max_epochs=30,
        early_stopping=True,
        target_val_accuracy=0.99,
    ),
    n_params=34_826,
    gate=AccuracyGate(min_full=0.985, min_quick=0.85, tolerance=0.005),
    quick={"n_train": 6000, "n_test": 1000, "epochs": 2},
)
