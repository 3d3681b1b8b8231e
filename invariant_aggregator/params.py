"""Between torch models and flat update vectors: flatten, unflatten, write back, mask.

A :class:`ParameterLayout` fixes which parameters take part (by default every parameter with
``requires_grad``) and their order, so clients and server agree on what coordinate k means.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import torch
from torch import nn

from .errors import AggregatorError

__all__ = ["ParameterLayout", "last_layer_names"]


@dataclass(frozen=True)
class ParameterLayout:
    """Names and shapes of the parameters in a flat vector, in order."""

    names: tuple[str, ...]
    shapes: tuple[torch.Size, ...]

    @classmethod
    def of(cls, module: nn.Module, only: Iterable[str] | Callable[[str, nn.Parameter], bool] | None = None):
        """Layout of ``module``'s trainable parameters, optionally restricted by ``only``
        (a collection of names, or a predicate ``(name, parameter) -> bool``)."""
        params = [(n, p) for n, p in module.named_parameters() if p.requires_grad]
        if only is not None:
            if callable(only):
                params = [(n, p) for n, p in params if only(n, p)]
            else:
                wanted = set(only)
                missing = wanted - {n for n, _ in params}
                if missing:
                    raise AggregatorError(
                        f"no trainable parameter named {sorted(missing)}; have {[n for n, _ in params]}"
                    )
                params = [(n, p) for n, p in params if n in wanted]
        if not params:
            raise AggregatorError("the layout selects no trainable parameter")
        return cls(tuple(n for n, _ in params), tuple(p.shape for _, p in params))

    @property
    def numel(self) -> int:
        return sum(s.numel() for s in self.shapes)

    def _tensors(self, source: nn.Module | Mapping[str, torch.Tensor]) -> list[torch.Tensor]:
        table = dict(source.named_parameters()) if isinstance(source, nn.Module) else source
        try:
            tensors = [table[n] for n in self.names]
        except KeyError as exc:
            raise AggregatorError(f"parameter {exc.args[0]!r} of the layout is missing from the source") from None
        for name, t, shape in zip(self.names, tensors, self.shapes, strict=True):
            if t.shape != shape:
                raise AggregatorError(
                    f"parameter {name!r} has shape {tuple(t.shape)}, the layout expects {tuple(shape)}"
                )
        return tensors

    def flatten(self, source: nn.Module | Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Concatenate the parameters (detached) into one vector."""
        return torch.cat([t.detach().reshape(-1) for t in self._tensors(source)])

    def unflatten(self, vector: torch.Tensor) -> dict[str, torch.Tensor]:
        """Split a flat vector into named views with the parameters' shapes."""
        if vector.ndim != 1 or vector.numel() != self.numel:
            raise AggregatorError(f"vector must have shape ({self.numel},), got {tuple(vector.shape)}")
        out, offset = {}, 0
        for name, shape in zip(self.names, self.shapes, strict=True):
            size = shape.numel()
            out[name] = vector[offset : offset + size].view(shape)
            offset += size
        return out

    @torch.no_grad()
    def assign(self, module: nn.Module, vector: torch.Tensor) -> None:
        """Copy a flat vector into the module's parameters (in place)."""
        for target, value in zip(self._tensors(module), self.unflatten(vector).values(), strict=True):
            target.copy_(value)

    @torch.no_grad()
    def add_(self, module: nn.Module, vector: torch.Tensor, alpha: float = 1.0) -> None:
        """param <- param + alpha * vector, e.g. the server step with alpha = -lr."""
        for target, value in zip(self._tensors(module), self.unflatten(vector).values(), strict=True):
            target.add_(value.to(target.dtype), alpha=alpha)

    def mask(self, names: Iterable[str]) -> torch.Tensor:
        """Boolean vector: True on the coordinates of the named parameters."""
        names = set(names)
        unknown = names - set(self.names)
        if unknown:
            raise AggregatorError(f"unknown parameter names {sorted(unknown)}")
        return torch.cat(
            [
                torch.full((s.numel(),), n in names, dtype=torch.bool)
                for n, s in zip(self.names, self.shapes, strict=True)
            ]
        )


def last_layer_names(module: nn.Module) -> list[str]:
    """Names of the parameters of the last submodule (in registration order) that owns any,
    e.g. the final ``nn.Linear`` of a classifier (the "Freezing Layers" baseline trains these)."""
    last = None
    for prefix, sub in module.named_modules():
        own = [n for n, _ in sub.named_parameters(recurse=False)]
        if own:
            last = [f"{prefix}.{n}" if prefix else n for n in own]
    if last is None:
        raise AggregatorError("the module has no parameters")
    return last
