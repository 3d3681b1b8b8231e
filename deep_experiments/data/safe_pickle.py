"""Loading pickles without executing them: an unpickler that admits an allow-list of globals.

CIFAR-10's batches and the edge-case attack's Southwest images are pickles written by numpy.
Plain ``pickle.load`` would run whatever a tampered file asks for; this unpickler resolves only
numpy's array-rebuild functions and refuses every other global with one clear error.
"""

from __future__ import annotations

import importlib
import io
import pickle

import numpy as np

from ..errors import ExperimentError

# (module, name) pairs numpy 1.x and 2.x write for plain arrays and their dtypes.
_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"),  # pickle protocol 5
    ("numpy._core.numeric", "_frombuffer"),
    ("_codecs", "encode"),  # python 2 byte strings inside numpy pickles
}


class _AllowListUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) not in _ALLOWED:
            raise ExperimentError(
                f"refusing to unpickle the global {module}.{name}: only numpy arrays are allowed in data "
                f"pickles; the file is not a plain CIFAR-10 / edge-case data file (re-download it)"
            )
        if module == "_codecs":
            import codecs

            return codecs.encode
        if name in ("ndarray", "dtype"):
            return getattr(np, name)
        # numpy >= 2 moved numpy.core to numpy._core; files from either version name one of them
        modern = module.replace("numpy.core.", "numpy._core.")
        try:
            return getattr(importlib.import_module(modern), name)
        except ImportError:  # pragma: no cover - numpy 1.x
            return getattr(importlib.import_module(module.replace("numpy._core.", "numpy.core.")), name)


def safe_load(data: bytes, *, encoding: str = "latin1"):
    """Unpickle ``data`` admitting only numpy arrays, dtypes and plain containers."""
    try:
        return _AllowListUnpickler(io.BytesIO(data), encoding=encoding).load()
    except ExperimentError:
        raise
    except Exception as exc:  # truncated or corrupt bytes
        raise ExperimentError(f"not a readable pickle ({type(exc).__name__}: {exc}); re-download the file") from None
