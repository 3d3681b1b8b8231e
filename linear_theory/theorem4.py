"""Theorem 4: the trimmed mean's error under N' adversarial samples.

As printed: with eta = N'/N, alpha = 8 eta + 12 log(4/delta) / N, "x a random variable with
variance sigma", with probability at least

    P_claim = sum_{i=N-alpha N}^{N-N'} C(N-N', i) 0.99^i 0.01^(N-N'-i) * c^-4 * (1 - 4 exp(-alpha N / 12))

the trimmed mean of Definition 3 satisfies |x_bar - E x| <= (20 alpha + 10 sqrt(alpha) + 2 c) sigma.

What the text leaves open, and what is checked:

* ``c`` is never defined (and ``a``, ``b`` are defined but unused): the printed statement is
  ill-posed. It is checked with c universally quantified (every c > 0 must work), over a sweep.
* ``sigma``: a standard deviation (the bound then scales like the error) or the variance, as
  the text says (the bound then has the wrong units and is checked at several scales).
* The factor c^-4 exceeds 1 for c < 1; the reading "(1 - c^-4)" (a Chebyshev-style factor) is
  checked as an alternative.
* alpha N is generally not an integer: Definition 3 trims ceil(alpha N) from each side, and the
  sum's lower limit is read as N - ceil(alpha N). log is the natural logarithm.

The adversary sees the benign samples and places its N' values to maximise the error. The
trimmed mean is non-decreasing in every input, so the worst case is all N' values above every
benign value or all below, whichever side errs more: both are evaluated and the larger error
taken. Every trimmed mean is computed by the shared core.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

from invariant_aggregator import functional as F

from .laws import ScalarLaw
from .records import Estimate, Record, judge_probability_at_least

CLAIM = "theorem_4"
PARTS = {True: "Eq. 5 bound, c >= 1", False: "Eq. 5 bound, c < 1 (claimed probability c^-4 > 1 as printed)"}
READINGS = {
    "std": "c^-4 as printed, sigma = std",
    "variance": "c^-4 as printed, sigma = variance",
    "one_minus": "(1 - c^-4) for c^-4, sigma = std",
}


def trim_level(n: int, n_malicious: int, delta: float) -> float:
    if not 0 < delta < 1:
        raise ValueError(f"the confidence level delta must be in (0, 1), got {delta}")
    if not 0 <= n_malicious < n:
        raise ValueError(f"need 0 <= N' < N, got N' = {n_malicious}, N = {n}")
    return 8 * n_malicious / n + 12 * math.log(4 / delta) / n


def claimed_probability(n: int, n_malicious: int, delta: float, c: float, *, factor: str = "as printed") -> float:
    """P_claim of the theorem (see the module docstring for the readings of its symbols)."""
    alpha = trim_level(n, n_malicious, delta)
    k = F.trim_bounds(n, alpha)[0]  # ceil(alpha N), as the core trims
    benign = n - n_malicious
    # sum_{i = N - k}^{N - N'} Binomial(N - N', 0.99) pmf = P(Binomial >= N - k)
    binomial = float(stats.binom.sf(n - k - 1, benign, 0.99))
    cfac = c**-4 if factor == "as printed" else 1 - c**-4
    return binomial * cfac * (1 - 4 * math.exp(-alpha * n / 12))


def error_bound(alpha: float, c: float, sigma_symbol: float) -> float:
    return (20 * alpha + 10 * math.sqrt(alpha) + 2 * c) * sigma_symbol


def worst_case_errors(law: ScalarLaw, n: int, n_malicious: int, alpha: float, benign: np.ndarray) -> np.ndarray:
    """max over the two sides of |TrMean - E x|, per trial; ``benign`` is (N - N', trials)."""
    if n_malicious == 0:
        return np.abs(F.trimmed_mean(benign, alpha) - law.mean)
    trials = benign.shape[1]
    span = np.abs(benign).max(axis=0) + 1.0  # beyond every benign value, finite
    errors = np.zeros(trials)
    for side in (1.0, -1.0):
        stack = np.concatenate([benign, np.broadcast_to(side * span, (n_malicious, trials))])
        errors = np.maximum(errors, np.abs(F.trimmed_mean(stack, alpha) - law.mean))
    return errors


def exact_success_probability(law: ScalarLaw, n: int, n_malicious: int, alpha: float, bound: float) -> float:
    """P(worst-case error <= bound) exactly, for a two-point law (the benign sample is fixed by its
    number H of upper atoms, H ~ Binomial(N - N', p))."""
    if law.atoms is None or len(law.atoms) != 2:
        raise ValueError("the exact computation needs a two-point law")
    (a, _), (b, p) = sorted(law.atoms)
    benign = n - n_malicious
    lo, hi = F.trim_bounds(n, alpha)
    if lo < n_malicious:
        raise ValueError("the adversary's values would survive trimming; the worst-case error is unbounded")
    h = np.arange(benign + 1)
    worst = np.zeros(h.size)
    for offset in (0, n_malicious):  # adversary above (benign at ranks 0..) or below (benign shifted up)
        first_high = offset + benign - h  # sorted ranks [first_high, offset + benign) hold the upper atom
        highs = np.clip(np.minimum(hi, offset + benign) - np.maximum(lo, first_high), 0, None)
        kept = hi - lo
        mean = (highs * b + (kept - highs) * a) / kept
        worst = np.maximum(worst, np.abs(mean - law.mean))
    pmf = stats.binom.pmf(h, benign, p)
    return float(pmf[worst <= bound].sum())


def check(
    law: ScalarLaw,
    n: int,
    n_malicious: int,
    delta: float,
    cs,
    *,
    rng: np.random.Generator,
    trials: int,
    scales=(0.01, 0.1, 10.0),
) -> list[Record]:
    """Records for every c in ``cs`` and every reading, at one (law, N, N', delta).

    ``law`` should have std 1; the variance reading rescales it to each std in ``scales``
    (the std reading is scale-free).
    """
    params = {
        **law.describe(),
        "N": n,
        "N_malicious": n_malicious,
        "delta": delta,
        "adversary": "worst case: all N' values beyond the benign ones on the side that errs more",
    }
    alpha = trim_level(n, n_malicious, delta)
    params["alpha"] = alpha
    try:
        lo, hi = F.trim_bounds(n, alpha)
    except ValueError as err:
        return [
            Record(
                CLAIM,
                PARTS[c >= 1],
                reading,
                "inapplicable",
                f"the trimmed mean is undefined: {err}",
                {"parameters": {**params, "c": c}},
            )
            for c in cs
            for reading in READINGS.values()
        ]
    params["trimmed_each_side"] = lo
    benign = law.sample(rng, (n - n_malicious, trials))
    errors = worst_case_errors(law, n, n_malicious, alpha, benign)
    records = []
    for c in cs:
        for key, reading in READINGS.items():
            for scale in scales if key == "variance" else (1.0,):
                sigma_symbol = scale**2 if key == "variance" else scale
                bound = error_bound(alpha, c, sigma_symbol)
                claimed = claimed_probability(
                    n, n_malicious, delta, c, factor="one minus" if key == "one_minus" else "as printed"
                )
                hits = int(np.count_nonzero(errors * scale <= bound))
                measured = Estimate.proportion(hits, trials)
                evidence = {
                    "parameters": {**params, "c": c, "std": scale},
                    "claimed_probability": claimed,
                    "error_bound": bound,
                    "measured_probability": measured,
                    "max_error_seen": float(errors.max() * scale),
                    "bound_over_max_error": float(bound / max(errors.max() * scale, 1e-300)),
                }
                if law.atoms is not None:
                    scaled = _scaled_two_point(law, scale)
                    exact = Estimate.exact(exact_success_probability(scaled, n, n_malicious, alpha, bound))
                    evidence["monte_carlo_probability"] = measured
                    evidence["measured_probability"] = measured = exact
                verdict, reason = judge_probability_at_least(claimed, measured)
                records.append(Record(CLAIM, PARTS[c >= 1], reading, verdict, reason, evidence))
    return records


def _scaled_two_point(law: ScalarLaw, scale: float) -> ScalarLaw:
    atoms = tuple((law.mean + scale * (v - law.mean), p) for v, p in law.atoms)
    return ScalarLaw(law.name, law.mean, law.std * scale, atoms)


def ill_posed_record() -> Record:
    return Record(
        CLAIM,
        "the statement's symbols",
        "as printed",
        "ill-posed",
        "c appears in the probability (c^-4) and in the bound (2c) but is never defined; a and b are "
        "defined and never used; 'variance sigma' is used as a standard deviation in Eq. 5. The other "
        "records treat c as universally quantified and check both readings of sigma.",
        {
            "statement": "P >= sum_{i=N-aN}^{N-N'} C(N-N',i) .99^i .01^(N-N'-i) c^-4 (1-4e^{-aN/12}) => "
            "|x_bar - E x| <= (20a + 10 sqrt(a) + 2c) sigma"
        },
    )
