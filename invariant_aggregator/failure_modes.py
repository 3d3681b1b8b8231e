"""The two failure modes of Fig. 1 as concrete one-coordinate examples.

An aggregator *fails* when the sign of its output differs from the sign of the benign values'
mean (sign(0) = 0). The paper's claim: the AND-mask fails on (a) where the trimmed mean
succeeds, the trimmed mean fails on (b) where the AND-mask succeeds, and their composition
(the invariant aggregator) succeeds on both.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .rules import make


@dataclass(frozen=True)
class FailureMode:
    name: str
    description: str
    benign: np.ndarray
    malicious: np.ndarray

    @property
    def updates(self) -> np.ndarray:
        return np.concatenate([self.benign, self.malicious])[:, None]

    @property
    def target_sign(self) -> int:
        return int(np.sign(self.benign.mean()))


# (a) benign values agree in sign; two outliers drag the mean across zero while the sign
# consistency |8 - 2| / 10 = 0.6 still passes tau = 0.6.
FAILURE_MODE_1 = FailureMode(
    "failure mode 1 (AND-mask)",
    "benign signs agree; outliers flip the mean while consistency stays >= tau",
    benign=np.array([1.0, 1.2, 0.8, 1.1, 0.9, 1.0, 1.05, 0.95]),
    malicious=np.array([-20.0, -20.0]),
)
# (b) benign values cancel (mean 0) with diverse signs; small malicious values inside the
# benign range survive trimming and set the sign; consistency |6 - 4| / 10 = 0.2 < tau.
FAILURE_MODE_2 = FailureMode(
    "failure mode 2 (trimmed mean)",
    "benign mean is 0 with diverse signs; in-range malicious values bias the trimmed mean",
    benign=np.array([-1.0, 1.0, -0.5, 0.5, -1.5, 1.5, -0.2, 0.2]),
    malicious=np.array([0.3, 0.3]),
)

DEMO_RULES = {
    "fedavg": {},
    "and_mask": {"tau": 0.6},
    "trimmed_mean": {"alpha": 0.2},
    "invariant": {"tau": 0.6, "alpha": 0.2},
}


def evaluate(mode: FailureMode, rules: dict[str, dict] = DEMO_RULES) -> list[dict]:
    """One record per rule: its output on ``mode`` and whether it got the benign sign."""
    rows = []
    for name, params in rules.items():
        value = float(make(name, **params)(mode.updates)[0])
        rows.append(
            {
                "mode": mode.name,
                "rule": name,
                "params": params,
                "output": value,
                "benign_mean": float(mode.benign.mean()),
                "correct_sign": int(np.sign(value)) == mode.target_sign,
            }
        )
    return rows
