"""The contract every rule follows, the registry, and :func:`make`.

A rule is a small callable object: hyperparameters validated at construction, an (N, d) stack
of client updates in (pseudo-gradients g_i = w_global - w_local, one row per client; numpy or
torch, CPU or CUDA, float32/float64), the aggregated d-vector out, in the input's type, device
and dtype. The server then applies ``w <- w - lr * aggregate``.

Add a rule of your own with :func:`register`:

>>> import numpy as np, invariant_aggregator as ia
>>> from invariant_aggregator import functional as F
>>> @ia.register
... class MeanOfTwoMiddle(ia.AggregationRule):
...     '''Mean of the two middle order statistics (a worked example).'''
...     name = "example_mean_of_two_middle"
...     def __init__(self):
...         self._set()
...     def _aggregate(self, stack, weights, client_ids):
...         return F.sorted_window_mean(stack, stack.n // 2 - 1, stack.n // 2 + 1)
>>> ia.make("example_mean_of_two_middle")(np.array([[1.0], [2.0], [4.0], [9.0]]))
array([3.])
>>> ia.unregister("example_mean_of_two_middle")
"""

from __future__ import annotations

import inspect
import math
from abc import ABC, abstractmethod
from typing import Any, ClassVar

from .. import functional as F
from .._inputs import Stack, as_stack, check_choice, check_int, check_real, check_weights
from ..errors import AggregatorError

__all__ = ["AggregationRule", "StatefulRule", "RULES", "register", "unregister", "make", "available_rules"]

RULES: dict[str, type[AggregationRule]] = {}


def register(cls: type[AggregationRule]) -> type[AggregationRule]:
    """Add a rule class to the registry under ``cls.name`` (usable as a class decorator).

    Refuses a class that is not an :class:`AggregationRule`, an empty name, and a name that is
    already taken (a rule is never silently replaced: :func:`unregister` the old one first).
    """
    if not (isinstance(cls, type) and issubclass(cls, AggregationRule)):
        raise AggregatorError(f"register() takes an AggregationRule subclass, got {cls!r}")
    name = getattr(cls, "name", "")
    if not isinstance(name, str) or not name.isidentifier():
        raise AggregatorError(
            f"{cls.__name__}.name must be a non-empty identifier (the name make() takes), got {name!r}"
        )
    if name in RULES:
        raise AggregatorError(
            f"a rule named {name!r} is already registered ({RULES[name].__module__}.{RULES[name].__qualname__}); "
            f"choose another name, or unregister({name!r}) first"
        )
    RULES[name] = cls
    return cls


def unregister(name: str) -> None:
    """Remove a rule from the registry (e.g. a user's rule, before registering a new version)."""
    if name not in RULES:
        raise AggregatorError(f"no rule named {name!r} is registered; registered: {', '.join(available_rules())}")
    del RULES[name]


class AggregationRule(ABC):
    """Base class. Subclasses set ``name``, validate their hyperparameters in ``__init__`` (storing
    them with ``self._set(...)``) and implement ``_aggregate(stack, weights, client_ids)``, which
    returns the d-vector as a torch tensor (what :mod:`invariant_aggregator.functional` returns
    when given a stack); ``__call__`` validates the input and restores the caller's type."""

    name: ClassVar[str] = ""
    accepts_weights: ClassVar[bool] = False
    stateful: ClassVar[bool] = False
    needs_client_ids: ClassVar[bool] = False  # state kept per client: every call needs client_ids
    backend: str = "auto"
    _hparams: dict[str, Any] = {}

    def __call__(self, updates, weights=None, client_ids=None):
        """Aggregate an (N, d) stack. ``weights``: per-client, only for rules that define them.
        ``client_ids``: one id per row; used by stateful rules, ignored by the others."""
        stack = as_stack(updates, rule=self.name)
        if weights is not None and not self.accepts_weights:
            raise AggregatorError(
                f"{self.name}: this rule does not define per-client weights; rules that do: "
                f"{', '.join(sorted(n for n, c in RULES.items() if c.accepts_weights))}"
            )
        w = check_weights(weights, stack.n, self.name)
        return stack.wrap(self._aggregate(stack, w, client_ids))

    @abstractmethod
    def _aggregate(self, stack: Stack, weights, client_ids):
        """The aggregate of a validated stack, as a torch tensor of shape (d,)."""

    @property
    def hyperparameters(self) -> dict[str, Any]:
        """The rule's resolved hyperparameters (for run records)."""
        return dict(self._hparams)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._hparams.items())
        return f"{type(self).__name__}({args})"

    def _set(self, **hparams):
        self._hparams = hparams
        for key, value in hparams.items():
            setattr(self, key, value)


class StatefulRule(AggregationRule):
    """A rule with memory across rounds: ``reset()``, ``state_dict()``, ``load_state_dict()``.

    ``state_dict()`` holds only tensors, numbers, strings and lists/dicts of them, so it can be
    saved with ``torch.save`` and read back with ``torch.load(path, weights_only=True)``.
    ``reset()`` returns the rule to the state it had right after construction.
    """

    stateful: ClassVar[bool] = True

    @abstractmethod
    def reset(self) -> None:
        """Forget everything learnt from earlier calls."""

    @abstractmethod
    def state_dict(self) -> dict:
        """The state, as tensors and plain values."""

    @abstractmethod
    def load_state_dict(self, state: dict) -> None:
        """Restore a state returned by :meth:`state_dict`."""


# --------------------------------------------------------------------------- shared checks
def check_f(f) -> int:
    if f is None:
        raise AggregatorError("f, the number of malicious updates to tolerate, is required (an integer >= 0)")
    return check_int("f", f, 0)


def check_threshold(tau, tau_sum):
    """Exactly one scale: tau in [0, 1] (default 0.6, the authors' value) or tau_sum >= 0."""
    if tau is not None and tau_sum is not None:
        raise AggregatorError(
            f"give tau (averaged scale, in [0, 1]) or tau_sum (Eq. 3's sum scale, = N * tau), not both; "
            f"got tau = {tau!r}, tau_sum = {tau_sum!r}"
        )
    if tau_sum is not None:
        return None, check_real("tau_sum", tau_sum, 0.0, math.inf)
    return check_real("tau", 0.6 if tau is None else tau, 0.0, 1.0), None


def check_backend(backend) -> str:
    return check_choice("backend", backend, F.BACKENDS)


# --------------------------------------------------------------------------- factory
def available_rules() -> list[str]:
    """Names accepted by :func:`make`."""
    return sorted(RULES)


def make(name: str, **hyperparameters) -> AggregationRule:
    """Build an aggregation rule by name, validating its hyperparameters.

    >>> import invariant_aggregator as ia
    >>> ia.make("invariant", tau=0.6, alpha=0.1)
    Invariant(tau=0.6, alpha=0.1, tau_sum=None, trim='definition3')
    """
    if name not in RULES:
        raise AggregatorError(f"unknown aggregation rule {name!r}; available: {', '.join(available_rules())}")
    try:
        return RULES[name](**hyperparameters)
    except TypeError as exc:
        params = [p for p in inspect.signature(RULES[name].__init__).parameters if p != "self"]
        raise AggregatorError(f"{name}: {exc}; accepted hyperparameters: {', '.join(params)}") from None
