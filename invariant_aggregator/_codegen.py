"""Kernels generated for one (N, window): the sorting network as straight-line code.

For each column the N values live in local scalars and the pruned network runs as
``v_a, v_b = min(v_a, v_b), max(v_a, v_b)``; LLVM then vectorises the loop over columns with
the network in registers. This is what brings the invariant aggregator near the cost of one
read of its input (the generic kernel in ``_cpu_kernels`` keeps a block buffer that LLVM cannot
vectorise because rows of the buffer might alias).

The source is written to a cache folder and imported from there, so numba's on-disk cache
keeps the compiled code across processes (compiling takes seconds: ~6 s for N = 20).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
import tempfile
from functools import lru_cache
from pathlib import Path

from ._networks import window_comparators

_VERSION = 2  # 2: row views and an unsigned column index (no gathers)
MAX_SPECIALISED_ROWS = 64  # beyond this the compile time outweighs the gain


def cache_dir() -> Path:
    root = os.environ.get("INVARIANT_AGGREGATOR_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "invariant_aggregator"
    )
    path = Path(root) / "kernels"
    path.mkdir(parents=True, exist_ok=True)
    return path


def window_source(n: int, lo: int, hi: int) -> str:
    pairs = window_comparators(n, lo, hi)
    v = [f"v{i}" for i in range(n)]
    body = [
        "import numpy as np",
        "from numba import njit, prange",
        "",
        "",
        "@njit(parallel=True, cache=True)",
        "def kernel(x, rows, min_agree, out, n_chunks):",
        f"    # window [{lo}, {hi}) of {n} sorted values, {len(pairs)} comparators",
        "    d = x.shape[1]",
        # one 1-D view per row, indexed by an unsigned column: numba then emits no negative-index
        # wraparound, the loads are plain vector loads (with x[r, j] and a signed j LLVM fell back
        # to gather instructions, and the kernel ran at 2.4x a read instead of 1.1x)
        *(f"    x{i} = x[rows[{i}]]" for i in range(n)),
        f"    inv = 1.0 / {hi - lo}",
        "    per = (d + n_chunks - 1) // n_chunks",
        "    bad = np.zeros(n_chunks, np.int64)",
        "    for c in prange(n_chunks):",
        "        nbad = 0",
        "        for j in range(np.uint64(c * per), np.uint64(min(d, (c + 1) * per))):",
        *(f"            {v[i]} = x{i}[j]" for i in range(n)),
        "            chk = " + " + ".join(f"({x} - {x})" for x in v),
        "            cnt = " + " + ".join(f"(np.int32({x} > 0) - np.int32({x} < 0))" for x in v),
        "            nbad += chk != chk",
        *(f"            {v[a]}, {v[b]} = min({v[a]}, {v[b]}), max({v[a]}, {v[b]})" for a, b in pairs),
        "            s = " + " + ".join(f"np.float64({v[i]})" for i in range(lo, hi)),
        "            out[j] = s * inv * (abs(cnt) >= min_agree)",
        "        bad[c] = nbad",
        "    return bad.sum()",
        "",
    ]
    return "\n".join(body)


@lru_cache(maxsize=64)
def window_kernel(n: int, lo: int, hi: int):
    """The compiled kernel(x, rows, min_agree, out, n_chunks) -> number of non-finite columns."""
    source = window_source(n, lo, hi)
    digest = hashlib.sha256(f"{_VERSION}\n{source}".encode()).hexdigest()[:16]
    name = f"window_n{n}_{lo}_{hi}_{digest}"
    path = cache_dir() / f"{name}.py"
    if not path.exists():
        # atomic: a concurrent process never imports a half-written file
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        with os.fdopen(fd, "w") as fh:
            fh.write(source)
        os.replace(tmp, path)
    module_name = f"invariant_aggregator._generated.{name}"
    module = sys.modules.get(module_name)
    if module is None:
        spec = importlib.util.spec_from_file_location(module_name, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        sys.modules[module_name] = module
    return module.kernel
