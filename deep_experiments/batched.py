"""Train all of a round's clients at once: one stacked model, one vectorised step per local step.

The sequential path (:func:`deep_experiments.engine.local_train`) trains the sampled clients one
after another. Here the clients' trainable parameters are one (N, d) tensor, a row per client in
the :class:`~invariant_aggregator.ParameterLayout`'s order, each named parameter a view into it.
A step runs every client's forward pass at once (``torch.func.vmap`` over ``functional_call``;
for the MLP, batched matrix products), one backward pass of the sum of the clients' losses gives
every client its own gradient (the clients share no parameter, so d(sum_n L_n)/dθ_n =
dL_n/dθ_n), and the optimisers below step all clients together, written as the same
element-wise arithmetic as ``torch.optim``'s SGD and Adam (state reset every round, as there).

What each client sees is exactly what its sequential twin sees:

* its batches are drawn in advance from its own generator, seeded by (seed, round, client), in
  the sequential order (epoch by epoch, a batch's draws before its augmentation's), through the
  attack's own :meth:`~deep_experiments.attacks.Attack.batch_indices` (or ``batches``, for an
  attack that makes its batches otherwise). Without augmentation (the tabular tasks) the whole
  round's batches are then gathered from the data with one indexing;
* local step t of the round uses every client's t-th batch; a client with fewer batches is
  inactive from its last one on: it takes no part in the forward pass, and its parameters and
  optimiser state are left exactly as they are (its sequential twin has stopped);
* an attack that acts after each step (PGD's projection) is called on the malicious client's
  own model after each of its steps, unchanged; the update is shaped after training as before.

Clients hold different amounts of data, so one step's batches differ in size. Two ways:

* ``"mask"`` — for models whose samples do not interact (no BatchNorm): batches are padded to
  one size and each client's loss is the mean over its real samples only (padding has weight 0);
* ``"group"`` — for models with BatchNorm in training mode, whose batch statistics would see
  the padding: the step's active clients are grouped by batch size, one vectorised call per
  group, each client with its own BatchNorm statistics (stacked buffers).

The two paths agree up to floating-point rounding, not always bit for bit: batched matrix
products, vmapped convolutions and the masked mean may sum in another order than the per-client
ones. Measured: the MLPs' trained parameters differ by at most 1.5e-8 after three rounds on
Spambase and on the synthetic phishing task. On ResNet-18 most clients differ by 1e-8 to 1e-7 after a round,
but a client whose last batch holds 2 samples differed by 4e-4: BatchNorm's statistics of two
samples make that step ill-conditioned, and a 1e-7 relative perturbation of its starting point
moves the same client's sequential result by 1.1e-4 (float32 against float64 sequential
training differ by as much on other clients). Past one round the rules carry such differences
on, the invariant aggregator most: its mask flips where a client's coordinate is near zero.

Models that do not vectorise are trained sequentially: ``nn.LSTM``/``GRU``/``RNN`` (torch has no
vmap rule for the fused recurrent kernels) and dropout (its draws come from the global
generator in client order). :func:`unsupported_reason` says which; the run's summary records
the path it used and why.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, vmap

import invariant_aggregator as ia

from .attacks import Attack, BatchIndices, ClientContext, clean_batches, epoch_order
from .config import CLIENT_TRAINING
from .errors import ExperimentError
from .models import MLP
from .samples import FederatedTask, identity_prepare

__all__ = [
    "CLIENT_TRAINING",
    "BatchedTrainer",
    "ClientJob",
    "resolve_client_training",
    "unsupported_reason",
    "sgd_step",
    "adam_step",
]

_SEQUENTIAL_ONLY = (nn.RNNBase, nn.RNNCellBase)
_RANDOM = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.FeatureAlphaDropout)


def unsupported_reason(model: nn.Module) -> str | None:
    """Why ``model`` cannot be trained batched (None: it can)."""
    for name, module in model.named_modules():
        if isinstance(module, _SEQUENTIAL_ONLY):
            return f"{name or 'the model'} is a {type(module).__name__}: torch has no vmap rule for its fused kernel"
        if isinstance(module, _RANDOM) and module.p > 0:
            return f"{name} is a {type(module).__name__}: its draws come from the global generator in client order"
    return None


def _has_batch_statistics(model: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


def resolve_client_training(setting: str, model: nn.Module, device: torch.device | str = "cpu") -> tuple[str, str]:
    """(path, why): the path ``runtime.client_training`` = ``setting`` takes for ``model`` on
    ``device``.

    "auto" takes the faster path: batched where the model vectorises, except BatchNorm models
    on the CPU, where the vmapped, per-batch-size grouped ResNet ran slower than one client
    after another (0.7-0.8x the rounds per second, ``benchmarks/bench_deep.py``); "batched" for a
    model that cannot be batched is refused with the reason."""
    if setting not in CLIENT_TRAINING:
        raise ExperimentError(
            f"runtime.client_training = {setting!r}: choose one of {', '.join(map(repr, CLIENT_TRAINING))}"
        )
    if setting == "sequential":
        return "sequential", "runtime.client_training = 'sequential'"
    reason = unsupported_reason(model)
    if reason is not None:
        if setting == "batched":
            raise ExperimentError(
                f"runtime.client_training = 'batched' but the model cannot be batched ({reason}); use 'auto' or "
                f"'sequential'"
            )
        return "sequential", f"auto: the model cannot be batched ({reason})"
    mode = "group" if _has_batch_statistics(model) else "mask"
    if setting == "auto" and mode == "group" and torch.device(device).type == "cpu":
        return "sequential", "auto: on the CPU, batched BatchNorm models train slower than sequentially"
    how = {
        "group": "group: clients grouped by batch size each step, per-client BatchNorm statistics",
        "mask": "mask: batches padded, the padding masked out of each client's loss",
    }[mode]
    return "batched", f"all clients of a round vectorised ({how})"


# ------------------------------------------------------------------------------- optimisers
# Each step takes lists of tensors (one per parameter, every one with the client axis first) and
# updates them in place with torch.optim's arithmetic in torch.optim's order (as its foreach
# path, one call per operation for all parameters), so that a client's values match its
# sequential twin's element by element.


def sgd_step(
    params: Sequence[torch.Tensor],
    grads: Sequence[torch.Tensor],
    buffers: list[torch.Tensor | None],
    *,
    lr: float,
    momentum: float,
    weight_decay: float,
) -> None:
    """One SGD step (torch.optim.SGD, dampening 0, no Nesterov). ``buffers`` holds the momentum
    buffers, None before the first step (then the buffer starts as a copy of the gradient)."""
    grads = list(grads)
    if weight_decay != 0:
        grads = torch._foreach_add(grads, params, alpha=weight_decay)
    if momentum != 0:
        if any(b is None for b in buffers):  # the first step: every buffer starts here
            buffers[:] = [g.detach().clone() for g in grads]
        else:
            torch._foreach_mul_(buffers, momentum)
            torch._foreach_add_(buffers, grads)
        grads = buffers
    torch._foreach_add_(params, grads, alpha=-lr)


def adam_step(
    params: Sequence[torch.Tensor],
    grads: Sequence[torch.Tensor],
    exp_avgs: Sequence[torch.Tensor],
    exp_avg_sqs: Sequence[torch.Tensor],
    step: int,
    *,
    lr: float,
    weight_decay: float,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
) -> None:
    """One Adam step (torch.optim.Adam, L2 weight decay, no AMSGrad); ``step`` counts from 1."""
    beta1, beta2 = betas
    step_size = -(lr / (1 - beta1**step))
    bias_correction2_sqrt = (1 - beta2**step) ** 0.5
    grads = list(grads)
    if weight_decay != 0:
        grads = torch._foreach_add(grads, params, alpha=weight_decay)
    torch._foreach_lerp_(exp_avgs, grads, 1 - beta1)
    torch._foreach_mul_(exp_avg_sqs, beta2)
    torch._foreach_addcmul_(exp_avg_sqs, grads, grads, 1 - beta2)
    denom = torch._foreach_sqrt(exp_avg_sqs)
    torch._foreach_div_(denom, bias_correction2_sqrt)
    torch._foreach_add_(denom, eps)
    torch._foreach_addcdiv_(params, exp_avgs, denom, step_size)


class _Optimiser:
    """The round's optimiser state for the stacked parameters; steps only the active clients."""

    def __init__(self, train: dict, params: list[torch.Tensor]):
        self.train, self.params, self.steps = train, params, 0
        kind = train["optimizer"]
        if kind not in ("sgd", "adam"):
            raise ExperimentError(f"train.optimizer = {kind!r}: choose 'sgd' or 'adam'")
        self.kind = kind
        self.buffers: list[torch.Tensor | None] = [None] * len(params)
        if kind == "adam":
            self.exp_avgs = [torch.zeros_like(p) for p in params]
            self.exp_avg_sqs = [torch.zeros_like(p) for p in params]

    def step(self, grads: list[torch.Tensor], k: int) -> None:
        """Step the first ``k`` clients (the trainer keeps the ones still training first). They
        take their (self.steps + 1)-th step: clients start together and only ever drop out. The
        rows are views, so the updates land in place."""
        self.steps += 1
        t = self.train
        params = [p[:k] for p in self.params]
        grads = [g[:k] for g in grads]
        if self.kind == "sgd":
            buffers = [None if b is None else b[:k] for b in self.buffers]
            sgd_step(params, grads, buffers, lr=t["lr"], momentum=t["momentum"], weight_decay=t["weight_decay"])
            for i, b in enumerate(buffers):
                if b is not None and self.buffers[i] is None:  # the first step (momentum > 0)
                    # clients without any batch keep a zero buffer (they never step)
                    self.buffers[i] = torch.zeros_like(self.params[i])
                    self.buffers[i][:k] = b
        else:
            m, v = [x[:k] for x in self.exp_avgs], [x[:k] for x in self.exp_avg_sqs]
            adam_step(params, grads, m, v, self.steps, lr=t["lr"], weight_decay=t["weight_decay"])


