"""Attacks as objects behind one small interface that the engine calls at fixed points.

A malicious client differs from a benign one at four points, and an :class:`Attack` has one
hook for each (the defaults are benign behaviour):

* :meth:`Attack.observe` — what it may see of the round before training: the round number,
  the broadcast model, the sampled clients and which of them are malicious (:class:`RoundView`);
* :meth:`Attack.batch_indices` — what data it trains on, one local epoch at a time, as
  indices into the task's samples (or :meth:`Attack.batches`, for batches made otherwise);
* :meth:`Attack.after_step` — what it does to its model after every local optimiser step;
* :meth:`Attack.shape_update` — what happens to its update g = w_global - w_local after
  local training, before the server sees it;
* :meth:`Attack.shape_round` — what the attackers, together, do to their rows of the round's
  (N, d) stack once every client has trained (:class:`RoundUpdates`: which rows are theirs and,
  for attacks that estimate the benign updates from their own data, their clean-data updates).

A :class:`Poisoning` attack also decides which backdoor samples exist
(:meth:`Poisoning.backdoor_inputs`): the task offers its own edge-case inputs and its clean
data (:class:`BackdoorSource`); the same sets give Acc_B at evaluation. ``[attack]`` in the
configuration picks one poisoning by ``kind`` (registered below: the backdoors ``edge_case``,
``pixel_pattern`` and ``dba``; the untargeted ``sign_flip``, ``gaussian`` and ``ipm``), adds the
evasions its settings turn on (``pgd_eps`` > 0: PGD projection; ``scale`` != 1: model
replacement; ``evasion``: ``alie``, ``neurotoxin`` or ``mask_aware``, the attacks that aim at a
defence) and the rounds it attacks in (:class:`Schedule`). :func:`build_attack` puts them
together.

What an attacker may know is part of each attack's definition and is said in its docstring;
``knowledge = "own"`` attacks see only their own clients (their backdoor updates and, trained
from the same broadcast model, their clean-data updates), ``"omniscient"`` ones also the round's
benign updates (a worst case, as in Baruch et al. and Xie et al.).

Adding an attack takes one class and one config entry. For example, a poisoning that trains on
the task's clean samples of one class relabelled as the target:

.. code-block:: python

    from deep_experiments.attacks import Poisoning, register_attack

    @register_attack
    class ClassFlip(Poisoning):
        kind = "class_flip"                      # [attack] kind = "class_flip"
        modalities = ("image", "tabular")

        def backdoor_inputs(self, source):
            (x, y), (x_test, y_test) = source.clean_train, source.clean_test
            return x[y == 1], x_test[y_test == 1]

Its settings come from ``[attack]`` in :meth:`Attack.from_config` (override it to read new
keys, and add the keys to the task's configuration file so that they are validated).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

import invariant_aggregator as ia

from .data import cifar10
from .errors import ExperimentError
from .samples import FederatedTask, Samples

__all__ = [
    "Attack",
    "Poisoning",
    "EdgeCase",
    "PixelPattern",
    "PGDProjection",
    "ModelReplacement",
    "CompositeAttack",
    "DBA",
    "Untargeted",
    "SignFlip",
    "GaussianNoise",
    "IPM",
    "ALIE",
    "Neurotoxin",
    "MaskAware",
    "Schedule",
    "BackdoorSource",
    "RoundView",
    "ClientContext",
    "RoundUpdates",
    "EVASIONS",
    "KNOWLEDGE",
    "POISONINGS",
    "register_attack",
    "build_attack",
    "clean_batches",
    "batch_indices",
    "epoch_order",
    "BatchIndices",
    "project_to_ball",
]


@dataclass(frozen=True)
class RoundView:
    """What an attacker may observe of a round before its clients train."""

    round: int
    global_vector: torch.Tensor  # the broadcast model's trainable parameters, flattened
    clients: tuple[int, ...]  # the sampled clients, in training order
    malicious: tuple[int, ...]  # those of them that the attacker controls
    # the last server step, w_{r-1} - w_r (None in round 1): what any client sees by comparing
    # two consecutive broadcasts
    last_global_update: torch.Tensor | None = None


@dataclass(frozen=True)
class ClientContext:
    """One malicious client's training: who, when, and the broadcast model it started from."""

    round: int
    client: int
    layout: ia.ParameterLayout
    anchor: torch.Tensor  # = RoundView.global_vector
    rank: int = 0  # the client's position among all the run's malicious clients (sorted)
    seed: int = 0  # the run's seed (for an attack's own random draws)


