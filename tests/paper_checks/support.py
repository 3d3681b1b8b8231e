"""Hand-made result files with known numbers, in the formats the stages write."""

from __future__ import annotations

import json
from pathlib import Path

from deep_experiments.defences import TABLE1_ROWS

LABEL = {v: k for k, v in TABLE1_ROWS.items()}


def row(defence, acc_m, acc_b, *, se=0.01, clean=None, seeds=(0, 1, 2), params=None, task="phishing"):
    """A Table 1 row as deep_experiments.results.table writes it."""
    r = {
        "task": task,
        "defence": defence,
        "row": LABEL.get(defence, defence),
        "seeds": list(seeds),
        "rounds": [10],
        "differs": [],
        "params": params or {},
        "acc_m": acc_m,
        "acc_m_se": se,
        "acc_b": acc_b,
        "acc_b_se": se,
    }
    if clean is not None:
        r |= {"seeds_clean": list(seeds), "acc_m_clean": clean, "acc_m_clean_se": se}
    return r


def baseline_rows(task="phishing", *, ours_b=0.10, ours_m=0.93, fedavg_b=0.95, none_b=0.05, **others):
    """FedAvg, No Attack and Ours, plus ``others`` {defence: (acc_m, acc_b)}; clean twins at Acc_M + 0.01."""
    rows = [
        row("fedavg", 0.94, fedavg_b, clean=0.95, task=task),
        row("no_attack", 0.95, none_b, task=task),
        row("invariant", ours_m, ours_b, clean=ours_m + 0.01, task=task),
    ]
    rows += [row(d, m, b, clean=m + 0.01, task=task) for d, (m, b) in others.items()]
    return rows


def write(results: Path, name: str, data) -> Path:
    results.mkdir(parents=True, exist_ok=True)
    path = results / name
    path.write_text(json.dumps(data), encoding="utf-8")
    return path
