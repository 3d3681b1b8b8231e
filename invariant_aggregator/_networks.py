"""Sorting networks: the data-independent comparator sequences the CPU kernels run.

A comparator (a, b) with a < b puts the smaller value on wire a. Applied to a block of
columns at once, each comparator is two vectorised min/max passes, so a network sorts many
columns in lock-step without branches (Knuth, TAOCP vol. 3, 5.3.4).
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np


def merge_exchange(n: int) -> list[tuple[int, int]]:
    """Batcher's merge-exchange sorting network for any n (Knuth's Algorithm 5.2.2M)."""
    pairs: list[tuple[int, int]] = []
    if n < 2:
        return pairs
    t = math.ceil(math.log2(n))
    p = 1 << (t - 1)
    while p > 0:
        q, r, d = 1 << (t - 1), 0, p
        while True:
            pairs.extend((i, i + d) for i in range(n - d) if i & p == r)
            if q == p:
                break
            d, q, r = q - p, q >> 1, p
        p >>= 1
    return pairs


def prune(pairs: list[tuple[int, int]], needed: set[int]) -> list[tuple[int, int]]:
    """Drop comparators that cannot influence the wires in ``needed`` (backward liveness)."""
    live = set(needed)
    kept = []
    for a, b in reversed(pairs):
        if a in live or b in live:
            kept.append((a, b))
            live.update((a, b))
    return kept[::-1]


@lru_cache(maxsize=256)
def window_comparators(n: int, lo: int, hi: int) -> tuple[tuple[int, int], ...]:
    """Comparators that put the order statistics x_(lo), ..., x_(hi-1) (0-based) in place.

    The kernels then sum exactly those wires. Summing the kept window directly, rather than
    subtracting the tails from the total, matters: an attacker's 1e30 would otherwise absorb
    every benign value in the total's rounding. The whole range needs no sorting at all.
    """
    if lo == 0 and hi == n:
        return ()
    return tuple(prune(merge_exchange(n), set(range(lo, hi))))


def window_plan(n: int, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`window_comparators` as two wire arrays, for the generic kernel."""
    pairs = window_comparators(n, lo, hi)
    return np.array([a for a, _ in pairs], dtype=np.int64), np.array([b for _, b in pairs], dtype=np.int64)
