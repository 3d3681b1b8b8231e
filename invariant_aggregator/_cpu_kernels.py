"""numba kernels for host memory: one pass over column blocks, no full-size temporaries.

Every kernel walks the (N, d) input in blocks of columns sized to stay in L1/L2, reads each
value once, checks finiteness in that same read, and returns how many chunks held NaN/Inf
(callers raise on a non-zero count). Work is split into a fixed number of chunks, not one per
thread, so results do not depend on the thread count. ``rows`` selects (and orders) the
client rows that take part, so subsets need no copy.

Reads go through one 1-D view per row indexed by an unsigned column (``x[rows[r]][u]``, u a
uint64): with ``x[src, j]`` and a signed j, numba adds the negative-index wraparound and LLVM
turns the loads into gather instructions, which made these kernels 2-6x slower than the same
loop with plain vector loads (same results, bit for bit).
"""

from __future__ import annotations

import numba
import numpy as np
import torch
from numba import njit, prange

N_CHUNKS = 64  # fixed: reductions then sum in the same order whatever the thread count
_L1_BYTES = 24 * 1024


def run(kernel, *args):
    """Call a parallel kernel and leave torch's intra-op thread count as the caller had it.

    With OpenMP as numba's threading layer, numba and torch share libgomp, and a parallel
    kernel's launch resets the process-wide OpenMP thread count: a caller that set
    ``torch.set_num_threads(1)`` (small models train fastest on one thread) found 2 afterwards,
    and on a loaded 2-core machine local training ran 10-50x slower."""
    threads = torch.get_num_threads()
    try:
        return kernel(*args)
    finally:
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)


def block_columns(n_rows: int, itemsize: int) -> int:
    """Columns per block so that an (n_rows, block) buffer fits in L1."""
    cols = _L1_BYTES // max(1, n_rows * itemsize)
    return int(min(2048, max(32, cols - cols % 16)))


