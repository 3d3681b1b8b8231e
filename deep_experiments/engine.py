"""The federated training loop: synchronous rounds, attacks, any registered defence, records.

One round: sample ``clients_per_round`` clients without replacement; each starts from the
broadcast model and trains locally; its pseudo-gradient is g_i = w_global - w_local over the
trainable parameters; the defence aggregates the (N, d) stack; the server steps
w <- w - server_lr * aggregate. Malicious clients are driven by the run's attack object
(:mod:`deep_experiments.attacks`), which the loop calls at fixed points: it observes the round,
chooses the batches, acts after every local step and shapes the update. Acc_M and Acc_B are
measured every ``eval_every`` rounds and at the end. The run folder's files are named and
written by :mod:`deep_experiments.results`.

Every random choice of round r is drawn from a generator seeded by (seed, r, client), so a run
resumed from a checkpoint replays exactly what an uninterrupted run would have done.
"""

from __future__ import annotations

import copy
import math
import os
import platform
import time
from contextlib import nullcontext
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

import invariant_aggregator as ia

from . import diagnostics, results
from .attacks import Attack, ClientContext, RoundUpdates, RoundView, build_attack, clean_batches
from .batched import BatchedTrainer, ClientJob, resolve_client_training
from .config import fingerprint
from .defences import build_rule
from .errors import ExperimentError
from .results import CHECKPOINT, RECORDS, SUMMARY
from .samples import FederatedTask, Samples
from .tasks import build_task

PHASES = ("local_train", "aggregation", "evaluation")
CHECKPOINT_KEYS = {"fingerprint", "round", "model", "rule", "records", "timing"}


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ExperimentError(f"runtime.device = {name!r} but CUDA is not available here; use 'auto' or 'cpu'")
    return device


LAST_SHARE = 0.1  # the final window reported beside the last round: the last 10 % of rounds


def last_window_means(evaluated: list[dict], rounds: int) -> dict:
    """Mean Acc_M / Acc_B over the evaluations in the last ``LAST_SHARE`` of the rounds (at least
    the last round): one round's value is noisy; this is what the tables report beside it."""
    start = rounds - max(1, math.ceil(LAST_SHARE * rounds)) + 1
    window = [rec for rec in evaluated if rec["round"] >= start]
    return {
        "acc_m_last10": float(np.mean([rec["acc_m"] for rec in window])),
        "acc_b_last10": float(np.mean([rec["acc_b"] for rec in window])),
        "last10_window": [start, rounds],
        "last10_evaluations": len(window),
    }


def durability(evaluated: list[dict], stop: int) -> dict:
    """How the backdoor outlives the attack that ended after round ``stop``: Acc_B then, at every
    evaluation after it, at the end, and the rounds until it first fell to half its value at the
    stop (None: it never did)."""
    at_stop = next(rec["acc_b"] for rec in evaluated if rec["round"] == stop)
    after = [[rec["round"], rec["acc_b"]] for rec in evaluated if rec["round"] > stop]
    halved = next((r - stop for r, acc_b in after if acc_b <= at_stop / 2), None) if at_stop > 0 else 0
    return {
        "stopped_after": stop,
        "acc_b_at_stop": at_stop,
        "acc_b_final": after[-1][1] if after else at_stop,
        "rounds_to_half": halved,
        "acc_b_after": after,
    }


def seed_of(*parts: int) -> int:
    return int(np.random.SeedSequence(list(parts)).generate_state(1, dtype=np.uint64)[0] >> 1)


def malicious_clients(seed: int, fraction: float, n_clients: int) -> list[int]:
    """The run's malicious clients (sorted): round(fraction * n_clients) of them, drawn by (seed, 2)."""
    n_mal = round(fraction * n_clients)
    return sorted(np.random.default_rng([seed, 2]).choice(n_clients, n_mal, replace=False).tolist())


def make_deterministic(device: torch.device) -> None:
    if device.type == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
        torch.use_deterministic_algorithms(True, warn_only=True)


def _optimizer(params, train: dict):
    if train["optimizer"] == "sgd":
        return torch.optim.SGD(params, lr=train["lr"], momentum=train["momentum"], weight_decay=train["weight_decay"])
    if train["optimizer"] == "adam":
        return torch.optim.Adam(params, lr=train["lr"], weight_decay=train["weight_decay"])
    raise ExperimentError(f"train.optimizer = {train['optimizer']!r}: choose 'sgd' or 'adam'")


def _autocast(device: torch.device, amp: bool):
    return torch.autocast("cuda", dtype=torch.bfloat16) if amp and device.type == "cuda" else nullcontext()


