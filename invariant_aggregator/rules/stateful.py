"""Stateful rules: memory across rounds (``reset``, ``state_dict``, ``load_state_dict``).

Weak DP (its noise generator is its state), FoolsGold (per-client update histories) and
SparseFed (the server's error-feedback accumulator). The per-round mathematics is in
:mod:`invariant_aggregator.functional`; the classes hold and translate the state.
"""

from __future__ import annotations

import contextlib
import math

import numpy as np
import torch

from .. import functional as F
from .._inputs import Stack, check_client_ids, check_int, check_real
from ..errors import AggregatorError
from .base import StatefulRule, check_backend, register

__all__ = ["WeakDP", "FoolsGold", "SparseFed"]


MAX_SEED = 2**64 - 1  # torch.Generator.manual_seed takes 64 bits


@contextlib.contextmanager
def _state_errors(rule: str, expected: str):
    """Turn any failure to read a state dict into one AggregatorError that says what was expected."""
    try:
        yield
    except AggregatorError as exc:
        raise AggregatorError(f"{rule}.load_state_dict: {exc}") from None
    except (KeyError, TypeError, ValueError, RuntimeError, AttributeError) as exc:
        raise AggregatorError(
            f"{rule}.load_state_dict: not a state of this rule ({type(exc).__name__}: {exc}); expected {expected}, "
            "as returned by state_dict()"
        ) from None


def _clip_factors(stack: Stack, clip_norm: float, backend: str, rule: str) -> np.ndarray:
    norms = F.row_norms(stack, backend=backend)
    if not np.all(np.isfinite(norms)):
        raise AggregatorError(
            f"{rule}: the L2 norm of update row(s) {np.flatnonzero(~np.isfinite(norms)).tolist()} exceeds the float64 "
            "range, so the clipped update cannot be formed exactly; such an update is absurd (a scaled attack?): "
            "drop it"
        )
    return F.clip_factors(norms, clip_norm)


class _RandomState(StatefulRule):
    """Holds a torch.Generator seeded at construction, advanced by every call."""

    def _init_rng(self, seed):
        self._seed = seed
        self._generators: dict[str, torch.Generator] = {}

    def _generator(self, device: torch.device) -> torch.Generator:
        key = str(device)
        if key not in self._generators:
            gen = torch.Generator(device=device)
            if self._seed is None:
                gen.seed()
            else:
                gen.manual_seed(self._seed)
            self._generators[key] = gen
        return self._generators[key]

    def reset(self) -> None:
        self._generators = {}

    def state_dict(self) -> dict:
        return {"seed": self._seed, "generators": {k: g.get_state() for k, g in self._generators.items()}}

    def load_state_dict(self, state: dict) -> None:
        with _state_errors(self.name, "{'seed': int or None, 'generators': {device: ByteTensor}}"):
            seed = state["seed"]
            if seed is not None:
                check_int("seed", seed, 0, MAX_SEED)
            generators = {}
            for key, rng_state in state["generators"].items():
                gen = torch.Generator(device=key)
                gen.set_state(rng_state)
                generators[key] = gen
        self._seed, self._generators = seed, generators


@register
class WeakDP(_RandomState):
    """Weak differential privacy (Sun et al. 2019): clip each update to L2 norm ``clip_norm``,
    take the (weighted) mean, add N(0, noise_std^2) noise to every coordinate.

        out = sum_i w_i min(1, C / |g_i|) g_i / sum_i w_i + noise_std * xi,  xi ~ N(0, I)

    The noise comes from a generator seeded with ``seed`` (None: fresh entropy); it advances
    with each call and is part of ``state_dict()``. Defaults follow the edge-case attack's code
    (norm bound 2, noise std 0.025).

    Example
        >>> import numpy as np, invariant_aggregator as ia
        >>> ia.make("weak_dp", clip_norm=1.0, noise_std=0.0)(np.array([[3.0, 4.0], [0.3, 0.4]]))
        array([0.45, 0.6 ])
    """

    name = "weak_dp"
    accepts_weights = True

    def __init__(self, clip_norm=2.0, noise_std=0.025, seed=None, *, backend="auto"):
        self._set(
            clip_norm=check_real("clip_norm", clip_norm, 0.0, math.inf, low_open=True),
            noise_std=check_real("noise_std", noise_std, 0.0, math.inf),
            seed=None if seed is None else check_int("seed", seed, 0, MAX_SEED),
        )
        self.backend = check_backend(backend)
        self._init_rng(self.seed)

    def _aggregate(self, stack, weights, client_ids):
        w = np.ones(stack.n) if weights is None else weights
        w = w * F.power_of_two_scale(w.max())  # exact; weights up to 1e308 keep a finite sum
        coef = w * _clip_factors(stack, self.clip_norm, self.backend, self.name)
        out = F.weighted_sum(stack, coef, divisor=w.sum(), backend=self.backend, rule=self.name)
        if self.noise_std > 0:
            device = stack.device
            noise = torch.randn(stack.d, generator=self._generator(device), dtype=torch.float64, device=device)
            out += (noise * self.noise_std).to(stack.dtype)
        return out


