"""Theorem 5: how likely the AND-mask drops a coordinate whose benign values agree in expectation.

As printed: for phi = E[x] / sigma != 0 and N' malicious elements, the sign consistency
|(1/N) sum_i sign x_i| is below tau with probability at most

    B_printed = sum_{i = N - 2N' - tau N}^{min(N, N - 2N' + tau N)} C(N - N', i) phi^(-2 i).

The natural proof: a benign sign is wrong (opposite to E x) with probability p <= phi^-2
(Chebyshev, sigma a standard deviation); with W wrong benign signs and all N' malicious signs
opposite, the sum of signs is N - 2N' - 2W, and P(W = i) <= C(N - N', i) p^i. The event
"consistency < tau" is (N - 2N' - tau N) / 2 < W < (N - 2N' + tau N) / 2: the printed range is
that of 2W, not W. Checked readings:

* ``as printed`` (sigma = std);
* ``as printed, sigma = variance`` (phi = E x / Var x, as "expectation-variance ratio" says) at
  two scales, since that reading is not scale-free;
* ``corrected range``: the sum over the W that produce the event, for the adversary in question.

Two adversaries: ``opposite`` (every malicious value has the sign opposite to E x, the one the
proof assumes) and ``adaptive`` (sees the benign signs, then submits -1, 0 or +1 signs to bring
the consistency as low as it can; its event is max(0, |S_benign| - N') < tau N).

Exact probabilities come from the binomial law of W (every law here has P(x = 0) = 0); a Monte
Carlo run through the shared core's sign counting validates each one.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import special, stats

from invariant_aggregator import functional as F

from .laws import ScalarLaw, make_law
from .records import Estimate, Record, judge_probability_at_most

CLAIM = "theorem_5"
ADVERSARIES = ("opposite", "adaptive")
PARTS = {
    "opposite": "P(consistency < tau) bound, malicious signs opposite",
    "adaptive": "P(consistency < tau) bound, adaptive adversary",
}


def _threshold(n: int, tau: float) -> int:
    """Smallest |sum of signs| that passes the mask (the core's convention, ceil(tau N))."""
    return F.min_agreeing_signs(n, tau)


def event_counts(n: int, n_malicious: int, tau: float, adversary: str) -> np.ndarray:
    """The numbers W of wrong benign signs for which the consistency falls below tau."""
    benign = n - n_malicious
    w = np.arange(benign + 1)
    s_benign = benign - 2 * w
    if adversary == "opposite":
        total = np.abs(s_benign - n_malicious)
    elif adversary == "adaptive":
        total = np.maximum(np.abs(s_benign) - n_malicious, 0)
    else:
        raise ValueError(f"adversary={adversary!r}; expected one of {ADVERSARIES}")
    return w[total < _threshold(n, tau)]


def exact_probability(law: ScalarLaw, n: int, n_malicious: int, tau: float, adversary: str) -> float:
    p_wrong, p_zero, _ = law.sign_probabilities()
    if p_zero > 0:
        raise ValueError("the exact computation assumes P(x = 0) = 0")
    w = event_counts(n, n_malicious, tau, adversary)
    return float(min(stats.binom.pmf(w, n - n_malicious, p_wrong).sum(), 1.0))


def monte_carlo_probability(benign: np.ndarray, n: int, n_malicious: int, tau: float, adversary: str) -> Estimate:
    """Fraction of trials (columns of ``benign``, drawn from a law with positive mean) whose
    consistency the core finds below tau."""
    trials = benign.shape[1]
    if adversary == "opposite":
        mal = np.full((n_malicious, trials), -1.0)
    else:
        s_benign = F.sign_sum(benign)
        # Cast -sign(S) votes while |S| shrinks; abstain (0) with the rest.
        cancel = np.minimum(np.abs(s_benign), n_malicious)
        mal = np.where(np.arange(n_malicious)[:, None] < cancel, -np.sign(s_benign), 0.0)
    stack = np.concatenate([benign, mal]) if n_malicious else benign
    below = np.abs(F.sign_sum(stack)) < _threshold(n, tau)
    return Estimate.proportion(int(below.sum()), trials)


def claimed_bound(
    n: int, n_malicious: int, tau: float, phi: float, *, reading: str, adversary: str = "opposite"
) -> float:
    """B for the reading: ``printed`` (the printed index range) or ``corrected`` (the event's W)."""
    if phi == 0:
        raise ValueError("Theorem 5 needs a non-zero phi")
    benign = n - n_malicious
    if reading == "printed":
        first = max(math.ceil(n - 2 * n_malicious - tau * n - 1e-9), 0)
        last = min(n, math.floor(n - 2 * n_malicious + tau * n + 1e-9), benign)  # C(N-N', i) = 0 beyond
        idx = np.arange(first, last + 1)
    elif reading == "corrected":
        idx = event_counts(n, n_malicious, tau, adversary)
    else:
        raise ValueError(f"reading={reading!r}; expected 'printed' or 'corrected'")
    if idx.size == 0:
        return 0.0
    log_terms = special.gammaln(benign + 1) - special.gammaln(idx + 1) - special.gammaln(benign - idx + 1)
    log_terms = log_terms - 2 * idx * math.log(abs(phi))
    return float(np.exp(special.logsumexp(log_terms)))


def check(
    law_name: str,
    n: int,
    n_malicious: int,
    tau: float,
    phi: float,
    *,
    rng: np.random.Generator,
    trials: int,
    variance_scales=(0.25, 4.0),
    benign: np.ndarray | None = None,
) -> list[Record]:
    """Records for both adversaries and every reading at one (law, N, N', tau, phi).

    The law has mean phi and std 1 (so phi is the std-reading ratio); ``benign`` optionally
    supplies (at least N - N' rows of) its samples, so that a sweep can reuse them.
    """
    law = make_law(law_name, phi, 1.0)
    if benign is None:
        benign = law.sample(rng, (n - n_malicious, trials))
    benign = benign[: n - n_malicious]
    params = {**law.describe(), "phi_std": phi, "N": n, "N_malicious": n_malicious, "tau": tau}
    p_wrong = law.sign_probabilities()[0]
    records = []
    for adversary in ADVERSARIES:
        exact = Estimate.exact(exact_probability(law, n, n_malicious, tau, adversary))
        mc = monte_carlo_probability(benign, n, n_malicious, tau, adversary)
        base = {
            "parameters": {**params, "adversary": adversary},
            "p_wrong_sign": p_wrong,
            "measured_probability": exact,
            "monte_carlo_probability": mc,
            "monte_carlo_agrees": mc.contains(exact.value),
        }
        readings = [("as printed", "printed", phi, None), ("corrected range", "corrected", phi, None)]
        # sigma = variance: a law with std s has phi_var = E x / s^2; rescaling x by s keeps signs.
        readings += [(f"as printed, sigma = variance (std {s:g})", "printed", phi / s, s) for s in variance_scales]
        for reading, index_reading, phi_symbol, scale in readings:
            bound = claimed_bound(n, n_malicious, tau, phi_symbol, reading=index_reading, adversary=adversary)
            verdict, reason = judge_probability_at_most(bound, exact)
            evidence = {**base, "claimed_probability": bound, "phi_in_bound": phi_symbol}
            if scale is not None:
                evidence["parameters"] = {**evidence["parameters"], "std": scale, "mean": phi * scale}
            records.append(Record(CLAIM, PARTS[adversary], reading, verdict, reason, evidence))
    return records
