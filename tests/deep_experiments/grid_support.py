"""Training functions for the grid tests (module level, so that worker processes and Ray tasks
import them by name): a run that fails on its first attempt, and one that always fails."""

import os
from pathlib import Path

from deep_experiments.grid import train_run

FAILED_ONCE = ".failed-once"


def fail_first_attempt(cfg, folder, restart=False):
    """Raise on the first attempt of each folder (leaving a marker), then train for real."""
    marker = Path(folder) / FAILED_ONCE
    if not marker.exists():
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text("the first attempt failed on purpose")
        raise RuntimeError(f"planned first-attempt failure of {folder}")
    train_run(cfg, folder, restart)


def always_fail(cfg, folder, restart=False):
    raise ValueError(f"planned failure of {folder} (seed {cfg['seed']})")


def die_on_first_attempt(cfg, folder, restart=False):
    """Kill the worker process on the first attempt of each folder (as the OOM killer would)."""
    marker = Path(folder) / ".died-once"
    if not marker.exists():
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text("the worker died on purpose")
        os._exit(3)
    train_run(cfg, folder, restart)