# ------------------------------------------------------------------------------- round data
@dataclass
class ClientJob:
    """One sampled client's local training: its data, its generator, and (malicious clients)
    the attack with its context."""

    indices: torch.Tensor
    generator: torch.Generator
    attack: Attack | None = None
    ctx: ClientContext | None = None


def _index_based(attack: Attack | None) -> bool:
    """Whether the client's batches come from :meth:`Attack.batch_indices` (its class does not
    make batches some other way)."""
    if attack is None:
        return True
    inner = getattr(attack, "poisoning", attack)
    return type(inner).batches is Attack.batches


class _Batches:
    """Every client's batches of the round, in the sequential path's order and draws."""

    def __init__(self, task: FederatedTask, jobs: Sequence[ClientJob], train: dict, device: torch.device, pool):
        """Draw every batch of ``jobs``. The clients are then held in :attr:`order`: by number
        of batches, most first, so that the clients still training at any step are the first
        ones (views, nothing gathered or scattered); row i belongs to ``jobs[order[i]]``."""
        self.device, self._pool = device, pool
        bs, epochs = train["batch_size"], train["local_epochs"]
        self.indexed = task.prepare is identity_prepare and all(_index_based(job.attack) for job in jobs)
        if self.indexed:  # tabular: gather every batch of the round with one indexing
            self._gather_plan(task, jobs, bs, epochs)
        else:  # prepared per batch: augmentation draws interleave with the batch draws
            lists = [self._prepared(task, job, bs, epochs) for job in jobs]
            self.order = sorted(range(len(jobs)), key=lambda j: -len(lists[j]))
            self.lists = [lists[j] for j in self.order]
            self.table = [[len(y) for _, y in batches] for batches in self.lists]
        # per client: the size of each of its batches (its length: the client's number of steps)
        self.counts = [len(sizes) for sizes in self.table]

    @staticmethod
    def _prepared(task, job, bs, epochs):
        out = []
        for _ in range(epochs):
            if job.attack is not None:
                epoch = job.attack.batches(task, job.indices, bs, job.generator, job.ctx)
            else:
                epoch = clean_batches(task, job.indices, bs, job.generator)
            for batch in epoch:
                inputs = task.prepare(batch.inputs, augment=True, generator=job.generator)
                if not isinstance(inputs, torch.Tensor):
                    raise ExperimentError(
                        f"task {task.name}: batched client training needs tensor inputs, got {type(inputs).__name__}; "
                        f"set runtime.client_training = 'sequential'"
                    )
                out.append((inputs, batch.labels))
        return out

    def _gather_plan(self, task, jobs, bs, epochs):
        offset = len(task.train)
        pieces, self.table = [], []  # row tensors in order; per client its batch sizes
        for job in jobs:
            sizes = []
            for _ in range(epochs):
                if job.attack is None:  # a clean epoch: its order, cut every bs (batch_indices' draws)
                    order = epoch_order(job.indices, job.generator)
                    pieces.append(order)
                    sizes += [bs] * (len(order) // bs) + ([len(order) % bs] if len(order) % bs else [])
                else:
                    for b in job.attack.batch_indices(task, job.indices, bs, job.generator, job.ctx):
                        pieces.append(_pool_rows(b, offset))
                        sizes.append(len(b))
            self.table.append(sizes)
        steps = max(map(len, self.table), default=0)
        self.order = sorted(range(len(jobs)), key=lambda j: -len(self.table[j]))
        row_of = np.empty(len(jobs), dtype=np.int64)
        row_of[self.order] = np.arange(len(jobs))
        lengths = np.array([size for sizes in self.table for size in sizes], dtype=np.int64)
        width = int(lengths.max()) if len(lengths) else 0
        # where each index of each batch goes in the (step, client row, slot) grid
        step_of = np.concatenate([np.arange(len(sizes)) for sizes in self.table]) if len(lengths) else lengths
        client_of = np.repeat(row_of, [len(sizes) for sizes in self.table])
        slot = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        index = torch.zeros(steps, len(jobs), width, dtype=torch.long)
        if len(lengths):
            index[np.repeat(step_of, lengths), np.repeat(client_of, lengths), slot] = torch.cat(pieces)
        sizes = torch.zeros(steps, len(jobs), dtype=torch.long)
        sizes[step_of, client_of] = torch.from_numpy(lengths)
        pool_x, pool_y = self._pool(task)
        flat = index.to(pool_x.device).flatten()  # index_select: several times faster than x[index]
        self.inputs = pool_x.index_select(0, flat).view(*index.shape, *pool_x.shape[1:])
        self.labels = pool_y.index_select(0, flat).view(index.shape)
        self.weight = (torch.arange(width)[None, None, :] < sizes[:, :, None]).to(self.device, torch.float32)
        self.table = [self.table[j] for j in self.order]

    @property
    def rows_device(self) -> torch.device:
        """Where index tensors into the gathered round must live."""
        return self.inputs.device if self.indexed else self.device

    def batch(self, t: int, clients: list[int], rows: torch.Tensor | int):
        """(inputs, labels, weight) of the clients' t-th batches, stacked: padded to the widest
        with weight 0 on the padding, weight None when none is padded. ``rows``: k for the
        first k clients (views), or the clients' row indices."""
        sizes = [self.table[n][t] for n in clients]
        width = max(sizes)
        if self.indexed:
            if isinstance(rows, int):
                pick = lambda x: x[t, :rows]  # noqa: E731
            else:
                pick = lambda x: x[t].index_select(0, rows)  # noqa: E731
            inputs, labels = pick(self.inputs)[:, :width], pick(self.labels)[:, :width]
            weight = None if min(sizes) == width else pick(self.weight)[:, :width]
            return inputs, labels, weight
        xs = [self.lists[n][t][0] for n in clients]
        ys = [self.lists[n][t][1] for n in clients]
        if min(sizes) == width:
            return torch.stack(xs), torch.stack(ys), None
        inputs = xs[0].new_zeros((len(clients), width, *xs[0].shape[1:]))
        labels = ys[0].new_zeros((len(clients), width))
        weight = torch.zeros(len(clients), width, device=self.device)
        for i, (x, y) in enumerate(zip(xs, ys, strict=True)):
            inputs[i, : len(y)], labels[i, : len(y)], weight[i, : len(y)] = x, y, 1.0
        return inputs, labels, weight


def _pool_rows(batch: BatchIndices, offset: int) -> torch.Tensor:
    """The batch's rows in the pool of training then backdoor samples (clean rows first)."""
    if len(batch.backdoor) == 0:
        return batch.clean
    if len(batch.clean) == 0:
        return batch.backdoor + offset
    return torch.cat([batch.clean, batch.backdoor + offset])


# ------------------------------------------------------------------------------- stacked forwards
def _linear(h: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """Each client's linear layer on its own rows: h (N, B, in); weight stacked and stored
    transposed, (N, in, out), or shared (out, in) (a frozen layer); bias (N, out) or (out,)."""
    if weight.ndim == 2:
        return nn.functional.linear(h, weight, bias)
    if bias is None:
        return torch.bmm(h, weight)
    return torch.baddbmm(bias.unsqueeze(1) if bias.ndim == 2 else bias, h, weight)


def _mlp_forward(model: nn.Module):
    """The MLP as batched matrix products (no vmap: one kernel per layer for all clients), its
    stacked weights stored transposed (a transposed view would cost a copy per product)."""
    layers = list(model.net)
    if not all(isinstance(m, (nn.Linear, nn.ReLU)) for m in layers):
        return None

    def forward(tensors: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        for i, m in enumerate(layers):
            if isinstance(m, nn.Linear):
                x = _linear(x, tensors[f"net.{i}.weight"], tensors.get(f"net.{i}.bias"))
            else:
                x = torch.relu(x)
        return x

    return forward


# ------------------------------------------------------------------------------- the trainer
class BatchedTrainer:
    """Trains a round's clients together, starting from one global model.

    ``model`` is the run's model (its structure and frozen parameters are used, never changed);
    ``layout`` names the trainable parameters. Each of them is one contiguous (N, *shape) leaf
    tensor during the round, a row per client (the MLP's weights stored transposed); the
    trained rows come back as one (N, d) stack in the layout's order."""

    def __init__(
        self,
        model: nn.Module,
        layout: ia.ParameterLayout,
        cfg: dict,
        device: torch.device,
        worker: nn.Module | None = None,
    ):
        reason = unsupported_reason(model)
        if reason is not None:
            raise ExperimentError(f"the model cannot be trained batched: {reason}")
        self.cfg, self.layout, self.device = cfg, layout, device
        self.template = copy.deepcopy(model).to("meta")  # structure only: functional_call swaps in tensors
        self.template.train()
        self.mode = "group" if _has_batch_statistics(model) else "mask"
        # where an attack's after_step sees one client's model (the run's own worker, if given)
        self.worker = copy.deepcopy(model) if worker is None else worker
        self._stacked = _mlp_forward(model) if isinstance(model, MLP) else None
        # parameters the stacked forward keeps transposed (last two axes swapped)
        self._transposed = {n for n in layout.names if n.endswith(".weight")} if self._stacked is not None else set()
        self._pool_cache = None

    def _pooled(self, task: FederatedTask) -> tuple[torch.Tensor, torch.Tensor]:
        """The training pool followed by the backdoor training samples, (inputs, labels): built
        once per task (the cache holds the task's sets, so it cannot outlive them unnoticed)."""
        cached = self._pool_cache
        if cached is None or cached[0] is not task.train or cached[1] is not task.backdoor_train:
            x = torch.cat([task.train.inputs, task.backdoor_train.inputs])
            y = torch.cat([task.train.labels, task.backdoor_train.labels])
            self._pool_cache = cached = (task.train, task.backdoor_train, x, y)
        return cached[2], cached[3]

    def _forward(self, params, buffers, frozen, inputs):
        if self._stacked is not None:
            return self._stacked({**params, **frozen}, inputs)

        def one(p, b, x):
            return functional_call(self.template, ({**p, **frozen}, b), (x,), strict=True)

        return vmap(one, in_dims=(0, 0, 0), randomness="error")(params, buffers, inputs)

    def _autocast(self):
        amp = self.cfg["train"]["amp"] and self.device.type == "cuda"
        return torch.autocast("cuda", dtype=torch.bfloat16) if amp else nullcontext()

    def train(self, global_model: nn.Module, task: FederatedTask, jobs: Sequence[ClientJob]):
        """Local training of every client in ``jobs``. Returns (flat, buffers): the clients'
        trained parameters as an (N, d) stack in the layout's order, and their buffers stacked
        by name (each with the client axis first)."""
        train, n = self.cfg["train"], len(jobs)
        names = set(self.layout.names)
        frozen = {k: v.detach() for k, v in global_model.named_parameters() if k not in names}
        # one contiguous (N, *shape) leaf per parameter: views of one (N, d) tensor would be strided
        # and cost a copy per matrix product
        own = dict(global_model.named_parameters())
        params = {
            k: self._inward(k, own[k].detach()).unsqueeze(0).repeat(n, *[1] * own[k].ndim).requires_grad_(True)
            for k in self.layout.names
        }
        buffers = {k: b.detach().unsqueeze(0).repeat(n, *[1] * b.ndim) for k, b in global_model.named_buffers()}
        data = _Batches(task, jobs, train, self.device, self._pooled)
        order = data.order  # row i trains jobs[order[i]]; the active rows are always the first ones
        jobs = [jobs[j] for j in order]
        plist = list(params.values())
        opt = _Optimiser(train, plist)
        stepping = [j for j, job in enumerate(jobs) if job.attack is not None and _acts_after_step(job.attack)]
        for t in range(max(data.counts, default=0)):
            active = [j for j, count in enumerate(data.counts) if count > t]
            for group in self._groups(data, active, t):
                self._backward(params, buffers, frozen, data, group, t)
            grads = [torch.zeros_like(p) if p.grad is None else p.grad for p in plist]  # None: unused
            with torch.no_grad():
                opt.step(grads, len(active))
            for p in plist:
                p.grad = None
            for j in stepping:
                if data.counts[j] > t:
                    self._after_step(params, j, jobs[j])
        flat = torch.cat([self._outward(k, params[k].detach()).reshape(n, -1) for k in self.layout.names], dim=1)
        back = torch.empty(n, dtype=torch.long)
        back[torch.tensor(order, dtype=torch.long)] = torch.arange(n)  # row of each client as given
        back = back.to(flat.device)
        return flat.index_select(0, back), {k: v.index_select(0, back) for k, v in buffers.items()}

    def _inward(self, name: str, value: torch.Tensor) -> torch.Tensor:
        """A parameter's value (layout shape) in the trainer's storage."""
        return value.transpose(-1, -2) if name in self._transposed else value

    def _outward(self, name: str, value: torch.Tensor) -> torch.Tensor:
        """A stored parameter back in the layout's shape (the inverse of :meth:`_inward`)."""
        return value.transpose(-1, -2) if name in self._transposed else value

    def _groups(self, data: _Batches, active: list[int], t: int) -> list[list[int]]:
        if self.mode == "mask":
            return [active]
        by_size: dict[int, list[int]] = {}
        for j in active:
            by_size.setdefault(data.table[j][t], []).append(j)
        return list(by_size.values())

    def _backward(self, params, buffers, frozen, data: _Batches, group: list[int], t: int) -> None:
        """Forward and backward pass of the clients in ``group`` on their t-th batches; the
        gradients accumulate in the parameters' ``.grad`` (rows of other clients stay zero)."""
        if group == list(range(len(group))):  # the first k clients: views, nothing copied
            k, idx = len(group), None
            whole = k == len(next(iter(params.values())))  # no slice: its backward would copy each gradient
            rows = params if whole else {name: v[:k] for name, v in params.items()}
            sub_buffers = buffers if whole else {name: v[:k] for name, v in buffers.items()}
            inputs, labels, weight = data.batch(t, group, k)
        else:  # a group of one batch size (BatchNorm models): gathered, buffers written back below
            idx = torch.tensor(group, device=self.device)
            rows = {name: v.index_select(0, idx) for name, v in params.items()}
            sub_buffers = {name: v.index_select(0, idx) for name, v in buffers.items()}
            inputs, labels, weight = data.batch(t, group, idx.to(data.rows_device))
        with self._autocast():
            logits = self._forward(rows, sub_buffers, frozen, inputs)
        logits, targets = logits.float().flatten(0, 1), labels.flatten()
        if weight is None:  # every client's mean over the same width: one sum
            total = nn.functional.cross_entropy(logits, targets, reduction="sum") / labels.shape[1]
        else:
            losses = nn.functional.cross_entropy(logits, targets, reduction="none").view(labels.shape)
            total = ((losses * weight).sum(1) / weight.sum(1)).sum()
        total.backward()
        if idx is not None:  # buffers of a gathered group were copies: write them back
            with torch.no_grad():
                for k, v in sub_buffers.items():
                    buffers[k][idx] = v

    @torch.no_grad()
    def _after_step(self, params, j: int, job: ClientJob) -> None:
        """The attack's after_step on client j's own model, as the sequential path calls it."""
        flat = torch.cat([self._outward(k, params[k][j]).reshape(-1) for k in self.layout.names])
        self.layout.assign(self.worker, flat)
        job.attack.after_step(self.worker, job.ctx)
        changed = self.layout.flatten(self.worker)
        if not torch.equal(changed, flat):
            for k, v in self.layout.unflatten(changed).items():
                params[k][j] = self._inward(k, v)


def _acts_after_step(attack: Attack) -> bool:
    parts = getattr(attack, "parts", [attack])
    return any(type(p).after_step is not Attack.after_step for p in parts)
