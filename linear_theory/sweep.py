"""The sweep: every check over its grid of regimes, seeded, resumable.

Each family of checks (one claim) is a task with its own seed derived from the sweep's seed, so
families are reproducible one by one; finished families are kept in a checkpoint directory and
a rerun with the same settings picks up where an interrupted one stopped.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from invariant_aggregator import write_json_atomic

from . import corollary9, failure_modes, simulation, theorem4, theorem5, theorem8
from .laws import make_law

GRIDS = {
    "full": {
        "theorem_4": {
            "laws": [
                ("gaussian", {}),
                ("student_t3", {}),
                ("lognormal", {}),
                ("rare_atom", {"p": 0.02}),
                ("rare_atom", {"p": 0.2}),
            ],
            "ns": {100: 20000, 1000: 4000},
            "etas": (0.0, 0.01, 0.02, 0.05),
            "deltas": (0.05, 0.5),
            "cs": (0.5, 1.0, 2.0, 4.0),
        },
        "theorem_5": {
            "laws": ("gaussian", "cantelli", "student_t3", "lognormal"),
            "ns": (10, 20, 100),
            "etas": (0.0, 0.1, 0.2, 0.3),
            "taus": (0.2, 0.6, 0.9),
            "phis": (0.5, 1.0, 2.0, 3.0, 5.0),
            "trials": 4000,
        },
        "theorem_8": {"replicates": 3, "mc_samples": 4000},
        "corollary_9": {},
        "failure_modes": {"trials": 20000},
        "simulation_d1": {"rounds": 100, "seeds": 10},
    },
    "quick": {
        "theorem_4": {
            "laws": [("gaussian", {}), ("rare_atom", {"p": 0.2})],
            "ns": {100: 4000, 1000: 1000},
            "etas": (0.0, 0.02),
            "deltas": (0.5,),
            "cs": (0.5, 1.0, 2.0),
        },
        "theorem_5": {
            "laws": ("gaussian", "cantelli"),
            "ns": (10, 20),
            "etas": (0.0, 0.2),
            "taus": (0.2, 0.6),
            "phis": (1.0, 2.0, 3.0),
            "trials": 1000,
        },
        "theorem_8": {"replicates": 1, "mc_samples": 2000},
        "corollary_9": {"ns": (5, 20), "fractions": (0.2, 0.45), "trigger_mus": (-2.0, 2.0), "spreads": (1.0,)},
        "failure_modes": {
            "trials": 4000,
            "malicious": (2, 4),
            "taus": (0.4, 0.6),
            "alphas": (0.2,),
            "laws": ("gaussian",),
        },
        "simulation_d1": {"rounds": 30, "seeds": 4},
    },
}
FAMILIES = tuple(GRIDS["full"])


def _theorem_4(grid, rng):
    records = [theorem4.ill_posed_record()]
    for (name, shape), (n, trials), eta, delta in itertools.product(
        grid["laws"], grid["ns"].items(), grid["etas"], grid["deltas"]
    ):
        law = make_law(name, 1.0, 1.0, **shape)
        records += theorem4.check(law, n, round(eta * n), delta, grid["cs"], rng=rng, trials=trials)
    return records


def _theorem_5(grid, rng):
    records = []
    for name, phi, n in itertools.product(grid["laws"], grid["phis"], grid["ns"]):
        benign = make_law(name, phi, 1.0).sample(rng, (n, grid["trials"]))  # shared by every N', tau
        for eta, tau in itertools.product(grid["etas"], grid["taus"]):
            records += theorem5.check(name, n, round(eta * n), tau, phi, rng=rng, trials=grid["trials"], benign=benign)
    return records


def _simulation(grid, rng):
    cfg = simulation.SimulationConfig(rounds=grid["rounds"], seeds=grid["seeds"])
    return simulation.check(seed=int(rng.integers(2**31)), cfg=cfg)


TASKS = {
    "theorem_4": _theorem_4,
    "theorem_5": _theorem_5,
    "theorem_8": lambda grid, rng: theorem8.check(rng=rng, **grid),
    "corollary_9": lambda grid, rng: corollary9.check(rng=rng, **grid),
    "failure_modes": lambda grid, rng: failure_modes.check(rng=rng, **grid),
    "simulation_d1": _simulation,
}


def _key(family: str, grid: dict, seed: int) -> str:
    blob = json.dumps({"family": family, "grid": grid, "seed": seed}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def run_sweep(
    *, quick: bool = False, seed: int = 0, checkpoint: Path | None = None, only=None, progress: bool = True
) -> tuple[list[dict], dict]:
    """All records (as dicts) and per-family timings. ``only`` restricts to some families."""
    grids = GRIDS["quick" if quick else "full"]
    families = [f for f in FAMILIES if only is None or f in only]
    unknown = set(only or ()) - set(FAMILIES)
    if unknown:
        raise ValueError(f"unknown families {sorted(unknown)}; choose from {FAMILIES}")
    records, timings = [], {}
    bar = tqdm(families, desc="linear_theory", unit="family", disable=not progress)
    for i, family in enumerate(bar):
        bar.set_postfix_str(family)
        key = _key(family, grids[family], seed)
        done = checkpoint / f"{family}-{key}.json" if checkpoint else None
        if done is not None and done.exists():
            part = json.loads(done.read_text())
            timings[family] = {"seconds": part["seconds"], "resumed": True}
            records += part["records"]
            continue
        rng = np.random.default_rng([seed, i])
        start = time.perf_counter()
        part = [r.to_dict() for r in TASKS[family](grids[family], rng)]
        seconds = time.perf_counter() - start
        timings[family] = {"seconds": seconds, "resumed": False}
        if done is not None:
            write_json_atomic(done, {"records": part, "seconds": seconds})
        records += part
    return records, timings