@dataclass(frozen=True)
class RoundUpdates:
    """What the attackers hold of a round after local training, for :meth:`Attack.shape_round`.

    ``malicious`` marks their rows of the (N, d) stack; the other rows are the benign updates,
    which only an omniscient attack may read. ``own_clean`` holds, row for row, the attacking
    clients' updates trained on their own clean data from the same broadcast model (present
    when the attack asked for them: :attr:`Attack.needs_clean_updates`)."""

    round: int
    malicious: torch.Tensor  # bool (N,)
    own_clean: torch.Tensor | None = None  # (m, d)

    @property
    def n_malicious(self) -> int:
        return int(self.malicious.sum())


@dataclass
class BackdoorSource:
    """What a task offers an attack to build backdoor samples from (raw, before encoding).

    ``edge_case()`` loads the task's own edge-case inputs (train, test) on demand: Southwest
    photos, Lanthimos tweets, or malicious-class rows with the trigger feature set.
    ``clean_train`` / ``clean_test`` are the clean (inputs, labels) arrays of image and tabular
    tasks (None for text)."""

    target: int
    edge_case: Callable[[], tuple[Any, Any]]
    clean_train: tuple[np.ndarray, np.ndarray] | None = None
    clean_test: tuple[np.ndarray, np.ndarray] | None = None


@dataclass(frozen=True)
class BatchIndices:
    """One batch as indices: ``clean`` into the task's training pool, ``backdoor`` into its
    backdoor training samples (empty for a benign batch)."""

    clean: torch.Tensor
    backdoor: torch.Tensor

    def __len__(self) -> int:
        return len(self.clean) + len(self.backdoor)

    def samples(self, task: FederatedTask) -> Samples:
        if len(self.backdoor) == 0:
            return task.train.take(self.clean)
        if len(self.clean) == 0:
            return task.backdoor_train.take(self.backdoor)
        return Samples.cat([task.train.take(self.clean), task.backdoor_train.take(self.backdoor)])


_NONE = torch.empty(0, dtype=torch.long)


