"""IMDB LSTM: the Keras sentiment tutorial (Embedding -> Dropout -> LSTM -> Dense sigmoid).

Data: the 25000/25000 raw Stanford reviews, turned into Keras-compatible integer sequences of
length 80 (see tasks/data.py: `encode_review` documents the exact tokenisation).

The seed writes `LSTM(128, dropout=0.2, recurrent_dropout=0.2)`. `recurrent_dropout` is left out on
purpose: only Keras implements it, and it disables Keras's fused (cuDNN-style) LSTM kernel, so no
other framework could train the same model at a comparable speed. The input Dropout(0.2) is kept.
Keras keeps one LSTM bias vector (2,691,713 parameters). PyTorch and MXNet store two; their adapters freeze
the second at zero, so every framework trains the same 2,691,713.
"""

from tasks.spec import LSTM, AccuracyGate, Dense, Dropout, Embedding, Loss, Recipe, Task

VOCAB = 20_000
MAXLEN = 80

TASK = Task(
    name="imdb_lstm",
    dataset="imdb",
    input_shape=(MAXLEN,),
    input_dtype="int32",
    layers=(
        Embedding(VOCAB, 128),
        Dropout(0.2),
        LSTM(128),
        Dense(1, "sigmoid"),
    ),
    recipe=Recipe(
        loss=Loss.BINARY,
        batch_size=32,
        max_epochs=15,
        early_stopping=True,
        target_val_accuracy=0.80,
    ),
    n_params=2_691_713,
    gate=AccuracyGate(min_full=0.80, min_quick=0.55, tolerance=0.02),
    quick={"n_train": 2500, "n_test": 1000, "epochs": 1},
)
