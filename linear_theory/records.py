"""Result records and the verdict logic every check shares.

A check never decides a verdict by itself: it measures a quantity (exactly, or by Monte Carlo
with a standard error and a confidence interval) and hands claimed and measured values to one of
the ``judge_*`` functions below. The judges are the tested part of the machinery: a wrong bound
must come out ``violated``, a probability bound that cannot fail ``vacuous``.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field

import numpy as np
from scipy import stats

CLAIMS = (
    "theorem_4",
    "theorem_5",
    "theorem_8",
    "corollary_9",
    "failure_mode_1",
    "failure_mode_2",
    "simulation_d1",
)
VERDICTS = ("holds", "violated", "vacuous", "inapplicable", "ill-posed")

# Two-sided confidence of the Monte-Carlo intervals. A sweep makes thousands of comparisons;
# at 1 - 1e-5 a correct claim is reported violated by chance with probability about 1e-2 per
# thousand Monte-Carlo comparisons.
CONFIDENCE = 1 - 1e-5
# Exact probabilities are sums of floating-point terms: differences below this are rounding.
EXACT_TOLERANCE = 1e-12


@dataclass(frozen=True)
class Estimate:
    """A measured number: exact, or a Monte-Carlo estimate with its error.

    For a Monte-Carlo proportion ``successes`` / ``trials``, ``low``/``high`` is the
    Clopper-Pearson interval at :data:`CONFIDENCE`; for a Monte-Carlo mean, mean +- z * stderr.
    """

    value: float
    method: str  # "exact" or "monte carlo"
    stderr: float = 0.0
    trials: int | None = None
    low: float = math.nan
    high: float = math.nan

    @classmethod
    def exact(cls, value: float) -> Estimate:
        value = float(value)
        return cls(value, "exact", 0.0, None, value, value)

    @classmethod
    def proportion(cls, successes: int, trials: int) -> Estimate:
        successes, trials = int(successes), int(trials)
        if trials <= 0:
            raise ValueError(f"a Monte-Carlo proportion needs trials > 0, got {trials}")
        p = successes / trials
        ci = stats.binomtest(successes, trials).proportion_ci(confidence_level=CONFIDENCE, method="exact")
        return cls(p, "monte carlo", math.sqrt(p * (1 - p) / trials), trials, float(ci.low), float(ci.high))

    @classmethod
    def mean(cls, samples) -> Estimate:
        samples = np.asarray(samples, dtype=np.float64).ravel()
        if samples.size < 2:
            raise ValueError("a Monte-Carlo mean needs at least two samples")
        m = float(samples.mean())
        se = float(samples.std(ddof=1) / math.sqrt(samples.size))
        z = confidence_z()
        return cls(m, "monte carlo", se, int(samples.size), m - z * se, m + z * se)

    @property
    def is_exact(self) -> bool:
        return self.method == "exact"

    def contains(self, value: float) -> bool:
        """Whether ``value`` lies in the interval (up to exact rounding): an exact value agrees."""
        return self.low - EXACT_TOLERANCE <= value <= self.high + EXACT_TOLERANCE

    def to_dict(self) -> dict:
        out = {"value": self.value, "method": self.method}
        if not self.is_exact:
            out.update(
                stderr=self.stderr, trials=self.trials, ci_low=self.low, ci_high=self.high, confidence=CONFIDENCE
            )
        return out


def confidence_z() -> float:
    return float(stats.norm.isf((1 - CONFIDENCE) / 2))


@dataclass
class Record:
    """One verdict on one claim, part and reading, at one set of parameters."""

    claim: str
    part: str
    reading: str
    verdict: str
    reason: str
    evidence: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.claim not in CLAIMS:
            raise ValueError(f"unknown claim {self.claim!r}; expected one of {CLAIMS}")
        if self.verdict not in VERDICTS:
            raise ValueError(f"unknown verdict {self.verdict!r}; expected one of {VERDICTS}")

    def to_dict(self) -> dict:
        return _jsonable(asdict(self))


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Estimate):
        return value.to_dict()
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        value = float(value)
        return value if math.isfinite(value) else str(value)  # JSON has no inf / nan
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    return value


# --------------------------------------------------------------------------- judges
# Each returns (verdict, reason). ``measured`` is an Estimate.


def judge_probability_at_least(claimed: float, measured: Estimate) -> tuple[str, str]:
    """Claim: P(event) >= claimed."""
    if claimed <= 0:
        return "vacuous", f"the claimed lower bound {claimed:.4g} is <= 0, which every probability meets"
    if claimed > 1 + EXACT_TOLERANCE:
        return "violated", f"the claimed lower bound {claimed:.4g} exceeds 1, which no probability reaches"
    if measured.is_exact:
        if measured.value < claimed - EXACT_TOLERANCE:
            return "violated", f"exact probability {measured.value:.6g} < claimed {claimed:.6g}"
        return "holds", f"exact probability {measured.value:.6g} >= claimed {claimed:.6g}"
    if measured.high < claimed:
        return "violated", (
            f"Monte-Carlo probability {measured.value:.4g} (CI up to {measured.high:.4g}) < claimed {claimed:.4g}"
        )
    note = " (the estimate is below it, within Monte-Carlo error)" if measured.value < claimed else ""
    return "holds", f"Monte-Carlo probability {measured.value:.4g} is consistent with >= {claimed:.4g}{note}"


def judge_probability_at_most(claimed: float, measured: Estimate) -> tuple[str, str]:
    """Claim: P(event) <= claimed."""
    if claimed >= 1:
        return "vacuous", f"the claimed upper bound {claimed:.4g} is >= 1, which every probability meets"
    if claimed < -EXACT_TOLERANCE:
        return "violated", f"the claimed upper bound {claimed:.4g} is negative"
    if measured.is_exact:
        if measured.value > claimed + EXACT_TOLERANCE:
            return "violated", f"exact probability {measured.value:.6g} > claimed {claimed:.6g}"
        return "holds", f"exact probability {measured.value:.6g} <= claimed {claimed:.6g}"
    if measured.low > claimed:
        return "violated", (
            f"Monte-Carlo probability {measured.value:.4g} (CI down to {measured.low:.4g}) > claimed {claimed:.4g}"
        )
    note = " (the estimate is above it, within Monte-Carlo error)" if measured.value > claimed else ""
    return "holds", f"Monte-Carlo probability {measured.value:.4g} is consistent with <= {claimed:.4g}{note}"


def judge_equal(claimed: float, measured: float, *, what: str, tolerance: float = 0.0) -> tuple[str, str]:
    """Claim: a computed quantity equals ``claimed`` (exact arithmetic up to ``tolerance``)."""
    if abs(measured - claimed) <= tolerance:
        return "holds", f"{what} = {measured:.6g}, as claimed ({claimed:.6g})"
    return "violated", f"{what} = {measured:.6g}, claimed {claimed:.6g}"


def judge_at_least(claimed: float, measured: float, *, what: str, tolerance: float = 0.0) -> tuple[str, str]:
    """Claim: a computed quantity is >= ``claimed``."""
    if measured >= claimed - tolerance:
        return "holds", f"{what} = {measured:.6g} >= claimed {claimed:.6g}"
    return "violated", f"{what} = {measured:.6g} < claimed {claimed:.6g}"


def judge_difference_positive(diff: Estimate, *, what: str) -> tuple[str, str]:
    """Claim: a (paired) difference is positive. Holds only if it is significantly positive."""
    if diff.is_exact:
        return ("holds" if diff.value > 0 else "violated"), f"{what}: difference {diff.value:.4g}"
    if diff.low > 0:
        return "holds", f"{what}: difference {diff.value:.4g} +- {diff.stderr:.2g}, significantly > 0"
    return "violated", (
        f"{what}: difference {diff.value:.4g} +- {diff.stderr:.2g} is not significantly > 0 (CI low {diff.low:.3g})"
    )


def judge_difference_at_most_zero(diff: Estimate, *, what: str) -> tuple[str, str]:
    """Claim: a (paired) difference is <= 0. Violated only if it is significantly positive."""
    if diff.is_exact:
        return ("holds" if diff.value <= EXACT_TOLERANCE else "violated"), f"{what}: difference {diff.value:.4g}"
    if diff.low > 0:
        return "violated", f"{what}: difference {diff.value:.4g} +- {diff.stderr:.2g}, significantly > 0"
    return "holds", f"{what}: difference {diff.value:.4g} +- {diff.stderr:.2g}, not significantly > 0"


# --------------------------------------------------------------------------- summary

_PRECEDENCE = ("violated", "holds", "vacuous", "inapplicable", "ill-posed")


def summarise(records) -> list[dict]:
    """One row per (claim, part, reading): the overall verdict and the count of each verdict.

    Overall: ``violated`` if any regime violates it; otherwise ``holds`` if it holds anywhere
    (the other regimes being vacuous or inapplicable); otherwise the most common of the rest.
    """
    groups: dict[tuple, Counter] = defaultdict(Counter)
    order: list[tuple] = []
    for r in records:
        r = r.to_dict() if isinstance(r, Record) else r
        key = (r["claim"], r["part"], r["reading"])
        if key not in groups:
            order.append(key)
        groups[key][r["verdict"]] += 1
    rows = []
    for key in order:
        counts = groups[key]
        overall = next(v for v in _PRECEDENCE if counts[v])
        rows.append(
            {
                "claim": key[0],
                "part": key[1],
                "reading": key[2],
                "verdict": overall,
                "counts": {v: counts[v] for v in VERDICTS if counts[v]},
            }
        )
    return rows


def format_summary(rows) -> str:
    widths = [max(len(str(r[c])) for r in rows) if rows else 5 for c in ("claim", "part", "reading")]
    widths = [max(w, len(h)) for w, h in zip(widths, ("claim", "part", "reading"), strict=True)]
    head = f"{'claim':<{widths[0]}}  {'part':<{widths[1]}}  {'reading':<{widths[2]}}  verdict       regimes"
    lines = [head, "-" * len(head)]
    for r in rows:
        counts = ", ".join(f"{n} {v}" for v, n in r["counts"].items())
        lines.append(
            f"{r['claim']:<{widths[0]}}  {r['part']:<{widths[1]}}  {r['reading']:<{widths[2]}}  "
            f"{r['verdict']:<12}  {counts}"
        )
    return "\n".join(lines)
