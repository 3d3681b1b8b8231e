"""A run is a function call: :func:`load_config`, then :func:`run`.

The command line, the benchmarks, the tests and every tool built on the experiments start runs
here; nothing outside ``cli.py`` parses arguments.

>>> import tempfile
>>> import deep_experiments as de
>>> cfg = de.load_config("phishing", overrides={"federation.rounds": 2, "federation.n_clients": 10,
...                      "federation.clients_per_round": 5, "data.samples_per_client": 40, "data.n_test": 100})
>>> with tempfile.TemporaryDirectory() as out:
...     summary = de.run(cfg, "invariant", seed=0, out=out, progress=False)
>>> summary["rounds"], sorted(summary["config"]["defence"]["params"])
(2, ['alpha', 'tau'])
"""

from __future__ import annotations

import numbers

from .config import load_config, with_overrides
from .defences import resolve_defence, setting_overrides
from .engine import Run
from .errors import ExperimentError
from .tasks import data_overrides

__all__ = ["load_config", "run_config", "run"]

RUN_KEYS = ("seed", "defence")  # what a run adds to the task's configuration


def run_config(
    config: dict, defence: str, *, seed: int = 0, params=None, data=None, download: bool = False, device=None
) -> dict:
    """The complete configuration of one run: ``config`` (from :func:`load_config`) with the
    data location, the defence's own settings (``no_attack``: no malicious client;
    ``freeze_layers``: clients train the last layer only) and the device applied, the seed, and
    the defence with its hyperparameters resolved (packaged defaults <- ``params``)."""
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or not 0 <= seed < 2**63:
        raise ExperimentError(f"seed must be an integer in [0, 2**63), got {seed!r}")
    base = {k: v for k, v in config.items() if k not in RUN_KEYS}
    overrides = data_overrides(base["task"], data, download) | setting_overrides(defence)
    if device is not None:
        overrides["runtime.device"] = str(device)
    cfg = with_overrides(base, overrides)
    cfg["seed"] = int(seed)
    cfg["defence"] = resolve_defence(defence, dict(params or {}), cfg, int(seed))
    return cfg


def run(
    config: dict,
    defence: str,
    *,
    seed: int = 0,
    out,
    params=None,
    data=None,
    download: bool = False,
    device=None,
    restart: bool = False,
    progress: bool = True,
) -> dict:
    """Train one federated run of ``defence`` (a rule of the core, ``no_attack`` or
    ``freeze_layers``) into the folder ``out`` and return its summary, which is also written to
    ``out/summary.json``. A run that was interrupted resumes from its checkpoint; another
    configuration in ``out`` is refused unless ``restart``."""
    cfg = run_config(config, defence, seed=seed, params=params, data=data, download=download, device=device)
    return Run(cfg, out, restart=restart).run(progress=progress)