def local_train(
    model: nn.Module,
    task: FederatedTask,
    indices: torch.Tensor,
    cfg: dict,
    generator: torch.Generator,
    *,
    device: torch.device,
    attack: Attack | None = None,
    ctx: ClientContext | None = None,
) -> None:
    """One client's local epochs, in place. ``attack`` is None for a benign client; for a
    malicious one (with its ``ctx``) it chooses the batches and acts after every step (e.g.
    PGD's projection)."""
    train = cfg["train"]
    model.train()
    opt = _optimizer([p for p in model.parameters() if p.requires_grad], train)
    loss_fn = nn.CrossEntropyLoss()
    for _ in range(train["local_epochs"]):
        if attack is not None:
            epoch = attack.batches(task, indices, train["batch_size"], generator, ctx)
        else:
            epoch = clean_batches(task, indices, train["batch_size"], generator)
        for batch in epoch:
            inputs = task.prepare(batch.inputs, augment=True, generator=generator)
            with _autocast(device, train["amp"]):
                loss = loss_fn(model(inputs), batch.labels)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if attack is not None:
                attack.after_step(model, ctx)


@torch.no_grad()
def evaluate(model: nn.Module, task: FederatedTask, cfg: dict, device: torch.device) -> dict:
    """Acc_M and loss on the clean test set; Acc_B = share of backdoor test samples predicted as
    the attacker's label."""
    model.eval()
    bs = cfg["train"]["eval_batch_size"]

    def predictions(samples: Samples):
        # sums stay on the device (one synchronisation per set, not one per batch)
        correct = torch.zeros((), dtype=torch.long, device=device)
        total_loss = torch.zeros((), dtype=torch.float64, device=device)
        preds = []
        for start in range(0, len(samples), bs):
            batch = samples.take(torch.arange(start, min(start + bs, len(samples)))) if len(samples) > bs else samples
            with _autocast(device, cfg["train"]["amp"]):
                logits = model(task.prepare(batch.inputs, augment=False)).float()
            total_loss += nn.functional.cross_entropy(logits, batch.labels, reduction="sum").double()
            pred = logits.argmax(1)
            correct += (pred == batch.labels).sum()
            preds.append(pred)
        return correct.item() / len(samples), total_loss.item() / len(samples), torch.cat(preds)

    acc_m, loss, _ = predictions(task.test)
    _, _, bd_pred = predictions(task.backdoor_test)
    return {"acc_m": acc_m, "acc_b": (bd_pred == task.target).float().mean().item(), "loss": loss}


