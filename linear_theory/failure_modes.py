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

The two constructions also exist as concrete one-coordinate examples (``FAILURE_MODE_1`` and
``FAILURE_MODE_2``, checked by :func:`evaluate`); ``python -m linear_theory.failure_modes``
prints them.
"""

from __future__ import annotations

import argparse
import itertools
from dataclasses import dataclass

import numpy as np

import invariant_aggregator as ia
from invariant_aggregator import functional as F

from .laws import make_law
from .records import Estimate, Record, judge_difference_at_most_zero, judge_difference_positive


@dataclass(frozen=True)
class FailureMode:
    """One coordinate, N = benign + malicious clients. An aggregator *fails* when the sign of its
    output differs from the sign of the benign values' mean (sign(0) = 0)."""

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
        value = float(ia.make(name, **params)(mode.updates)[0])
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


def main(argv=None) -> int:
    """Print the two one-coordinate examples of Fig. 1 (``--json PATH`` also writes the records)."""
    parser = argparse.ArgumentParser(prog="python -m linear_theory.failure_modes", description=main.__doc__)
    parser.add_argument("--json", metavar="PATH", help="also write the records as JSON")
    args = parser.parse_args(argv)
    records = evaluate(FAILURE_MODE_1) + evaluate(FAILURE_MODE_2)
    print("failure modes of Fig. 1 (one coordinate, N = 10, N' = 2)")
    for mode in (FAILURE_MODE_1, FAILURE_MODE_2):
        print(f"\n{mode.name}: {mode.description}")
        print(f"  benign    {mode.benign.tolist()}  (mean {mode.benign.mean():+.3f})")
        print(f"  malicious {mode.malicious.tolist()}")
        print(f"  {'rule':<14}{'output':>10}  sign of benign mean?")
        for r in (r for r in records if r["mode"] == mode.name):
            print(f"  {r['rule']:<14}{r['output']:>+10.4f}  {'yes' if r['correct_sign'] else 'NO (fails)'}")
    if args.json:
        ia.write_json_atomic(args.json, records)
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
