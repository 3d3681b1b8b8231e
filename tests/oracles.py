"""Brute-force reference implementations, written from the definitions and independent of the
package's kernels (plain numpy and Python, float64, exact rational thresholds)."""

from __future__ import annotations

import itertools
import math
from fractions import Fraction

import numpy as np


def exact_threshold(value: float, n: int) -> int:
    """ceil(value * n) in exact rational arithmetic, a product within 1e-9 (relative) of an
    integer counting as that integer (the package's documented convention)."""
    product = Fraction(float(value)) * n
    nearest = round(product)
    if abs(product - nearest) <= Fraction(1, 10**9) * max(1, abs(product)):
        return int(nearest)
    return math.ceil(product)


def window_mean(x: np.ndarray, lo: int, hi: int) -> np.ndarray:
    srt = np.sort(x.astype(np.float64), axis=0)
    return np.array([math.fsum(srt[lo:hi, j]) / (hi - lo) for j in range(x.shape[1])])


def trimmed_mean(x: np.ndarray, alpha: float) -> np.ndarray:
    n = x.shape[0]
    k = exact_threshold(alpha, n)
    return window_mean(x, k, n - k)


def sign_count(x: np.ndarray) -> np.ndarray:
    return np.array([sum(int(v > 0) - int(v < 0) for v in x[:, j]) for j in range(x.shape[1])])


def and_mask(x: np.ndarray, tau: float) -> np.ndarray:
    return (np.abs(sign_count(x)) >= exact_threshold(tau, x.shape[0])).astype(np.float64)


def invariant(x: np.ndarray, tau: float, alpha: float) -> np.ndarray:
    return and_mask(x, tau) * trimmed_mean(x, alpha)


def sq_dist(a: np.ndarray, b: np.ndarray) -> float:
    diff = a.astype(np.float64) - b.astype(np.float64)
    return math.fsum(diff * diff)


def krum_scores(x: np.ndarray, f: int) -> list[float]:
    n = x.shape[0]
    scores = []
    for i in range(n):
        d = sorted(sq_dist(x[i], x[j]) for j in range(n) if j != i)
        scores.append(math.fsum(d[: n - f - 2]))
    return scores


def krum_index(x: np.ndarray, f: int) -> int:
    """Lowest score; exact ties go to the lexicographically smallest update."""
    scores = krum_scores(x, f)
    return min(range(len(scores)), key=lambda i: (scores[i], tuple(x[i])))


def bulyan(x: np.ndarray, f: int) -> np.ndarray:
    """El Mhamdi et al. 2018, with the package's documented conventions (see Bulyan's docstring)."""
    n = x.shape[0]
    remaining = list(range(n))
    chosen = []
    for _ in range(n - 2 * f):
        r = len(remaining)
        k = min(max(1, r - f - 2), r - 1)
        best, best_score = None, None
        for i in remaining:
            d = sorted(sq_dist(x[i], x[j]) for j in remaining if j != i)
            s = math.fsum(d[:k]) if k > 0 else 0.0
            if best_score is None or (s, tuple(x[i])) < (best_score, tuple(x[best])):
                best, best_score = i, s
        chosen.append(best)
        remaining.remove(best)
    sel = x[sorted(chosen)].astype(np.float64)
    return np.array([closest_to_median_mean(sel[:, j], n - 4 * f) for j in range(x.shape[1])])


def closest_to_median_mean(values: np.ndarray, beta: int) -> float:
    """Bulyan's coordinate phase from its definition (El Mhamdi et al. 2018): the mean of the beta
    values closest to the median, found by brute force over every beta-subset in exact rational
    arithmetic. The closest beta values are the subset with the least total distance; among
    equally close subsets (a value at the same distance on either side) the lower values win."""
    vals = [Fraction(float(v)) for v in values]
    srt = sorted(vals)
    m = len(srt)
    med = (srt[(m - 1) // 2] + srt[m // 2]) / 2
    best = min(
        itertools.combinations(range(m), beta),
        key=lambda idx: (sum(abs(vals[i] - med) for i in idx), sum(vals[i] for i in idx)),
    )
    return float(sum(vals[i] for i in best) / beta)


def weiszfeld(x: np.ndarray, w: np.ndarray, nu: float, iters: int) -> np.ndarray:
    """Smoothed Weiszfeld directly in R^d (no distance-matrix trick)."""
    x = x.astype(np.float64)
    w = w / w.sum()
    z = w @ x
    for _ in range(iters):
        dist = np.linalg.norm(x - z, axis=1)
        beta = w / np.maximum(nu, dist)
        z = beta @ x / beta.sum()
    return z