@register
class FoolsGold(StatefulRule):
    """FoolsGold (Fung et al. 2020): down-weight clients whose *historical* updates look alike.

    Per client id, the history H_c is the sum of all its updates so far. For the clients of
    the round, with cs_ij the cosine similarity of their histories (i != j):

    1. v_i = max_j cs_ij; pardoning: cs_ij <- cs_ij * v_i / v_j where v_i < v_j;
    2. a_i = 1 - max_j cs_ij, clipped to [0, 1], divided by max_i a_i;
    3. a_i <- clip(kappa * (ln(a_i / (1 - a_i)) + 0.5), 0, 1), with a_i = 1 replaced by 0.99;
    4. out = sum_i a_i g_i / sum_i a_i (this round's updates).

    A similarity within 1e-9 of 1 counts as 1 (float rounding of collinear histories).
    If every client's history duplicates another's, all weights are 0 and the rule raises
    (FoolsGold then has no client it trusts). Requires ``client_ids``. History dtype follows
    the updates; memory is one d-vector per client ever seen.

    Example
        >>> import numpy as np, invariant_aggregator as ia
        >>> rule = ia.make("foolsgold")
        >>> g = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
        >>> rule(g, client_ids=[0, 1, 2])  # the two identical clients get weight 0
        array([1., 0.])
    """

    name = "foolsgold"
    needs_client_ids = True
    COLLINEAR = F.FOOLSGOLD_COLLINEAR

    def __init__(self, kappa=1.0, *, backend="auto"):
        self._set(kappa=check_real("kappa", kappa, 0.0, math.inf, low_open=True))
        self.backend = check_backend(backend)
        self.reset()
        self.last_weights: np.ndarray | None = None

    def reset(self) -> None:
        self._history: dict = {}

    def state_dict(self) -> dict:
        return {"history": {c: h.clone() for c, h in self._history.items()}}

    def load_state_dict(self, state: dict) -> None:
        with _state_errors(self.name, "{'history': {client id: 1-d float tensor}}"):
            history = {c: torch.as_tensor(h).clone() for c, h in state["history"].items()}
            check_client_ids(list(history), len(history), self.name)
            for c, h in history.items():
                if h.ndim != 1 or h.dtype not in (torch.float32, torch.float64) or not bool(torch.isfinite(h).all()):
                    raise AggregatorError(f"client {c!r}'s history must be a finite 1-d float tensor")
        self._history = history

    def weights_from_similarity(self, cs: np.ndarray) -> np.ndarray:
        """The FoolsGold weights of clients with history similarities ``cs`` (see
        :func:`invariant_aggregator.functional.foolsgold_weights`)."""
        return F.foolsgold_weights(cs, self.kappa, collinear=self.COLLINEAR)

    def _aggregate(self, stack, weights, client_ids):
        ids = check_client_ids(client_ids, stack.n, self.name)
        F.row_sq_norms(stack, backend=self.backend)  # raises on NaN/Inf before the history is touched
        updated = {}
        for i, c in enumerate(ids):
            row = stack.tensor[i]
            if c in self._history:
                if self._history[c].shape != row.shape:
                    raise AggregatorError(
                        f"foolsgold: client {c!r} sent {row.numel()} coordinates, its history has "
                        f"{self._history[c].numel()}; call reset() when the model changes"
                    )
                updated[c] = self._history[c].to(row.device, row.dtype) + row
                if not bool(torch.isfinite(updated[c]).all()):
                    raise AggregatorError(
                        f"foolsgold: client {c!r}'s update history overflows its dtype ({row.dtype}) with this "
                        "update; its updates are absurdly large (a scaled attack?): drop them. The history is unchanged"
                    )
            else:
                updated[c] = row.clone()
        self._history.update(updated)  # only once every new history is valid
        hist = torch.stack([self._history[c] for c in ids])
        cs = F.cosine_similarities(hist, backend=self.backend)
        a = self.weights_from_similarity(cs)
        self.last_weights = a
        if a.sum() <= 0:
            raise AggregatorError(
                "foolsgold: every client's update history is collinear with another client's, so every "
                "weight is 0; FoolsGold cannot tell sybils from honest clients in this round"
            )
        return F.weighted_sum(stack, a / a.sum(), backend=self.backend, rule=self.name)


