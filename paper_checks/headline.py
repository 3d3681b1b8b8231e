"""The headline numbers, recomputed from the paper's own Table 1.

The abstract and Section 6.2 say the method "decreases the model accuracy on backdoor samples by
61.6 % on average" and "only loses 1.2 % accuracy on benign samples compared to FedAvg"; the
Table 1 caption says 61.7 %; Section 6.2 says that on Twitter it "mitigates the accuracy
increase on the backdoor task by 41.7 %". The paper gives no formula, so each number is checked
under every reading that fits its words, averaged over the three tasks:

* ``points``:   100 (B_FedAvg - B_Ours), percentage points;
* ``relative``: 100 (B_FedAvg - B_Ours) / B_FedAvg, a share of FedAvg's value;
* ``gain``:     100 (B_FedAvg - B_Ours) / (B_FedAvg - B_NoAttack), the share of the attack's
  increase that is removed ("mitigates the accuracy increase");

(for utility, the same with Acc_M and without the ``gain`` reading). A reading reproduces the
claim when the interval its value can take, given that each printed cell is rounded to three
decimals, meets the interval the claim's own rounding allows (61.6 means [61.55, 61.65]).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

from .claims import Claim, Finding, register
from .table1 import ROUNDING, TASKS, PaperTable1, paper_table1

READINGS_B = ("points", "relative", "gain")
READINGS_M = ("points", "relative")


def reduction(fedavg: float, ours: float, no_attack: float, reading: str) -> float:
    """One task's reduction (in %) of a metric from FedAvg to ours, under ``reading``."""
    if reading == "points":
        return 100 * (fedavg - ours)
    if reading == "relative":
        return 100 * (fedavg - ours) / fedavg
    if reading == "gain":
        return 100 * (fedavg - ours) / (fedavg - no_attack)
    raise ValueError(f"unknown reading {reading!r}")


def value_range(fn: Callable[..., float], cells: list[float], half_width: float = ROUNDING) -> tuple[float, float]:
    """(min, max) of ``fn(*cells)`` over every corner of the cells' rounding box. The readings
    are monotone in each cell where they are defined, so the corners bound them."""
    values = []
    for signs in itertools.product((-1, 1), repeat=len(cells)):
        try:
            values.append(fn(*(c + s * half_width for c, s in zip(cells, signs, strict=True))))
        except ZeroDivisionError:
            continue
    return min(values), max(values)


def average_reduction(table: PaperTable1, metric: int, reading: str, tasks=TASKS) -> dict:
    """The mean over ``tasks`` of the per-task reduction of Acc_M (metric 0) or Acc_B (1): its
    value from the printed cells and the range the cells' rounding allows."""
    cells = []
    for task in tasks:
        cells += [
            table.acc("FedAvg", task)[metric],
            table.acc("Ours", task)[metric],
            table.acc("No Attack", task)[metric],
        ]

    def mean(*c):
        return sum(reduction(*c[i : i + 3], reading) for i in range(0, len(c), 3)) / len(tasks)

    low, high = value_range(mean, cells)
    return {"value": mean(*cells), "low": low, "high": high, "tasks": list(tasks)}


def judge(claimed: float, decimals: int, got: dict, reading: str) -> Finding:
    """Reproduced when the claim's rounding interval meets the range the table allows."""
    half = 0.5 * 10**-decimals
    meets = got["low"] <= claimed + half and claimed - half <= got["high"]
    numbers = {"claimed": claimed, **{k: (round(v, 4) if isinstance(v, float) else v) for k, v in got.items()}}
    where = f"{got['value']:.2f} % from the printed cells ({got['low']:.2f} to {got['high']:.2f} with their rounding)"
    if meets:
        return Finding(reading, "reproduced", numbers, f"{where} meets the claimed {claimed} %")
    return Finding(reading, "not reproduced", numbers, f"{where} does not meet the claimed {claimed} %")


def _reduction_claim(cid, statement, source, claimed, decimals, metric, readings, tasks=TASKS) -> Claim:
    def check(evidence=None):  # the paper's own table: no runs needed
        table = paper_table1()
        return [judge(claimed, decimals, average_reduction(table, metric, r, tasks), r) for r in readings]

    return register(Claim(cid, statement, source, check, figures=("table1",)))


ABSTRACT_B = _reduction_claim(
    "headline.backdoor_reduction.abstract",
    "On average, our approach decreases the model accuracy on backdoor samples by 61.6% compared to FedAvg",
    "abstract; Section 1",
    61.6,
    1,
    1,
    READINGS_B,
)
TEXT_B = _reduction_claim(
    "headline.backdoor_reduction.section6",
    "Our approach decreases the backdoor task accuracy by 61.6% on average",
    "Section 6.2",
    61.6,
    1,
    1,
    READINGS_B,
)
CAPTION_B = _reduction_claim(
    "headline.backdoor_reduction.caption",
    "Our approach reduces the model accuracy on backdoor samples by 61.7% on average",
    "Table 1 caption",
    61.7,
    1,
    1,
    READINGS_B,
)
UTILITY = _reduction_claim(
    "headline.utility_cost",
    "[our approach] only loses 1.2% accuracy on benign samples compared to the standard FedAvg aggregator",
    "abstract; Section 1",
    1.2,
    1,
    0,
    READINGS_M,
)
TWITTER = _reduction_claim(
    "headline.twitter_mitigation",
    "our approach mitigates the accuracy increase on the backdoor task by 41.7% (Twitter)",
    "Section 6.2",
    41.7,
    1,
    1,
    READINGS_B,
    tasks=("twitter",),
)
