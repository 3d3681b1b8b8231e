"""Device-generic implementations in torch (CUDA, or CPU on request).

They work on column chunks so that temporaries stay bounded, and they double as an
independent reference for the numba kernels in the tests: different code (torch.sort, torch
reductions) computing the same quantities. Every function raises :class:`NonFinite` when the
selected rows hold NaN/Inf; the caller turns that into the rule's AggregatorError.
"""

from __future__ import annotations

import torch

_CHUNK_ELEMENTS = 1 << 24


class NonFinite(Exception):
    """The input holds NaN or Inf."""


def _blocks(t, rows, dtype=None, row_scale=None):
    """(c0, c1, t[rows, c0:c1]) over column chunks, optionally cast; checks finiteness.

    ``row_scale`` (float64, one per selected row, powers of two) multiplies each row after a
    cast to float64: the scaled form that keeps sums of squares of huge or tiny updates inside
    the float64 range. Scaling by a power of two is exact, so nothing else changes."""
    n, d = rows.numel(), t.shape[1]
    step = max(1, _CHUNK_ELEMENTS // max(1, n))
    for c0 in range(0, d, step):
        c1 = min(d, c0 + step)
        block = t[rows, c0:c1]
        if not bool(torch.isfinite(block).all()):
            raise NonFinite
        if row_scale is not None:
            yield c0, c1, block.to(torch.float64) * row_scale[:, None]
        else:
            yield c0, c1, block if dtype is None else block.to(dtype)


def window_mean(t, rows, lo, hi, min_agree, scale=1.0):
    """Mean of sorted positions [lo, hi) per column, masked where |sum sign| < min_agree.

    With ``scale`` (a power of two) the values are summed as x * scale in float64 and the mean
    divided by it again: the sum of huge float64 values then cannot overflow."""
    out = torch.empty(t.shape[1], dtype=t.dtype, device=t.device)
    for c0, c1, block in _blocks(t, rows):
        kept = torch.sort(block, dim=0).values[lo:hi]
        if scale != 1.0:
            mean = (kept.to(torch.float64) * scale).sum(0) / (hi - lo) / scale
        else:
            mean = kept.sum(0, dtype=torch.float64) / (hi - lo)
        if min_agree > 0:
            count = torch.sign(block).sum(0)
            mean = torch.where(count.abs() >= min_agree, mean, torch.zeros_like(mean))
        out[c0:c1] = mean.to(t.dtype)
    return out


def sign_sum(t, rows):
    out = torch.empty(t.shape[1], dtype=torch.int32, device=t.device)
    for c0, c1, block in _blocks(t, rows):
        out[c0:c1] = torch.sign(block).sum(0).to(torch.int32)
    return out


def weighted_row_sum(t, rows, coef, divisor=1.0, scale=1.0, out_dtype=None):
    """(sum_r coef_r x_r) / divisor in float64; with ``scale`` (a power of two) each value is
    multiplied by it before the sum and the result divided by it after (no overflow)."""
    coef = torch.as_tensor(coef, dtype=torch.float64, device=t.device)
    out = torch.empty(t.shape[1], dtype=out_dtype or t.dtype, device=t.device)
    for c0, c1, block in _blocks(t, rows, torch.float64):
        if scale != 1.0:
            block = block * scale
        out[c0:c1] = ((coef @ block) / divisor / scale).to(out.dtype)
    return out


def column_std(t, rows, mean):
    """Sample standard deviation (ddof = 1) per column around ``mean``, float64. Each column's
    deviations are scaled by a power of two of their own largest one, so neither the squares of
    a column near 1e300 nor those of a column near 1 beside it leave the float64 range."""
    mean = torch.as_tensor(mean, dtype=torch.float64, device=t.device)
    out = torch.empty(t.shape[1], dtype=torch.float64, device=t.device)
    n = rows.numel()
    for c0, c1, block in _blocks(t, rows, torch.float64):
        dev = block - mean[c0:c1]
        top = dev.abs().amax(0)
        scale = torch.ldexp(torch.ones_like(top), -torch.frexp(top).exponent.clamp(min=-1021))
        scaled = dev * scale
        out[c0:c1] = torch.sqrt((scaled * scaled).sum(0) / (n - 1)) / scale
    return out


def row_max_abs(t, rows):
    """max_j |x_rj| per selected row, float64."""
    out = torch.zeros(rows.numel(), dtype=torch.float64, device=t.device)
    for _, _, block in _blocks(t, rows):
        out = torch.maximum(out, block.abs().amax(1).to(torch.float64))
    return out


def row_sq_distances_to(t, rows, z, row_scale=None):
    """|x_r - z|^2 per selected row (times row_scale_r^2 when given), float64."""
    z = torch.as_tensor(z, dtype=torch.float64, device=t.device)
    out = torch.zeros(rows.numel(), dtype=torch.float64, device=t.device)
    for c0, c1, block in _blocks(t, rows, torch.float64):
        diff = block - z[c0:c1]
        if row_scale is not None:
            diff = diff * row_scale[:, None]
        out += (diff * diff).sum(1)
    return out


def pairwise_sq_distances(t, rows):
    """Squared distances from direct float64 differences, one row against all per step.

    Duplicated updates (colluding clients) then sit at distance exactly 0 and tie exactly,
    as in the numba kernel; a Gram-matrix formula leaves ~1e-16 relative noise that turns
    exact ties into near-ties broken by rounding."""
    n = rows.numel()
    dist = torch.zeros(n, n, dtype=torch.float64, device=t.device)
    for _, _, block in _blocks(t, rows, torch.float64):
        for i in range(n):
            diff = block - block[i]
            dist[i] += (diff * diff).sum(1)
    return (dist + dist.T) / 2


def gram(t, rows, row_scale=None):
    n = rows.numel()
    g = torch.zeros(n, n, dtype=torch.float64, device=t.device)
    for _, _, block in _blocks(t, rows, torch.float64, row_scale):
        g += block @ block.T
    return g


def row_sq_norms(t, rows, row_scale=None):
    norms = torch.zeros(rows.numel(), dtype=torch.float64, device=t.device)
    for _, _, block in _blocks(t, rows, torch.float64, row_scale):
        norms += (block * block).sum(1)
    return norms


def closest_to_median_mean(t, rows, beta):
    """Bulyan's coordinate phase: per column, the mean of the beta values nearest the median
    (even count: midpoint of the two middle values). A value at the same distance as another is
    taken lower value first (the values are sorted, and the stable sort by distance keeps that
    order), so repeated values never push a strictly nearer one out. The values are scaled by
    a power of two (exact) so that neither the distances nor the sum can overflow float64."""
    n = rows.numel()
    out = torch.empty(t.shape[1], dtype=t.dtype, device=t.device)
    lo, hi = (n - 1) // 2, n // 2 + 1
    scale = 2.0 ** -(2 + n.bit_length())
    for c0, c1, block in _blocks(t, rows):
        srt = torch.sort(block, dim=0).values.to(torch.float64) * scale
        med = srt[lo:hi].mean(0, keepdim=True)
        nearest = torch.argsort((srt - med).abs(), dim=0, stable=True)[:beta]
        # sum the kept values themselves: prefix sums would carry an outlier's rounding along
        kept = torch.sort(srt.gather(0, nearest), dim=0).values
        out[c0:c1] = (kept.sum(0) / beta / scale).to(t.dtype)
    return out
