"""Validation of hyperparameters and client-update stacks, shared by every rule.

Inputs come as numpy arrays or torch tensors. CPU data is handled as a numpy view (no copy,
torch CPU tensors included) by the numba kernels; data on another device stays in torch.
"""

from __future__ import annotations

import math
import numbers
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .errors import AggregatorError

SUPPORTED_DTYPES = (np.float32, np.float64)


# --------------------------------------------------------------------------- hyperparameters
def check_real(name: str, value: Any, low: float, high: float, *, low_open=False, high_open=False) -> float:
    """Return ``value`` as a float if it lies in the interval, else raise AggregatorError."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise AggregatorError(f"{name} must be a real number, got {value!r} ({type(value).__name__})")
    value = float(value)
    lo_ok = value > low if low_open else value >= low
    hi_ok = value < high if high_open else value <= high
    if not math.isfinite(value) or not (lo_ok and hi_ok):
        interval = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        raise AggregatorError(f"{name} must lie in {interval}, got {value!r}")
    return value


def check_int(name: str, value: Any, low: int, high: int | None = None) -> int:
    """Return ``value`` as an int in [low, high], else raise AggregatorError (bools refused)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise AggregatorError(f"{name} must be an integer, got {value!r} ({type(value).__name__})")
    value = int(value)
    if value < low or (high is not None and value > high):
        bound = f"[{low}, {high}]" if high is not None else f">= {low}"
        raise AggregatorError(f"{name} must be an integer {bound}, got {value}")
    return value


def check_choice(name: str, value: Any, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise AggregatorError(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}")
    return value


SNAP_RELATIVE = 1e-9


def ceil_product(value: float, n: int | float) -> int:
    """ceil(value * n), where a product within a relative 1e-9 of an integer is that integer.

    Hyperparameters arrive as floats: 0.1 * 10, 0.7 * 10 and (5/12) * 12 are meant as 1, 7 and
    5, but their binary products can land a hair above the integer and a plain ceil would add
    one more. Representation errors are ~1e-16, far inside the snap width.
    """
    product = float(value) * float(n)
    nearest = round(product)
    if abs(product - nearest) <= SNAP_RELATIVE * max(1.0, abs(product)):
        return int(nearest)
    return math.ceil(product)


# --------------------------------------------------------------------------- update stacks
@dataclass(frozen=True)
class Stack:
    """A validated (N, d) stack of client updates.

    ``cpu`` is a numpy view when the data lives in host memory (numba path); ``tensor`` is the
    torch view (always set, zero-copy for host data). ``wrap`` turns a result back into the
    caller's type, device and dtype.
    """

    tensor: torch.Tensor
    cpu: np.ndarray | None
    was_numpy: bool

    @property
    def n(self) -> int:
        return int(self.tensor.shape[0])

    @property
    def d(self) -> int:
        return int(self.tensor.shape[1])

    @property
    def dtype(self) -> torch.dtype:
        return self.tensor.dtype

    @property
    def device(self) -> torch.device:
        return self.tensor.device

    def wrap(self, result):
        """Return ``result`` (numpy array or tensor, shape (d,)) in the caller's type."""
        if isinstance(result, np.ndarray):
            if self.was_numpy:
                return result
            return torch.from_numpy(result)
        if self.was_numpy:
            return result.detach().cpu().numpy()
        return result


def as_stack(updates: Any, *, min_clients: int = 1, rule: str = "aggregation") -> Stack:
    """Validate the shape and dtype of an (N, d) stack and return a :class:`Stack`.

    Finiteness is not checked here: the kernels check it in the same pass that reads the data.
    """
    if isinstance(updates, np.ma.MaskedArray):
        raise AggregatorError(
            f"{rule}: updates are a numpy masked array; a rule cannot honour the mask (it would be silently "
            "ignored). Drop the masked clients' rows, or fill them: updates.filled(...) / np.ma.compress_rows"
        )
    if isinstance(updates, np.ndarray):
        was_numpy = True
        array = updates
        if array.dtype.type in SUPPORTED_DTYPES and (
            not array.dtype.isnative or any(stride < 0 for stride in array.strides)
        ):
            # legitimate arrays the kernels cannot read in place (x[::-1], big-endian files): one copy
            array = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("="))
        if array.dtype.type not in SUPPORTED_DTYPES:
            raise AggregatorError(
                f"{rule}: updates must be float32 or float64, got dtype {array.dtype}; "
                "convert with updates.astype(np.float32)"
            )
        tensor = None
    elif isinstance(updates, torch.Tensor):
        was_numpy = False
        tensor = updates.detach()
        if tensor.dtype not in (torch.float32, torch.float64):
            raise AggregatorError(
                f"{rule}: updates must be float32 or float64, got {tensor.dtype}; convert with updates.float()"
            )
        if tensor.layout != torch.strided:
            raise AggregatorError(
                f"{rule}: updates must be a dense tensor, got layout {tensor.layout}; use .to_dense()"
            )
        if tensor.device.type == "meta":
            raise AggregatorError(f"{rule}: updates are a meta tensor (shape only, no data); pass real values")
        array = tensor.numpy() if tensor.device.type == "cpu" else None
    else:
        raise AggregatorError(
            f"{rule}: updates must be an (N, d) numpy array or torch tensor, got {type(updates).__name__}; "
            "stack per-client vectors first, e.g. torch.stack(list_of_updates)"
        )
    shape = tuple(updates.shape)
    if len(shape) != 2:
        hint = " (one client? use updates[None])" if len(shape) == 1 else ""
        raise AggregatorError(
            f"{rule}: updates must have shape (N, d) = (clients, coordinates), got shape {shape}{hint}"
        )
    n, d = shape
    if d == 0:
        raise AggregatorError(f"{rule}: updates have d = 0 coordinates, shape {shape}")
    if n < min_clients:
        raise AggregatorError(f"{rule}: needs at least {min_clients} client update(s), got N = {n}")
    if tensor is None:
        with warnings.catch_warnings():
            # read-only arrays are fine: nothing here writes to the input, so no copy is made
            warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
            tensor = torch.from_numpy(array)
    return Stack(tensor=tensor, cpu=array, was_numpy=was_numpy)