def chunk_count(d: int, block: int) -> int:
    return max(1, min(N_CHUNKS, -(-d // block)))


@njit(cache=True, inline="always")
def _blocks_of(chunk, n_chunks, n_blocks):
    per = (n_blocks + n_chunks - 1) // n_chunks
    return chunk * per, min(n_blocks, (chunk + 1) * per)


@njit(parallel=True, cache=True)
def window_mean(x, rows, lo, hi, first, second, min_agree, out, block, n_chunks):
    """out[j] = mean of the sorted values x_(lo..hi-1) of column j over ``rows``,
    times 0 where |sum of signs| < min_agree (min_agree = 0 disables the mask)."""
    n = rows.shape[0]
    d = x.shape[1]
    n_blocks = (d + block - 1) // block
    bad = np.zeros(n_chunks, np.int64)
    inv = 1.0 / (hi - lo)
    for c in prange(n_chunks):
        buf = np.empty((n, block), dtype=x.dtype)
        acc = np.empty(block, np.float64)
        chk = np.empty(block, x.dtype)
        cnt = np.empty(block, np.int32)
        b0, b1 = _blocks_of(c, n_chunks, n_blocks)
        for b in range(b0, b1):
            j0 = b * block
            w = min(block, d - j0)
            for j in range(w):
                chk[j] = 0
                cnt[j] = 0
            ju = np.uint64(j0)
            for r in range(n):
                xr = x[rows[r]]
                br = buf[r]
                for j in range(np.uint64(w)):
                    v = xr[ju + j]
                    br[j] = v
                    chk[j] += v - v  # 0 for finite v, NaN for NaN/Inf
                    cnt[j] += np.int32(v > 0) - np.int32(v < 0)
            for j in range(w):
                if chk[j] != 0:
                    bad[c] += 1
                    break
            for t in range(first.shape[0]):
                a = first[t]
                e = second[t]
                for j in range(w):
                    p = buf[a, j]
                    q = buf[e, j]
                    buf[a, j] = p if p < q else q
                    buf[e, j] = q if p < q else p
            for j in range(w):
                acc[j] = 0.0
            for r in range(lo, hi):
                for j in range(w):
                    acc[j] += buf[r, j]
            for j in range(w):
                keep = abs(cnt[j]) >= min_agree
                out[j0 + j] = acc[j] * inv if keep else 0.0
    return bad.sum()


@njit(parallel=True, cache=True)
def sign_sum(x, rows, out, block, n_chunks):
    """out[j] = sum over rows of sign(x[r, j]), with sign(0) = 0."""
    n = rows.shape[0]
    d = x.shape[1]
    n_blocks = (d + block - 1) // block
    bad = np.zeros(n_chunks, np.int64)
    for c in prange(n_chunks):
        chk = np.empty(block, x.dtype)
        cnt = np.empty(block, np.int32)
        b0, b1 = _blocks_of(c, n_chunks, n_blocks)
        for b in range(b0, b1):
            j0 = b * block
            w = min(block, d - j0)
            for j in range(w):
                chk[j] = 0
                cnt[j] = 0
            ju = np.uint64(j0)
            for r in range(n):
                xr = x[rows[r]]
                for j in range(np.uint64(w)):
                    v = xr[ju + j]
                    chk[j] += v - v
                    cnt[j] += np.int32(v > 0) - np.int32(v < 0)
            for j in range(w):
                out[j0 + j] = cnt[j]
                if chk[j] != 0:
                    bad[c] += 1
    return bad.sum()


@njit(parallel=True, cache=True)
def weighted_row_sum(x, rows, coef, divisor, out, block, n_chunks):
    """out[j] = (sum_r coef[r] * x[rows[r], j]) / divisor, accumulated in float64.

    Dividing once at the end (not multiplying by coef / divisor) keeps a mean of equal rows
    equal to the row and mean(1, 4, 7) equal to 4."""
    n = rows.shape[0]
    d = x.shape[1]
    n_blocks = (d + block - 1) // block
    bad = np.zeros(n_chunks, np.int64)
    for c in prange(n_chunks):
        acc = np.empty(block, np.float64)
        chk = np.empty(block, x.dtype)
        b0, b1 = _blocks_of(c, n_chunks, n_blocks)
        for b in range(b0, b1):
            j0 = b * block
            w = min(block, d - j0)
            for j in range(w):
                acc[j] = 0.0
                chk[j] = 0
            ju = np.uint64(j0)
            for r in range(n):
                xr = x[rows[r]]
                k = coef[r]
                for j in range(np.uint64(w)):
                    v = xr[ju + j]
                    chk[j] += v - v
                    acc[j] += k * v
            for j in range(w):
                out[j0 + j] = acc[j] / divisor
                if chk[j] != 0:
                    bad[c] += 1
    return bad.sum()


@njit(parallel=True, cache=True, fastmath={"reassoc", "contract"})
def _row_sq_deviations(x, rows, z, centred, block, n_chunks):
    """|x_r - z|^2 per selected row (|x_r|^2 when not ``centred``; z is then not read), in
    float64. Returns (the sums, chunks with NaN/Inf in x)."""
    n = rows.shape[0]
    d = x.shape[1]
    n_blocks = (d + block - 1) // block
    partial = np.zeros((n_chunks, n))
    bad = np.zeros(n_chunks, np.int64)
    for c in prange(n_chunks):
        buf = np.empty((n, block), np.float64)
        b0, b1 = _blocks_of(c, n_chunks, n_blocks)
        for b in range(b0, b1):
            j0 = b * block
            w = min(block, d - j0)
            if _load_f64(x, rows, j0, w, buf):
                bad[c] += 1
            for i in range(n):
                s = 0.0
                if centred:
                    for j in range(w):
                        t = buf[i, j] - z[j0 + j]
                        s += t * t
                else:
                    for j in range(w):
                        s += buf[i, j] * buf[i, j]
                partial[c, i] += s
    out = np.zeros(n)
    for c in range(n_chunks):
        for i in range(n):
            out[i] += partial[c, i]
    return out, bad.sum()


@njit(cache=True)
def _load_f64(x, rows, j0, w, buf):
    """Copy a block of columns into a float64 buffer; True if it holds NaN/Inf."""
    chk = 0.0
    ju = np.uint64(j0)
    for r in range(rows.shape[0]):
        xr = x[rows[r]]
        br = buf[r]
        for j in range(np.uint64(w)):
            v = np.float64(xr[ju + j])
            br[j] = v
            chk += v - v
    return chk != 0


@njit(parallel=True, cache=True, fastmath={"reassoc", "contract"})
def pairwise_sq_distances(x, rows, block, n_chunks):
    """D[i, k] = sum_j (x_i,j - x_k,j)^2 from direct differences in float64.

    No Gram-matrix shortcut: |a|^2 + |b|^2 - 2ab loses every digit when updates nearly
    coincide. Returns (D, number of chunks with NaN/Inf)."""
    n = rows.shape[0]
    d = x.shape[1]
    n_blocks = (d + block - 1) // block
    partial = np.zeros((n_chunks, n, n))
    bad = np.zeros(n_chunks, np.int64)
    for c in prange(n_chunks):
        buf = np.empty((n, block), np.float64)
        b0, b1 = _blocks_of(c, n_chunks, n_blocks)
        for b in range(b0, b1):
            j0 = b * block
            w = min(block, d - j0)
            if _load_f64(x, rows, j0, w, buf):
                bad[c] += 1
            for i in range(n):
                for k in range(i + 1, n):
                    s = 0.0
                    for j in range(w):
                        t = buf[i, j] - buf[k, j]
                        s += t * t
                    partial[c, i, k] += s
    dist = np.zeros((n, n))
    for c in range(n_chunks):
        for i in range(n):
            for k in range(i + 1, n):
                dist[i, k] += partial[c, i, k]
    for i in range(n):
        for k in range(i + 1, n):
            dist[k, i] = dist[i, k]
    return dist, bad.sum()


@njit(parallel=True, cache=True, fastmath={"reassoc", "contract"})
def gram(x, rows, block, n_chunks):
    """G[i, k] = sum_j x_i,j x_k,j in float64 (for cosine similarities and norms)."""
    n = rows.shape[0]
    d = x.shape[1]
    n_blocks = (d + block - 1) // block
    partial = np.zeros((n_chunks, n, n))
    bad = np.zeros(n_chunks, np.int64)
    for c in prange(n_chunks):
        buf = np.empty((n, block), np.float64)
        b0, b1 = _blocks_of(c, n_chunks, n_blocks)
        for b in range(b0, b1):
            j0 = b * block
            w = min(block, d - j0)
            if _load_f64(x, rows, j0, w, buf):
                bad[c] += 1
            for i in range(n):
                for k in range(i, n):
                    s = 0.0
                    for j in range(w):
                        s += buf[i, j] * buf[k, j]
                    partial[c, i, k] += s
    g = np.zeros((n, n))
    for c in range(n_chunks):
        for i in range(n):
            for k in range(i, n):
                g[i, k] += partial[c, i, k]
    for i in range(n):
        for k in range(i + 1, n):
            g[k, i] = g[i, k]
    return g, bad.sum()


def thread_count() -> int:
    return numba.get_num_threads()


_UNCENTRED = np.zeros(1)  # the z of the uncentred kernel: never read


def row_sq_norms(x, rows, block, n_chunks):
    """|x_r|^2 for each selected row, in float64. Returns (norms, chunks with NaN/Inf)."""
    return _row_sq_deviations(x, rows, _UNCENTRED, False, block, n_chunks)


def row_sq_distances_to(x, rows, z, block, n_chunks):
    """|x_r - z|^2 for each selected row against one float64 vector z, in float64.
    Returns (squared distances, chunks with NaN/Inf in x)."""
    return _row_sq_deviations(x, rows, z, True, block, n_chunks)