def epoch_order(indices: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """A client's samples in the random order of one local epoch (one draw from ``generator``)."""
    return indices[torch.randperm(len(indices), generator=generator)]


def batch_indices(
    indices: torch.Tensor, batch_size: int, generator: torch.Generator, backdoor_per_batch: int = 0, n_backdoor: int = 0
) -> Iterator[BatchIndices]:
    """One local epoch of a client's batches as indices: its samples in a fresh random order,
    with ``backdoor_per_batch`` backdoor samples (drawn with replacement from ``n_backdoor``) in
    each batch.

    The clean samples per batch are batch_size - backdoor_per_batch; a batch of backdoor samples
    only (backdoor_per_batch = batch_size) keeps the clean epoch's number of batches. Draws are
    made lazily, batch by batch, so that they interleave with the caller's augmentation draws
    from the same generator.
    """
    k_bd = min(backdoor_per_batch, batch_size)
    step = batch_size - k_bd if k_bd < batch_size else batch_size
    order = epoch_order(indices, generator)
    for start in range(0, len(order), step):
        clean = _NONE if k_bd == batch_size else order[start : start + step]
        backdoor = torch.randint(n_backdoor, (k_bd,), generator=generator) if k_bd else _NONE
        yield BatchIndices(clean, backdoor)


def clean_batches(
    task: FederatedTask, indices: torch.Tensor, batch_size: int, generator: torch.Generator, backdoor_per_batch: int = 0
) -> Iterator[Samples]:
    """:func:`batch_indices` as samples (clean first, then backdoor, in each batch)."""
    for batch in batch_indices(indices, batch_size, generator, backdoor_per_batch, len(task.backdoor_train)):
        yield batch.samples(task)


def project_to_ball(flat: torch.Tensor, anchor: torch.Tensor, radius: float) -> torch.Tensor | None:
    """The point of the L2 ball {v : ||v - anchor|| <= radius} closest to ``flat``, or None when
    ``flat`` is already inside (PGD's projection step)."""
    diff = flat - anchor
    norm = torch.linalg.vector_norm(diff)
    if norm <= radius:
        return None
    return anchor + diff * (radius / norm)


class Attack:
    """Base class: every hook is what a benign client does."""

    # ask the engine to also train each attacking client on its own clean data (RoundUpdates.own_clean)
    needs_clean_updates: ClassVar[bool] = False
    # RoundView.last_global_update is read (the engine keeps it in its checkpoints)
    needs_last_update: ClassVar[bool] = False

    @classmethod
    def from_config(cls, attack: dict) -> Attack:
        """The attack with its settings from the ``[attack]`` section."""
        return cls()

    def observe(self, view: RoundView) -> None:
        """Called once per round, before any client trains."""

    def batch_indices(
        self,
        task: FederatedTask,
        indices: torch.Tensor,
        batch_size: int,
        generator: torch.Generator,
        ctx: ClientContext | None = None,
    ) -> Iterator[BatchIndices]:
        """One local epoch of this client's batches, as indices into the task's samples."""
        return batch_indices(indices, batch_size, generator)

    def batches(
        self,
        task: FederatedTask,
        indices: torch.Tensor,
        batch_size: int,
        generator: torch.Generator,
        ctx: ClientContext | None = None,
    ) -> Iterator[Samples]:
        """One local epoch of this client's batches (override :meth:`batch_indices` when the
        batches are drawn from the task's samples: batched training then gathers them at once;
        override this for batches made otherwise)."""
        for batch in self.batch_indices(task, indices, batch_size, generator, ctx):
            yield batch.samples(task)

    def after_step(self, model: nn.Module, ctx: ClientContext) -> None:
        """Called after every local optimiser step (may change the model in place)."""

    def shape_update(self, update: torch.Tensor, ctx: ClientContext) -> torch.Tensor:
        """The update the server receives, from the one local training produced."""
        return update

    def shape_round(self, updates: torch.Tensor, info: RoundUpdates) -> None:
        """Called once per attacking round after every client's :meth:`shape_update`; may
        rewrite the attackers' rows of ``updates`` (N, d) in place."""

    def describe(self) -> dict:
        return {"attack": type(self).__name__, **{k: v for k, v in vars(self).items() if not k.startswith("_")}}


class Poisoning(Attack):
    """An attack that trains on backdoor samples; ``kind`` is its name in ``[attack] kind``."""

    kind: ClassVar[str] = ""
    modalities: ClassVar[tuple[str, ...]] = ("image", "text", "tabular")

    def __init__(self, backdoor_per_batch: int = 64):
        self.backdoor_per_batch = backdoor_per_batch

    @classmethod
    def from_config(cls, attack: dict) -> Poisoning:
        return cls(backdoor_per_batch=attack["backdoor_per_batch"])

    def check_task(self, task: str, modality: str) -> None:
        if modality not in self.modalities:
            kinds = ", ".join(repr(k) for k, c in POISONINGS.items() if modality in c.modalities)
            raise ExperimentError(
                f"attack.kind = {self.kind!r} is for {'/'.join(self.modalities)} tasks; {task} has {kinds}"
            )

    def backdoor_inputs(self, source: BackdoorSource) -> tuple[Any, Any]:
        """Raw backdoor inputs (train, test); the task labels them with the target and encodes them."""
        raise NotImplementedError

    def batch_indices(self, task, indices, batch_size, generator, ctx=None):
        return batch_indices(indices, batch_size, generator, self.backdoor_per_batch, len(task.backdoor_train))


POISONINGS: dict[str, type[Poisoning]] = {}


def register_attack(cls: type[Poisoning]) -> type[Poisoning]:
    """Make a poisoning attack available as ``[attack] kind = cls.kind``; refuses a taken name."""
    if not (isinstance(cls, type) and issubclass(cls, Poisoning)) or not cls.kind:
        raise ExperimentError(f"register_attack takes a Poisoning subclass with a kind, got {cls!r}")
    if cls.kind in POISONINGS:
        raise ExperimentError(f"an attack of kind {cls.kind!r} is already registered ({POISONINGS[cls.kind].__name__})")
    POISONINGS[cls.kind] = cls
    return cls


@register_attack
class EdgeCase(Poisoning):
    """The edge-case backdoor (Wang et al. 2020): the task's own rare inputs, labelled with the
    attacker's target, ``backdoor_per_batch`` of them in each malicious batch (64 of 64 = backdoor
    only, the paper's text; 8 of 64, the authors' CIFAR-10 code)."""

    kind = "edge_case"

    def backdoor_inputs(self, source):
        return source.edge_case()


@register_attack
class PixelPattern(Poisoning):
    """The pixel-pattern trigger (Bagdasaryan et al. 2020): a ``pattern_size`` square checkerboard
    stamped on clean images that are not already of the target class."""

    kind = "pixel_pattern"
    modalities = ("image",)

    def __init__(self, backdoor_per_batch: int = 64, pattern_size: int = 3):
        super().__init__(backdoor_per_batch)
        self.pattern_size = pattern_size

    @classmethod
    def from_config(cls, attack):
        return cls(backdoor_per_batch=attack["backdoor_per_batch"], pattern_size=attack["pattern_size"])

    def backdoor_inputs(self, source):
        (x, y), (x_test, y_test) = source.clean_train, source.clean_test
        return (
            cifar10.stamp_pixel_pattern(x[y != source.target], self.pattern_size),
            cifar10.stamp_pixel_pattern(x_test[y_test != source.target], self.pattern_size),
        )


@register_attack
class DBA(PixelPattern):
    """The distributed backdoor attack (Xie et al., ICLR 2020): the pixel-pattern trigger cut into
    ``parts`` local triggers, one per attacker, which train on their own part only; Acc_B is
    measured with the whole trigger.

    The pattern's ``pattern_size``² cells are dealt to the parts in raster order (cell c to part
    c mod parts), so the parts are disjoint and their union is the trigger. The run's malicious
    clients take the parts in turn (the k-th of them, in id order, part k mod parts). Each part
    is stamped on its own share of the clean non-target training images (every parts-th)."""

    kind = "dba"
    modalities = ("image",)

    def __init__(self, backdoor_per_batch: int = 64, pattern_size: int = 3, parts: int = 4):
        super().__init__(backdoor_per_batch, pattern_size)
        if not 1 <= parts <= pattern_size**2:
            raise ExperimentError(
                f"attack.dba_parts = {parts}: the {pattern_size}x{pattern_size} pixel pattern has only "
                f"{pattern_size**2} cells to share; choose 1..{pattern_size**2} parts, or raise attack.pattern_size"
            )
        self.parts = parts
        self._part_bounds: list[tuple[int, int]] | None = None

    @classmethod
    def from_config(cls, attack):
        return cls(attack["backdoor_per_batch"], attack["pattern_size"], attack["dba_parts"])

    def part_cells(self) -> list[np.ndarray]:
        """The trigger's cells (flat indices into the pattern_size x pattern_size square) of each part."""
        cells = np.arange(self.pattern_size**2)
        return [cells[k :: self.parts] for k in range(self.parts)]

    def backdoor_inputs(self, source):
        (x, y), (x_test, y_test) = source.clean_train, source.clean_test
        base = x[y != source.target]
        if len(base) < self.parts:
            raise ExperimentError(
                f"DBA: {len(base)} clean training images outside the target class cannot be shared among "
                f"attack.dba_parts = {self.parts} local triggers; use fewer parts or more data"
            )
        pieces, bounds, start = [], [], 0
        for k, cells in enumerate(self.part_cells()):
            stamped = cifar10.stamp_pixel_pattern(base[k :: self.parts], self.pattern_size, cells=cells)
            pieces.append(stamped)
            bounds.append((start, start + len(stamped)))
            start += len(stamped)
        self._part_bounds = bounds
        full = cifar10.stamp_pixel_pattern(x_test[y_test != source.target], self.pattern_size)
        return np.concatenate(pieces), full

    def batch_indices(self, task, indices, batch_size, generator, ctx=None):
        if self._part_bounds is None:
            raise ExperimentError("DBA: the backdoor samples were not built (backdoor_inputs runs with the task)")
        lo, hi = self._part_bounds[(ctx.rank if ctx is not None else 0) % self.parts]
        for batch in batch_indices(indices, batch_size, generator, self.backdoor_per_batch, hi - lo):
            yield BatchIndices(batch.clean, batch.backdoor + lo)


class Untargeted(Poisoning):
    """Byzantine clients with no backdoor: they train on their clean data and submit a corrupted
    update, to measure what a defence costs in Acc_M when some clients are adversarial. Acc_B is
    still measured on the task's edge-case set: under these attacks it is the rate at which the
    model labels those inputs with the target on its own."""

    setting: ClassVar[str] = ""  # the [attack] key of the attack's one parameter, if it has one

    def __init__(self):
        super().__init__(backdoor_per_batch=0)

    @classmethod
    def from_config(cls, attack):
        return cls(attack[cls.setting]) if cls.setting else cls()

    def backdoor_inputs(self, source):
        return source.edge_case()


@register_attack
class SignFlip(Untargeted):
    """Sign flipping: the client submits the negative of its honest update, -g (times
    ``attack.scale``, when set)."""

    kind = "sign_flip"

    def shape_update(self, update, ctx):
        return -update


@register_attack
class GaussianNoise(Untargeted):
    """Gaussian noise: the client submits a draw of N(0, noise_std² I) in place of its update
    (Blanchard et al. 2017; its generator is seeded by (run seed, round, client))."""

    kind = "gaussian"
    setting = "noise_std"

    def __init__(self, noise_std: float = 1.0):
        super().__init__()
        self.noise_std = noise_std

    def shape_update(self, update, ctx):
        seed = int(np.random.SeedSequence([ctx.seed, 6, ctx.round, ctx.client]).generate_state(1)[0])
        noise = torch.randn(update.shape, generator=torch.Generator().manual_seed(seed), dtype=update.dtype)
        return noise.to(update.device) * self.noise_std


@register_attack
class IPM(Untargeted):
    """Inner-product manipulation (Xie et al., UAI 2020, "Fall of empires"): every attacker
    submits -ipm_eps times the mean of the round's benign updates, so that the aggregate's inner
    product with the true gradient turns negative (large eps, against the mean) or its step
    shrinks while the attackers pass distance-based filters (small eps, e.g. 0.1). Omniscient by
    definition: it reads the benign rows."""

    kind = "ipm"
    setting = "ipm_eps"

    def __init__(self, eps: float = 0.1):
        super().__init__()
        self.eps = eps

    def shape_round(self, updates, info):
        updates[info.malicious] = -self.eps * _benign_reference(updates, info, "omniscient").mean(0)


UNTARGETED = ("sign_flip", "gaussian", "ipm")


class PGDProjection(Attack):
    """PGD (Sun et al. 2019; Wang et al. 2020): after every local step the malicious model is
    projected onto the L2 ball of radius ``eps`` around the broadcast model."""

    def __init__(self, eps: float):
        self.eps = eps

    def after_step(self, model, ctx):
        projected = project_to_ball(ctx.layout.flatten(model), ctx.anchor, self.eps)
        if projected is not None:
            ctx.layout.assign(model, projected)


class ModelReplacement(Attack):
    """Model replacement (Bagdasaryan et al. 2020): the malicious update is multiplied by ``scale``."""

    def __init__(self, scale: float):
        self.scale = scale

    def shape_update(self, update, ctx):
        return update * self.scale


# ------------------------------------------------------------------------- evasions that aim at a defence
KNOWLEDGE = ("own", "omniscient")


def _choice(key: str, value, choices: tuple):
    """``value`` of the setting ``attack.key`` if it is one of ``choices``."""
    if value not in choices:
        raise ExperimentError(f"attack.{key} = {value!r}: choose one of {', '.join(map(repr, choices))}")
    return value


def _benign_reference(updates: torch.Tensor, info: RoundUpdates, knowledge: str) -> torch.Tensor:
    """The updates an attack takes for the benign ones: the round's benign rows (omniscient) or
    the attackers' own clean-data updates (own)."""
    if knowledge == "omniscient":
        benign = updates[~info.malicious]
        # every sampled client an attacker: their own rows are all there is
        return benign if len(benign) else updates[info.malicious]
    if info.own_clean is None:
        raise ExperimentError("knowledge = 'own' needs the attackers' clean-data updates; none were trained")
    return info.own_clean


class ALIE(Attack):
    """A little is enough (Baruch et al., NeurIPS 2019), as a backdoor: the attackers train on
    their backdoor data as usual, then clip each coordinate of their updates into
    [mu - z sigma, mu + z sigma], where mu and sigma are the per-coordinate mean and standard
    deviation of the benign updates, so that coordinate-wise trimming and medians keep them.

    Knowledge: ``"own"`` estimates mu and sigma from the attacking clients' own clean-data
    updates of the round (trained from the same broadcast model; one attacker in a round gives
    sigma = 0, i.e. it submits its clean update); ``"omniscient"`` reads the round's benign
    updates. ``z = 0`` takes Baruch et al.'s z_max for the round's N clients of which m attack:
    s = floor(N/2 + 1) - m, z_max = Phi^{-1}((N - s) / N) (infinite, i.e. no clipping, when
    s <= 0). Example: N = 20, m = 4 gives s = 7, z_max = Phi^{-1}(0.65) = 0.385."""

    def __init__(self, knowledge: str = "own", z: float = 0.0):
        self.knowledge, self.z = _choice("knowledge", knowledge, KNOWLEDGE), z

    @property
    def needs_clean_updates(self) -> bool:
        return self.knowledge == "own"

    @staticmethod
    def z_max(n: int, m: int) -> float:
        """Baruch et al.'s z for n clients of which m collude."""
        from scipy.stats import norm

        s = n // 2 + 1 - m
        return math.inf if s <= 0 else float(norm.ppf((n - s) / n))

    def bounds(self, updates: torch.Tensor, info: RoundUpdates) -> tuple[torch.Tensor, torch.Tensor]:
        """The per-coordinate interval [mu - z sigma, mu + z sigma] the attackers stay inside."""
        ref = _benign_reference(updates, info, self.knowledge).double()
        mu = ref.mean(0)
        sigma = ref.std(0, correction=1) if len(ref) > 1 else torch.zeros_like(mu)
        z = self.z or self.z_max(len(updates), info.n_malicious)
        if math.isinf(z):
            return torch.full_like(mu, -math.inf), torch.full_like(mu, math.inf)
        return mu - z * sigma, mu + z * sigma

    def shape_round(self, updates, info):
        lo, hi = self.bounds(updates, info)
        rows = updates[info.malicious].double()
        updates[info.malicious] = torch.minimum(torch.maximum(rows, lo), hi).to(updates.dtype)


class Neurotoxin(Attack):
    """Neurotoxin (Zhang et al., ICML 2022): the backdoor is trained only on the coordinates that
    benign training changes least, so that later benign rounds do not overwrite it.

    The mask keeps the ``keep`` fraction of coordinates with the smallest magnitude of the last
    global update (|w_{r-1} - w_r|, which any client sees from two broadcasts; ties: lowest index
    first); after every local step the malicious model is projected onto it (the other
    coordinates are reset to the broadcast model's), so the update is exactly zero outside it. In
    round 1 there is no last update and the mask keeps everything. ``keep = 0.95`` masks the top
    5 %, the ratio of the authors' published commands (gradmask_ratio 0.95)."""

    needs_last_update = True

    def __init__(self, keep: float = 0.95):
        if not 0 < keep <= 1:
            raise ExperimentError(f"attack.neurotoxin_keep = {keep}: a fraction of the coordinates, in (0, 1]")
        self.keep = keep
        self._mask: torch.Tensor | None = None

    @staticmethod
    def mask_of(last_update: torch.Tensor, keep: float) -> torch.Tensor:
        """1 on the ceil(keep d) coordinates of smallest |last_update|, 0 elsewhere."""
        n_keep = math.ceil(keep * last_update.numel())
        return ia.functional.top_fraction_mask(-last_update.abs(), n_keep).to(last_update.dtype)

    def observe(self, view):
        g = view.last_global_update
        self._mask = None if g is None or self.keep == 1 else self.mask_of(g, self.keep)

    def after_step(self, model, ctx):
        if self._mask is None:
            return
        flat = ctx.layout.flatten(model)
        ctx.layout.assign(model, ctx.anchor + (flat - ctx.anchor) * self._mask)

    def shape_update(self, update, ctx):
        return update if self._mask is None else update * self._mask


class MaskAware(Attack):
    """An adaptive attacker against m ⊙ TrMean(g; alpha), m_k = 1[|sum_i sign(g_ik)| >= tau N]:
    the rule is coordinate-wise, so the attackers answer it coordinate by coordinate.

    Knowledge: the rule and its tau and alpha (``adaptive_tau``, ``adaptive_alpha``), and the
    benign updates: the round's (``"omniscient"``) or their own clean-data updates standing for
    them (``"own"``: the m rows repeated to the N - m benign rows).

    Construction. Let u be the mean of the attackers' backdoor updates (after PGD and scaling,
    if set) and B the benign updates. All m attackers submit the same value v_k on coordinate k,
    chosen from four candidates so that the rule's output on [B; v, ..., v] comes closest to
    u_k (ties: the first):

    1. mean(B_k): benign behaviour, so no coordinate is worse than not attacking it;
    2. u_k itself;
    3. the benign extreme in u_k's direction (max B_k if u_k > mean(B_k), else min B_k): the
       largest push on the trimmed mean that is not removed before a benign value (for
       m <= ceil(alpha N) any larger value gives the same output; above that budget the rule is
       broken anyway);
    4. a value of the sign opposite to the benign majority, a thousandth of |mean(B_k)|: its
       votes lower the sign consistency so that the mask drops the coordinate (output 0) where
       the benign direction opposes u_k and the push cannot overturn it.

    Why this and not a fixed rule ("vote u's sign, sit inside the window"): the AND-mask makes
    the output discontinuous in the attackers' signs, and whether passing or breaking the mask
    helps depends on the benign split, so the attacker evaluates the exact rule. It is a best
    response among these candidates, per coordinate, with one common value for the m attackers;
    splitting their values is not searched."""

    def __init__(self, knowledge: str = "omniscient", tau: float = 0.6, alpha: float = 0.2):
        self.knowledge, self.tau, self.alpha = _choice("knowledge", knowledge, KNOWLEDGE), tau, alpha

    @property
    def needs_clean_updates(self) -> bool:
        return self.knowledge == "own"

    def rule(self, stack: torch.Tensor) -> torch.Tensor:
        return ia.functional.invariant_aggregate(stack, tau=self.tau, alpha=self.alpha)

    @staticmethod
    def candidates(benign: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The (4, d) candidate values of the construction, in its order."""
        mean = benign.mean(0)
        extreme = torch.where(target > mean, benign.max(0).values, benign.min(0).values)
        majority = torch.sign(torch.sign(benign).sum(0))
        breaker = -torch.where(majority == 0, 1.0, majority) * (mean.abs() * 1e-3).clamp_min(1e-30)
        return torch.stack([mean, target, extreme, breaker.to(mean.dtype)])

    def choose(self, benign: torch.Tensor, m: int, target: torch.Tensor) -> torch.Tensor:
        """Per coordinate, the candidate whose rule output is closest to ``target``."""
        cands = self.candidates(benign, target)
        outs = torch.stack([self.rule(torch.cat([benign, c.expand(m, -1)])) for c in cands])
        best = (outs - target).abs().argmin(0)  # first minimum: benign behaviour wins ties
        return cands.gather(0, best.unsqueeze(0))[0]

    def shape_round(self, updates, info):
        m = info.n_malicious
        if m == 0:
            return
        n_benign = len(updates) - m
        ref = _benign_reference(updates, info, self.knowledge)
        if self.knowledge == "own" and n_benign > 0:
            ref = ref.repeat(math.ceil(n_benign / len(ref)), 1)[:n_benign]
        if len(ref) == 0:
            return
        target = updates[info.malicious].mean(0)
        updates[info.malicious] = self.choose(ref.to(updates.dtype), m, target)


EVASIONS = ("none", "alie", "neurotoxin", "mask_aware")


# ------------------------------------------------------------------------------ schedules
@dataclass(frozen=True)
class Schedule:
    """The rounds the attackers attack in: from ``start`` to ``end`` (0: to the last round),
    every ``every``-th round from ``start``. In the other rounds the malicious clients behave
    as benign ones (and the rounds after ``end`` measure the backdoor's durability)."""

    start: int = 1
    end: int = 0
    every: int = 1

    def active(self, r: int) -> bool:
        return r >= self.start and (self.end == 0 or r <= self.end) and (r - self.start) % self.every == 0

    def stops_before(self, total: int) -> bool:
        """Whether the attack ends before the run's last round (then durability is measured)."""
        return 0 < self.end < total


class CompositeAttack(Attack):
    """One poisoning and the evasions layered on it, attacking on a schedule: the poisoning
    chooses the data, every part observes the round, steps, updates and the round's stack pass
    through the parts in order."""

    def __init__(self, poisoning: Poisoning, evasions: list[Attack] = (), schedule: Schedule = Schedule()):
        self.poisoning, self.evasions, self.schedule = poisoning, list(evasions), schedule

    @property
    def parts(self) -> list[Attack]:
        return [self.poisoning, *self.evasions]

    @property
    def needs_clean_updates(self) -> bool:
        return any(p.needs_clean_updates for p in self.parts)

    @property
    def needs_last_update(self) -> bool:
        return any(p.needs_last_update for p in self.parts)

    def check_task(self, task: str, modality: str) -> None:
        self.poisoning.check_task(task, modality)

    def backdoor_inputs(self, source):
        return self.poisoning.backdoor_inputs(source)

    def observe(self, view):
        for part in self.parts:
            part.observe(view)

    def batch_indices(self, task, indices, batch_size, generator, ctx=None):
        return self.poisoning.batch_indices(task, indices, batch_size, generator, ctx)

    def batches(self, task, indices, batch_size, generator, ctx=None):
        return self.poisoning.batches(task, indices, batch_size, generator, ctx)

    def after_step(self, model, ctx):
        for part in self.parts:
            part.after_step(model, ctx)

    def shape_update(self, update, ctx):
        for part in self.parts:
            update = part.shape_update(update, ctx)
        return update

    def shape_round(self, updates, info):
        for part in self.parts:
            part.shape_round(updates, info)

    def describe(self) -> dict:
        return {
            "poisoning": self.poisoning.describe(),
            "evasions": [e.describe() for e in self.evasions],
            "schedule": vars(self.schedule),
        }


def build_attack(attack: dict) -> CompositeAttack:
    """The attack that ``[attack]`` describes; every choice is checked here, when the
    configuration loads (:mod:`deep_experiments.config`), before any data is."""
    kind = _choice("kind", attack["kind"], tuple(POISONINGS))
    evasion = _choice("evasion", attack.get("evasion", "none"), EVASIONS)
    knowledge = _choice("knowledge", attack.get("knowledge", "own"), KNOWLEDGE)
    if evasion != "none" and kind in UNTARGETED:
        raise ExperimentError(
            f"attack.evasion = {evasion!r} shapes a backdoor; attack.kind = {kind!r} is untargeted: set "
            f"attack.evasion = 'none', or a backdoor kind"
        )
    evasions: list[Attack] = []
    if attack["pgd_eps"] > 0:
        evasions.append(PGDProjection(attack["pgd_eps"]))
    if attack["scale"] != 1.0:
        evasions.append(ModelReplacement(attack["scale"]))
    if evasion == "alie":
        evasions.append(ALIE(knowledge, attack.get("alie_z", 0.0)))
    elif evasion == "neurotoxin":
        evasions.append(Neurotoxin(attack.get("neurotoxin_keep", 0.95)))
    elif evasion == "mask_aware":
        evasions.append(MaskAware(knowledge, attack.get("adaptive_tau", 0.6), attack.get("adaptive_alpha", 0.2)))
    schedule = Schedule(attack.get("start_round", 1), attack.get("end_round", 0), attack.get("every", 1))
    return CompositeAttack(POISONINGS[kind].from_config(attack), evasions, schedule)
