"""Fig. 1's two failure modes as Monte-Carlo rates, over tau, alpha and N'.

One coordinate, N clients; each Monte-Carlo trial is one column of an (N, trials) stack, so
every rule of the shared core aggregates all trials in one call. A rule *errs* on a trial when
the sign of its output is the opposite of the sign of the benign law's mean (+1 here); an
output of exactly 0 (a masked coordinate) is counted separately, not as an error.

* Mode 1 (Fig. 1a): benign values agree in sign (phi = mean / std = 3); the N' malicious values
  are outliers at -M with M = 5 N / N' (so that they outweigh the benign sum in a plain mean).
  Text: the AND-mask fails (the consistency stays high), the trimmed mean trims the outliers.
* Mode 2 (Fig. 1b): benign signs are mixed (phi = 0.2); the malicious values sit inside the
  benign range, at minus the benign sample's mean absolute value. Text: the trimmed mean
  follows them, the AND-mask zeroes the coordinate.

Checked, per regime, with paired differences of per-trial error indicators: that the failing
component errs significantly more often than the other (the mode exists there), and that the
invariant aggregator errs no more often than either component (significantly more would violate).
"""

from __future__ import annotations

import itertools

import numpy as np

import invariant_aggregator as ia
from invariant_aggregator import functional as F

from .laws import make_law
from .records import Estimate, Record, judge_difference_at_most_zero, judge_difference_positive

MODES = {
    "failure_mode_1": {"phi": 3.0, "adversary": "outliers at -5 N / N'"},
    "failure_mode_2": {"phi": 0.2, "adversary": "inliers at -mean|benign|"},
}
FAILING = {"failure_mode_1": ("and_mask", "trimmed_mean"), "failure_mode_2": ("trimmed_mean", "and_mask")}


def attack(mode: str, benign: np.ndarray, n: int, n_malicious: int) -> np.ndarray:
    trials = benign.shape[1]
    if mode == "failure_mode_1":
        value = np.full(trials, -5.0 * n / n_malicious)
    else:
        value = -np.abs(benign).mean(axis=0)
    return np.concatenate([benign, np.broadcast_to(value, (n_malicious, trials))])


def error_indicators(stack: np.ndarray, tau: float, alpha: float) -> dict[str, np.ndarray]:
    """Per rule: (errs, zero) boolean arrays over the trials."""
    rules = {
        "fedavg": ia.make("fedavg"),
        "and_mask": ia.make("and_mask", tau=tau),
        "trimmed_mean": ia.make("trimmed_mean", alpha=alpha),
        "invariant": ia.make("invariant", tau=tau, alpha=alpha),
    }
    out = {}
    for name, rule in rules.items():
        value = rule(stack)
        out[name] = (value < 0, value == 0)
    return out


def check(
    *,
    rng: np.random.Generator,
    n: int = 20,
    malicious=(1, 2, 4, 6),
    taus=(0.2, 0.4, 0.6, 0.8),
    alphas=(0.1, 0.2, 0.3),
    laws=("gaussian", "student_t3"),
    trials: int = 20000,
) -> list[Record]:
    records = []
    for mode, spec in MODES.items():
        for law_name, n_mal in itertools.product(laws, malicious):
            law = make_law(law_name, spec["phi"], 1.0)
            stack = attack(mode, law.sample(rng, (n - n_mal, trials)), n, n_mal)
            for tau, alpha in itertools.product(taus, alphas):
                ind = error_indicators(stack, tau, alpha)
                rates = {
                    name: {
                        "wrong_sign": Estimate.proportion(int(e.sum()), trials),
                        "zero": Estimate.proportion(int(z.sum()), trials),
                    }
                    for name, (e, z) in ind.items()
                }
                params = {
                    **law.describe(),
                    "N": n,
                    "N_malicious": n_mal,
                    "tau": tau,
                    "alpha": alpha,
                    "trimmed_each_side": F.trim_bounds(n, alpha)[0],
                    "adversary": spec["adversary"],
                    "trials": trials,
                }
                evidence = {"parameters": params, "rates": rates}
                failing, other = FAILING[mode]
                diff = Estimate.mean(ind[failing][0].astype(float) - ind[other][0])
                verdict, reason = judge_difference_positive(diff, what=f"P({failing} errs) - P({other} errs)")
                records.append(
                    Record(
                        mode,
                        f"{failing} errs more often than {other}",
                        "as printed",
                        verdict,
                        reason,
                        {**evidence, "difference": diff},
                    )
                )
                for component in ("and_mask", "trimmed_mean"):
                    diff = Estimate.mean(ind["invariant"][0].astype(float) - ind[component][0])
                    verdict, reason = judge_difference_at_most_zero(
                        diff, what=f"P(invariant errs) - P({component} errs)"
                    )
                    records.append(
                        Record(
                            mode,
                            f"invariant errs no more often than {component}",
                            "as printed",
                            verdict,
                            reason,
                            {**evidence, "difference": diff},
                        )
                    )
    return records
