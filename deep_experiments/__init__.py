"""deep_experiments: federated training with the edge-case backdoor against every Table 1 defence.

Tasks: CIFAR-10 (ResNet-18), Twitter / Sent140 (LSTM on GloVe), phishing (an MLP on 45
features; synthetic and Spambase stand-ins). Every defence is a rule of the shared core,
``invariant_aggregator``. Command line: ``python -m deep_experiments --help``.
"""

from .config import resolve
from .defences import TABLE1_ROWS, resolve_defence
from .engine import Run, evaluate, local_train, project_to_ball
from .errors import DataMissing, ExperimentError
from .tasks import TASKS, FederatedTask, build_task

__all__ = [
    "DataMissing",
    "ExperimentError",
    "FederatedTask",
    "Run",
    "TABLE1_ROWS",
    "TASKS",
    "build_task",
    "evaluate",
    "local_train",
    "project_to_ball",
    "resolve",
    "resolve_defence",
]
