"""Framework-neutral task definitions. Import numpy and the standard library only, never a framework."""

from tasks.imdb_lstm import TASK as IMDB_LSTM
from tasks.imdb_transformer import TASK as IMDB_TRANSFORMER
from tasks.iris_mlp import TASK as IRIS_MLP
from tasks.mnist_cnn import TASK as MNIST_CNN
from tasks.spec import Task

TASKS: dict[str, Task] = {t.name: t for t in (IRIS_MLP, MNIST_CNN, IMDB_LSTM, IMDB_TRANSFORMER)}