def check_weights(weights: Any, n: int, rule: str) -> np.ndarray | None:
    """Per-client weights: finite, non-negative, length N, positive sum; returned as float64."""
    if weights is None:
        return None
    if isinstance(weights, torch.Tensor):
        weights = weights.detach().cpu().numpy()
    raw = np.asarray(weights) if not isinstance(weights, (dict, set, str, bytes)) else np.asarray(None)
    if raw.dtype.kind not in "iuf" or isinstance(weights, np.ma.MaskedArray):
        raise AggregatorError(
            f"{rule}: weights must be a sequence of N numbers (one per client), got {type(weights).__name__} "
            f"{weights!r:.80}"
        )
    w = raw.astype(np.float64)
    if w.shape != (n,):
        raise AggregatorError(f"{rule}: weights must have shape ({n},), one per client, got shape {w.shape}")
    if not np.all(np.isfinite(w)):
        raise AggregatorError(f"{rule}: weights must be finite, got {w.tolist()}")
    if np.any(w < 0):
        raise AggregatorError(f"{rule}: weights must be non-negative, got {w.tolist()}")
    if not w.max() > 0:  # (not the sum: weights near 1e308 overflow it)
        raise AggregatorError(f"{rule}: weights must have a positive sum, got {w.tolist()}")
    return w


def check_client_ids(client_ids: Any, n: int, rule: str) -> list:
    if client_ids is None:
        raise AggregatorError(
            f"{rule}: this rule keeps per-client state across rounds; pass client_ids=[...] (one hashable id per row)"
        )
    if isinstance(client_ids, (str, bytes, dict)) or not hasattr(client_ids, "__len__"):
        raise AggregatorError(f"{rule}: client_ids must be a list of N ids (int or str), got {client_ids!r:.80}")
    ids = [c.item() if isinstance(c, (np.generic, torch.Tensor)) and c.ndim == 0 else c for c in client_ids]
    if len(ids) != n:
        raise AggregatorError(f"{rule}: client_ids must have one id per update row ({n}), got {len(ids)}")
    for c in ids:
        if isinstance(c, bool) or not isinstance(c, (int, str)):
            raise AggregatorError(f"{rule}: client ids must be int or str, got {c!r} ({type(c).__name__})")
    if len(set(ids)) != n:
        raise AggregatorError(f"{rule}: client_ids must be distinct, got {ids}")
    return ids


def raise_non_finite(rule: str, stack: Stack | None = None, rows=None) -> None:
    """Raise the rule's NaN/Inf error, naming the offending client rows (positions in the stack).

    Only called once a kernel has seen a non-finite value, so the extra pass that finds the rows
    costs nothing on the normal path."""
    where = ""
    if stack is not None:
        t = stack.tensor if rows is None else stack.tensor[torch.as_tensor(rows, dtype=torch.long, device=stack.device)]
        bad = torch.nonzero(~torch.isfinite(t).all(dim=1)).flatten().tolist()
        if rows is not None:
            bad = [int(rows[i]) for i in bad]
        if bad:
            shown = ", ".join(map(str, bad[:10])) + (f", ... ({len(bad)} rows)" if len(bad) > 10 else "")
            where = f" (row{'s' if len(bad) > 1 else ''} {shown})"
    raise AggregatorError(
        f"{rule}: updates contain NaN or Inf{where}; a client sent a non-finite update. "
        "Drop or repair that client's update before aggregating (e.g. filter rows with torch.isfinite(u).all(1))"
    )
