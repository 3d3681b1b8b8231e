"""Helpers shared by the tests: targets (device, backend) and conversions."""

import numpy as np
import pytest
import torch

CUDA = torch.cuda.is_available()
NO_CUDA = "no CUDA device on this machine; the CUDA variant runs where torch.cuda.is_available()"

# (device, backend): host data through numba, host data through the torch code, CUDA.
TARGETS = [
    pytest.param(("cpu", "auto"), id="cpu-numba"),
    pytest.param(("cpu", "torch"), id="cpu-torch"),
    pytest.param(("cuda", "auto"), id="cuda", marks=pytest.mark.skipif(not CUDA, reason=NO_CUDA)),
]


def to_target(x: np.ndarray, target):
    """numpy array -> the input type of the target (numpy for cpu-numba, torch otherwise)."""
    device, backend = target
    if device == "cpu" and backend == "auto":
        return x
    return torch.as_tensor(x, device=device)


def to_numpy(y) -> np.ndarray:
    return y.detach().cpu().numpy() if isinstance(y, torch.Tensor) else np.asarray(y)
