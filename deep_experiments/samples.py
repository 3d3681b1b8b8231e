"""The data containers every layer of the experiments shares: samples and a federated task.

They live apart from the task builders and the attacks, which both use them, so that neither
imports the other's module for its types.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

__all__ = ["Samples", "FederatedTask", "tensor_samples"]


@dataclass
class Samples:
    """Model inputs (a tensor, or a tuple of tensors indexed together) and integer labels."""

    inputs: torch.Tensor | tuple[torch.Tensor, ...]
    labels: torch.Tensor

    def __len__(self) -> int:
        return len(self.labels)

    def map(self, f: Callable[[torch.Tensor], torch.Tensor]) -> Samples:
        """``f`` applied to every input tensor and to the labels."""
        inputs = tuple(map(f, self.inputs)) if isinstance(self.inputs, tuple) else f(self.inputs)
        return Samples(inputs, f(self.labels))

    def take(self, idx: torch.Tensor) -> Samples:
        return self.map(lambda t: t[idx.to(t.device)])

    def to(self, device) -> Samples:
        return self.map(lambda t: t.to(device))

    @staticmethod
    def cat(parts: list[Samples]) -> Samples:
        first = parts[0].inputs
        if isinstance(first, tuple):
            inputs = tuple(torch.cat([p.inputs[i] for p in parts]) for i in range(len(first)))
        else:
            inputs = torch.cat([p.inputs for p in parts])
        return Samples(inputs, torch.cat([p.labels for p in parts]))


def tensor_samples(x, y) -> Samples:
    """Samples from array-likes: inputs as given (made contiguous), labels as int64."""
    return Samples(torch.as_tensor(np.ascontiguousarray(x)), torch.as_tensor(np.asarray(y, dtype=np.int64)))


def identity_prepare(inputs, *, augment: bool, generator=None):
    """The preparation of tasks whose inputs go to the model as they are (no augmentation, no
    draws): batched training then gathers a round's batches at once."""
    return inputs


@dataclass
class FederatedTask:
    """A federated data set with its model: the training pool, each client's indices into it, the
    clean and backdoor test sets, the attacker's backdoor training samples, the model
    constructor and the preprocessing. Everything lives on the training device as tensors."""

    name: str
    train: Samples
    clients: list[torch.Tensor]  # per client: indices into ``train``
    test: Samples
    backdoor_train: Samples  # what a malicious client mixes into its batches (attacker's label)
    backdoor_test: Samples  # Acc_B = share of these predicted as ``target``
    target: int
    make_model: Callable[[], nn.Module]
    prepare: Callable = identity_prepare  # (inputs, augment=, generator=) -> model input
    info: dict = field(default_factory=dict)  # sizes and choices, recorded in the summary
