"""deep_experiments: federated training with the edge-case backdoor against every Table 1 defence.

Tasks: CIFAR-10 (ResNet-18), Twitter / Sent140 (LSTM on GloVe), phishing (an MLP on 45
features; synthetic and Spambase stand-ins). Every defence is a rule of the shared core,
``invariant_aggregator``. A run is a function call (:func:`load_config`, then :func:`run`);
attacks are objects in :mod:`deep_experiments.attacks`; results and tables are owned by
:mod:`deep_experiments.results`. Command line: ``python -m deep_experiments --help``.
"""

from . import attacks, results
from .api import load_config, run, run_config, table1
from .attacks import build_attack, project_to_ball
from .config import resolve
from .defences import TABLE1_ROWS, build_rule, resolve_defence
from .engine import Run, evaluate, local_train
from .errors import DataMissing, ExperimentError
from .samples import FederatedTask, Samples
from .tasks import TASKS, build_task, data_overrides

__all__ = [
    "DataMissing",
    "ExperimentError",
    "FederatedTask",
    "Run",
    "Samples",
    "TABLE1_ROWS",
    "TASKS",
    "attacks",
    "build_attack",
    "build_rule",
    "build_task",
    "data_overrides",
    "evaluate",
    "load_config",
    "local_train",
    "project_to_ball",
    "resolve",
    "resolve_defence",
    "results",
    "run",
    "run_config",
    "table1",
]
