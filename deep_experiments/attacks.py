"""Attacks as objects behind one small interface that the engine calls at fixed points.

A malicious client differs from a benign one at four points, and an :class:`Attack` has one
hook for each (the defaults are benign behaviour):

* :meth:`Attack.observe` — what it may see of the round before training: the round number,
  the broadcast model, the sampled clients and which of them are malicious (:class:`RoundView`);
* :meth:`Attack.batch_indices` — what data it trains on, one local epoch at a time, as
  indices into the task's samples (or :meth:`Attack.batches`, for batches made otherwise);
* :meth:`Attack.after_step` — what it does to its model after every local optimiser step;
* :meth:`Attack.shape_update` — what happens to its update g = w_global - w_local after
  local training, before the server sees it.

A :class:`Poisoning` attack also decides which backdoor samples exist
(:meth:`Poisoning.backdoor_inputs`): the task offers its own edge-case inputs and its clean
data (:class:`BackdoorSource`); the same sets give Acc_B at evaluation. ``[attack]`` in the
configuration picks one poisoning by ``kind`` (registered below: ``edge_case``,
``pixel_pattern``) and adds the evasions its settings turn on (``pgd_eps`` > 0: PGD
projection; ``scale`` != 1: model replacement). :func:`build_attack` puts them together.

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
    "BackdoorSource",
    "RoundView",
    "ClientContext",
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


@dataclass(frozen=True)
class ClientContext:
    """One malicious client's training: who, when, and the broadcast model it started from."""

    round: int
    client: int
    layout: ia.ParameterLayout
    anchor: torch.Tensor  # = RoundView.global_vector


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

    @classmethod
    def from_config(cls, attack: dict) -> Attack:
        """The attack with its settings from the ``[attack]`` section."""
        return cls()

    def observe(self, view: RoundView) -> None:
        """Called once per round, before any client trains."""

    def batch_indices(
        self, task: FederatedTask, indices: torch.Tensor, batch_size: int, generator: torch.Generator
    ) -> Iterator[BatchIndices]:
        """One local epoch of this client's batches, as indices into the task's samples."""
        return batch_indices(indices, batch_size, generator)

    def batches(
        self, task: FederatedTask, indices: torch.Tensor, batch_size: int, generator: torch.Generator
    ) -> Iterator[Samples]:
        """One local epoch of this client's batches (override :meth:`batch_indices` when the
        batches are drawn from the task's samples: batched training then gathers them at once;
        override this for batches made otherwise)."""
        for batch in self.batch_indices(task, indices, batch_size, generator):
            yield batch.samples(task)

    def after_step(self, model: nn.Module, ctx: ClientContext) -> None:
        """Called after every local optimiser step (may change the model in place)."""

    def shape_update(self, update: torch.Tensor, ctx: ClientContext) -> torch.Tensor:
        """The update the server receives, from the one local training produced."""
        return update

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

    def batch_indices(self, task, indices, batch_size, generator):
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


class CompositeAttack(Attack):
    """One poisoning and the evasions layered on it: the poisoning chooses the data, every part
    observes the round, steps and updates pass through the parts in order."""

    def __init__(self, poisoning: Poisoning, evasions: list[Attack] = ()):
        self.poisoning, self.evasions = poisoning, list(evasions)

    @property
    def parts(self) -> list[Attack]:
        return [self.poisoning, *self.evasions]

    def check_task(self, task: str, modality: str) -> None:
        self.poisoning.check_task(task, modality)

    def backdoor_inputs(self, source):
        return self.poisoning.backdoor_inputs(source)

    def observe(self, view):
        for part in self.parts:
            part.observe(view)

    def batch_indices(self, task, indices, batch_size, generator):
        return self.poisoning.batch_indices(task, indices, batch_size, generator)

    def batches(self, task, indices, batch_size, generator):
        return self.poisoning.batches(task, indices, batch_size, generator)

    def after_step(self, model, ctx):
        for part in self.parts:
            part.after_step(model, ctx)

    def shape_update(self, update, ctx):
        for part in self.parts:
            update = part.shape_update(update, ctx)
        return update

    def describe(self) -> dict:
        return {"poisoning": self.poisoning.describe(), "evasions": [e.describe() for e in self.evasions]}


def build_attack(attack: dict) -> CompositeAttack:
    """The attack that ``[attack]`` describes (checked before any data is loaded)."""
    kind = attack["kind"]
    if kind not in POISONINGS:
        raise ExperimentError(f"attack.kind = {kind!r}: choose one of {', '.join(map(repr, POISONINGS))}")
    evasions: list[Attack] = []
    if attack["pgd_eps"] > 0:
        evasions.append(PGDProjection(attack["pgd_eps"]))
    if attack["scale"] != 1.0:
        evasions.append(ModelReplacement(attack["scale"]))
    return CompositeAttack(POISONINGS[kind].from_config(attack), evasions)