@register
class SparseFed(StatefulRule):
    """SparseFed (Panda et al. 2022): clip each update to L2 norm ``clip_norm``, average, add to
    the server's error-feedback accumulator e, release only the top-k coordinates of e by
    magnitude and keep the rest for later rounds:

        e <- e + mean_i min(1, C/|g_i|) g_i;   out = top_k(e);   e <- e - out

    ``k``: an integer count of coordinates, or a float in (0, 1) for a fraction of d (rounded up).
    Ties in magnitude are broken by torch.topk. The accumulator is the rule's state.

    Example
        >>> import numpy as np, invariant_aggregator as ia
        >>> rule = ia.make("sparsefed", k=1, clip_norm=100.0)
        >>> rule(np.array([[3.0, 1.0], [3.0, 1.0]]))
        array([3., 0.])
        >>> rule(np.array([[0.0, 1.5], [0.0, 1.5]]))  # 1 carried + 1.5 new > 0
        array([0. , 2.5])
    """

    name = "sparsefed"

    def __init__(self, k=None, clip_norm=2.0, *, backend="auto"):
        if k is None:
            raise AggregatorError("sparsefed needs k: an integer count of coordinates or a fraction in (0, 1)")
        if isinstance(k, float) and not float(k).is_integer():
            k = check_real("k", k, 0.0, 1.0, low_open=True, high_open=True)
        else:
            k = check_int("k", k, 1)
        self._set(k=k, clip_norm=check_real("clip_norm", clip_norm, 0.0, math.inf, low_open=True))
        self.backend = check_backend(backend)
        self.reset()

    def reset(self) -> None:
        self._error: torch.Tensor | None = None

    def state_dict(self) -> dict:
        return {"error": None if self._error is None else self._error.clone()}

    def load_state_dict(self, state: dict) -> None:
        with _state_errors(self.name, "{'error': None or a 1-d float tensor}"):
            error = None if state["error"] is None else torch.as_tensor(state["error"]).clone()
            if error is not None and (error.ndim != 1 or error.dtype not in (torch.float32, torch.float64)):
                raise AggregatorError("the error accumulator must be a 1-d float tensor")
        self._error = error

    def _aggregate(self, stack, weights, client_ids):
        k = self.k if isinstance(self.k, int) else math.ceil(self.k * stack.d)
        if k > stack.d:
            raise AggregatorError(f"sparsefed: k = {k} exceeds the number of coordinates d = {stack.d}")
        coef = _clip_factors(stack, self.clip_norm, self.backend, self.name)
        mean = F.weighted_sum(stack, coef, divisor=stack.n, backend=self.backend, rule=self.name)
        if self._error is None:
            self._error = torch.zeros_like(mean)
        elif self._error.shape != mean.shape:
            raise AggregatorError(
                f"sparsefed: updates have d = {stack.d}, the error accumulator {self._error.numel()}; "
                "call reset() when the model changes"
            )
        out, self._error = F.error_feedback_top_k(self._error, mean, k)
        return out