def _buffers_mean(states: list[dict], model: nn.Module) -> None:
    """Set the model's float buffers to the clients' mean (integer counters: the maximum)."""
    with torch.no_grad():
        for name, buf in model.named_buffers():
            stacked = torch.stack([s[name] for s in states])
            buf.copy_(stacked.float().mean(0).to(buf.dtype) if buf.is_floating_point() else stacked.max(0).values)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Run:
    """A federated run of one task, defence and seed, writing into ``out``."""

    def __init__(self, cfg: dict, out, *, restart: bool = False):
        self.cfg, self.out = cfg, Path(out)
        self.seed = cfg["seed"]
        self.defence = cfg["defence"]
        self.device = pick_device(cfg["runtime"]["device"])
        make_deterministic(self.device)
        self._lock = results.RunFolderLock(self.out)  # this run owns the folder until it ends
        try:
            self._open(cfg, restart)
        except BaseException:
            self._lock.release()
            raise

    def close(self) -> None:
        """Give up the run folder (another run may use it from now on)."""
        self._lock.release()

    def _open(self, cfg: dict, restart: bool) -> None:
        results.remove_stale_temporaries(self.out)
        if restart:
            for name in (CHECKPOINT, RECORDS, SUMMARY):
                results.run_file(self.out, name).unlink(missing_ok=True)
        self.fingerprint = fingerprint(cfg)
        saved = self._read_checkpoint()  # before the data: another configuration is refused at once
        fed = cfg["federation"]
        if fed["buffers"] not in ("keep", "mean"):
            raise ExperimentError(f"federation.buffers = {fed['buffers']!r}: choose 'keep' or 'mean'")
        self.rule = build_rule(self.defence)  # the run's one rule object
        self.attack = build_attack(cfg["attack"])  # likewise: checked before the data is loaded

        torch.manual_seed(seed_of(self.seed, 0))
        self.task = build_task(cfg, self.seed, self.attack)
        for name in ("train", "test", "backdoor_train", "backdoor_test"):
            setattr(self.task, name, getattr(self.task, name).to(self.device))
        self.model = self.task.make_model().to(self.device)
        if fed["freeze_to_last_layer"]:
            last = set(ia.last_layer_names(self.model))
            for n, p in self.model.named_parameters():
                p.requires_grad_(n in last)
        self.layout = ia.ParameterLayout.of(self.model)
        self.trigger = self._trigger_coordinates() if cfg["runtime"].get("diagnostics") else None
        self.worker = copy.deepcopy(self.model)
        self.client_training, self.client_training_why = resolve_client_training(
            cfg["runtime"].get("client_training", "auto"), self.model, self.device
        )
        self.trainer = (
            BatchedTrainer(self.model, self.layout, cfg, self.device, worker=self.worker)
            if self.client_training == "batched"
            else None
        )
        n_clients = len(self.task.clients)
        if fed["clients_per_round"] > n_clients:
            raise ExperimentError(
                f"federation.clients_per_round = {fed['clients_per_round']} exceeds the {n_clients} clients"
            )
        self._dry_run(fed["clients_per_round"])
        self.malicious = set(malicious_clients(self.seed, fed["malicious_fraction"], n_clients))
        self.malicious_rank = {c: k for k, c in enumerate(sorted(self.malicious))}
        self.round, self.records, self.timing = 0, [], dict.fromkeys(PHASES, 0.0)
        self.last_update: torch.Tensor | None = None  # w_{r-1} - w_r, for attacks that watch it
        if saved is not None:
            # checkpoints written before batched training existed were trained sequentially
            was = saved.get("client_training", "sequential")
            if was != self.client_training:
                raise ExperimentError(
                    f"{self.out} holds a run trained with client_training = {was!r}; this run would continue it "
                    f"{self.client_training!r} ({self.client_training_why}), which agrees only up to rounding; set "
                    f"runtime.client_training = {was!r} to resume it, or --restart"
                )
            self.model.load_state_dict(saved["model"])
            if isinstance(self.rule, ia.StatefulRule):
                self.rule.load_state_dict(saved["rule"])
            self.round, self.records, self.timing = saved["round"], saved["records"], saved["timing"]
            self.last_update = saved.get("last_update")

    def _trigger_coordinates(self) -> torch.Tensor:
        if "trigger_column" not in self.task.info:
            raise ExperimentError(
                f"runtime.diagnostics: measures the trigger feature's coordinates, which only the tabular tasks "
                f"have; set it to false for {self.cfg['task']}"
            )
        n_features = self.task.train.inputs.shape[1]
        return diagnostics.trigger_coordinates(self.model, self.layout, self.task.info["trigger_column"], n_features)

    def _dry_run(self, n: int) -> None:
        """Aggregate random updates once, so that a rule that cannot work with ``n`` clients
        (e.g. Krum's N >= 2f + 3) fails now rather than after a round of training; a stateful
        rule is then reset to its freshly built state."""
        if n * self.layout.numel > 5_000_000:
            return
        probe = torch.randn(n, self.layout.numel, generator=torch.Generator().manual_seed(0))
        try:
            self.rule(probe, client_ids=list(range(n)))
            if isinstance(self.rule, ia.StatefulRule):
                self.rule.reset()
        except ia.AggregatorError as exc:
            raise ExperimentError(
                f"defence {self.defence['name']!r} {self.defence['params']} with {n} clients per round: {exc}"
            ) from None

    # ----------------------------------------------------------------------------- state
    def _read_checkpoint(self) -> dict | None:
        path = results.run_file(self.out, CHECKPOINT)
        if not path.exists():
            return None
        try:
            state = torch.load(path, map_location=self.device, weights_only=True)
            if not isinstance(state, dict) or not CHECKPOINT_KEYS <= set(state):
                raise ValueError("it lacks the fields of a run checkpoint")
        except Exception as exc:  # a truncated, corrupt or foreign file: torch raises many kinds
            reason = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
            raise ExperimentError(
                f"{path} is not a valid checkpoint of this package ({reason}); --restart discards it"
            ) from None
        if state["fingerprint"] != self.fingerprint:
            raise ExperimentError(
                f"{self.out} holds a run with another configuration (fingerprint {state['fingerprint']}, this "
                f"run {self.fingerprint}); use another --out, or --restart to discard it"
            )
        return state

    @property
    def seconds(self) -> float:
        """Training time so far, over every session of a resumed run."""
        return sum(self.timing.values())

    def _checkpoint(self) -> None:
        rule_state = self.rule.state_dict() if isinstance(self.rule, ia.StatefulRule) else {}
        state = {
            "fingerprint": self.fingerprint,
            "round": self.round,
            "model": self.model.state_dict(),
            "rule": rule_state,
            "records": self.records,
            "timing": self.timing,
            "client_training": self.client_training,
        }
        if self.attack.needs_last_update:  # what the attack saw: a resumed run replays it exactly
            state["last_update"] = self.last_update
        ia.write_atomic(results.run_file(self.out, CHECKPOINT), lambda fh: torch.save(state, fh))
        results.write_records(self.out, self.records)

    # ----------------------------------------------------------------------------- rounds
    def sample_clients(self, r: int) -> list[int]:
        fed = self.cfg["federation"]
        rng = np.random.default_rng([self.seed, 3, r])
        return sorted(rng.choice(len(self.task.clients), fed["clients_per_round"], replace=False).tolist())

    def step(self) -> dict:
        """Run the next round; returns its timings (and its evaluation, when there is one)."""
        cfg, fed, dev = self.cfg, self.cfg["federation"], self.device
        r = self.round + 1
        t0 = time.perf_counter()
        clients = self.sample_clients(r)
        anchor = self.layout.flatten(self.model)
        updates = torch.empty(len(clients), anchor.numel(), device=dev, dtype=anchor.dtype)
        buffers = []
        attacking = self.attack.schedule.active(r)
        malicious = [c in self.malicious for c in clients]
        in_round = tuple(c for c, bad in zip(clients, malicious, strict=True) if bad)
        self.attack.observe(RoundView(r, anchor, tuple(clients), in_round, self.last_update))
        jobs = []
        for c in clients:
            attack = self.attack if attacking and c in self.malicious else None
            jobs.append(
                ClientJob(
                    self.task.clients[c],
                    torch.Generator().manual_seed(seed_of(self.seed, 4, r, c)),
                    attack,
                    ClientContext(r, c, self.layout, anchor, self.malicious_rank[c], self.seed)
                    if attack is not None
                    else None,
                )
            )
        # attacks that estimate the benign updates from their own data: each attacking client
        # also trains on its clean data (own generator), for the attackers' eyes only
        shadows = []
        if attacking and self.attack.needs_clean_updates:
            shadows = [
                ClientJob(self.task.clients[c], torch.Generator().manual_seed(seed_of(self.seed, 5, r, c)))
                for c in in_round
            ]
        n = len(clients)
        own_clean = torch.empty(len(shadows), anchor.numel(), device=dev, dtype=anchor.dtype)
        if self.trainer is not None:
            trained, client_buffers = self.trainer.train(self.model, self.task, jobs + shadows)
            torch.sub(anchor, trained[:n], out=updates)
            torch.sub(anchor, trained[n:], out=own_clean)
            if fed["buffers"] == "mean":
                buffers = [{k: b[j] for k, b in client_buffers.items()} for j in range(n)]
        else:
            global_state = self.model.state_dict()
            for j, job in enumerate(jobs + shadows):
                self.worker.load_state_dict(global_state)
                local_train(
                    self.worker, self.task, job.indices, cfg, job.generator, device=dev, attack=job.attack, ctx=job.ctx
                )
                torch.sub(anchor, self.layout.flatten(self.worker), out=updates[j] if j < n else own_clean[j - n])
                if fed["buffers"] == "mean" and j < n:
                    buffers.append({k: b.detach().clone() for k, b in self.worker.named_buffers()})
        for j, job in enumerate(jobs):
            if job.attack is not None:
                row = updates[j]
                shaped = job.attack.shape_update(row, job.ctx)
                if shaped is not row:  # no evasion returns the row itself: nothing to copy
                    row.copy_(shaped)
        if attacking and in_round:
            rows = torch.tensor(malicious, device=dev)
            self.attack.shape_round(updates, RoundUpdates(r, rows, own_clean if shadows else None))
        if not torch.isfinite(updates).all():
            raise ExperimentError(f"round {r}: a client's update has NaN/Inf (training diverged); lower train.lr")
        stats = None
        if self.trigger is not None:
            tau = self.defence["params"].get("tau", diagnostics.DEFAULT_TAU) or diagnostics.DEFAULT_TAU
            stats = diagnostics.sign_statistics(updates, torch.tensor(malicious), self.trigger, tau)
        _sync(dev)
        t1 = time.perf_counter()
        try:
            aggregate = self.rule(updates, client_ids=clients)
        except ia.AggregatorError as exc:
            raise ExperimentError(
                f"round {r}: defence {self.defence['name']!r} {self.defence['params']}: {exc}"
            ) from None
        self.layout.add_(self.model, aggregate, alpha=-fed["server_lr"])
        if self.attack.needs_last_update:
            self.last_update = aggregate.to(anchor.dtype) * fed["server_lr"]
        if buffers:
            _buffers_mean(buffers, self.model)
        _sync(dev)
        t2 = time.perf_counter()
        self.round = r
        timing = {"local_train": t1 - t0, "aggregation": t2 - t1, "evaluation": 0.0}
        stops = self.attack.schedule.end == r  # Acc_B when the attackers stop: durability's start
        if r % fed["eval_every"] == 0 or r == fed["rounds"] or stops:
            timing["metrics"] = evaluate(self.model, self.task, cfg, dev)
            timing["evaluation"] = time.perf_counter() - t2
        for k in PHASES:
            self.timing[k] += timing[k]
        # one record per round: who took part always, the metrics on evaluation rounds
        record = {"round": r, "malicious_in_round": sum(malicious), "attacking": attacking}
        if stats is not None:
            record["diagnostics"] = stats
        if "metrics" in timing:
            record |= {**timing["metrics"], "seconds": self.seconds}
        self.records.append(record)
        return timing

    def run(self, *, stop_after: int | None = None, progress: bool | None = None) -> dict | None:
        """Train to ``federation.rounds`` (from the checkpoint, if any) and write the summary, then
        give up the folder. ``stop_after``: leave after that round as a killed run would (for
        tests); returns None."""
        fed = self.cfg["federation"]
        every = self.cfg["runtime"]["checkpoint_every"]
        show = self.cfg["runtime"]["progress"] if progress is None else progress
        try:
            return self._train(fed, every, show, stop_after)
        finally:
            self.close()

    def _train(self, fed, every, show, stop_after) -> dict | None:
        results.write_description(self.out, self.describe())
        bar = tqdm(
            total=fed["rounds"],
            initial=self.round,
            unit="round",
            disable=not show,
            desc=f"{self.cfg['task']}/{self.defence['name']}/seed {self.seed}",
        )
        with bar:
            while self.round < fed["rounds"]:
                timing = self.step()
                if "metrics" in timing:
                    m = timing["metrics"]
                    bar.set_postfix(acc_m=f"{m['acc_m']:.3f}", acc_b=f"{m['acc_b']:.3f}")
                bar.update(1)
                if self.round % every == 0 or self.round == fed["rounds"]:
                    self._checkpoint()
                if stop_after is not None and self.round >= stop_after and self.round < fed["rounds"]:
                    return None
        return self.summarise()

    # ----------------------------------------------------------------------------- results
    @property
    def _measures_durability(self) -> bool:
        return self.attack.schedule.stops_before(self.round) and self.cfg["federation"]["malicious_fraction"] > 0

    def describe(self) -> dict:
        return {
            "task": self.cfg["task"],
            "defence": self.defence["name"],
            "seed": self.seed,
            "config": self.cfg,
            "fingerprint": self.fingerprint,
            "package_version": ia.__version__,
            "torch": torch.__version__,
            "python": platform.python_version(),
            "device": str(self.device),
            "device_name": (
                torch.cuda.get_device_name(self.device) if self.device.type == "cuda" else platform.processor()
            ),
            "malicious_clients": sorted(self.malicious),
            "attack": self.attack.describe(),
            "client_training": {"path": self.client_training, "why": self.client_training_why},
            "trainable_parameters": self.layout.numel,
            "data": self.task.info,
        }

    def summarise(self) -> dict:
        evaluated = [rec for rec in self.records if "acc_m" in rec]
        last = evaluated[-1]
        rounds = self.round
        summary = self.describe() | {
            "acc_m": last["acc_m"],
            "acc_b": last["acc_b"],
            "loss": last["loss"],
            **last_window_means(evaluated, rounds),
            "malicious_per_round": float(np.mean([rec["malicious_in_round"] for rec in self.records])),
            **({"diagnostics": diagnostics.summarise(self.records)} if self.trigger is not None else {}),
            **({"durability": durability(evaluated, self.attack.schedule.end)} if self._measures_durability else {}),
            "rounds": rounds,
            "seconds": self.seconds,
            "seconds_per_round": {k: self.timing[k] / rounds for k in PHASES},
            "evaluations": len(evaluated),
            "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        if not all(math.isfinite(summary[k]) for k in ("acc_m", "acc_b", "loss")):
            summary["warning"] = "non-finite metric: training diverged"
        results.write_summary(self.out, summary)
        return summary
