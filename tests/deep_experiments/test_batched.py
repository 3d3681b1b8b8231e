"""Batched client training against the sequential path it replaces.

Tolerances: the two paths compute the same arithmetic, but batched matrix products (and the
masked mean over padded batches) sum in another order than per-client ones: a step differs by
about 1e-7 relative, and training carries that along. Parameters are compared at an absolute
1e-5 after at most five rounds of these tiny configurations (observed: up to 1.5e-8 on the
MLPs), accuracies exactly (no test sample sits on a decision boundary in these runs) and the loss
to 1e-5 relative. Larger ResNet runs can differ more where a step is ill-conditioned (BatchNorm
on a batch of two): see deep_experiments/batched.py.
"""

import json

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import invariant_aggregator as ia
from deep_experiments import ExperimentError, Run, build_attack, local_train
from deep_experiments.attacks import Attack, ClientContext
from deep_experiments.batched import (
    BatchedTrainer,
    ClientJob,
    adam_step,
    resolve_client_training,
    sgd_step,
    unsupported_reason,
)
from deep_experiments.models import MLP, LSTMClassifier, ResNet18
from deep_experiments.results import CHECKPOINT
from deep_experiments.samples import FederatedTask, Samples

from .helpers import TINY_PHISHING, config
from .test_pipelines import FED, _edge

ATOL = 1e-5


# ----------------------------------------------------------------------------- optimisers
@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    kind=st.sampled_from(["sgd", "adam"]),
    momentum=st.sampled_from([0.0, 0.5, 0.9]),
    weight_decay=st.sampled_from([0.0, 1e-2]),
    lr=st.sampled_from([1e-3, 0.05, 1.0]),
    scale=st.sampled_from([1e-20, 1.0, 1e20]),
    steps=st.integers(1, 5),
)
def test_functional_optimisers_match_torch_optim(seed, kind, momentum, weight_decay, lr, scale, steps):
    """torch.optim itself is the oracle: each client's rows of the stacked step equal a
    torch.optim optimiser stepping that client's own tensors, with hypothesis drawing extreme
    gradient scales and zero entries (ties)."""
    gen = torch.Generator().manual_seed(seed)
    shapes = [(3, 4), (4,)]
    stacked = [torch.randn(2, *s, generator=gen) for s in shapes]
    grads_seq = [
        [torch.randn(2, *s, generator=gen) * scale * (torch.rand(2, *s, generator=gen) > 0.2) for s in shapes]
        for _ in range(steps)
    ]
    ours = [p.clone() for p in stacked]
    buffers = [None] * len(ours)
    m = [torch.zeros_like(p) for p in ours]
    v = [torch.zeros_like(p) for p in ours]
    for t, grads in enumerate(grads_seq, 1):
        if kind == "sgd":
            sgd_step(ours, grads, buffers, lr=lr, momentum=momentum, weight_decay=weight_decay)
        else:
            adam_step(ours, grads, m, v, t, lr=lr, weight_decay=weight_decay)
    for client in range(2):
        ref = [nn.Parameter(p[client].clone()) for p in stacked]
        opt = (
            torch.optim.SGD(ref, lr=lr, momentum=momentum, weight_decay=weight_decay)
            if kind == "sgd"
            else torch.optim.Adam(ref, lr=lr, weight_decay=weight_decay)
        )
        for grads in grads_seq:
            for p, g in zip(ref, grads, strict=True):
                p.grad = g[client].clone()
            opt.step()
        for p, q in zip(ref, ours, strict=True):
            torch.testing.assert_close(q[client], p.detach(), rtol=1e-6, atol=0, equal_nan=True)


# ----------------------------------------------------------------------------- the trainer
def _task(sizes, n_features=6, seed=0):
    """A hand-built task whose clients hold ``sizes`` samples each."""
    gen = torch.Generator().manual_seed(seed)
    total = sum(sizes)
    x = torch.randn(total, n_features, generator=gen)
    y = (x[:, 0] > 0).long()
    bounds = torch.tensor([0, *sizes]).cumsum(0)
    clients = [torch.arange(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    bd = Samples(torch.randn(30, n_features, generator=gen) + 3, torch.zeros(30, dtype=torch.long))
    return FederatedTask(
        "hand-built",
        Samples(x, y),
        clients,
        Samples(x[:10], y[:10]),
        bd,
        bd,
        0,
        lambda: MLP(n_features, (8,)),
    )


def _train_both(task, cfg, attack=None, malicious=()):
    torch.manual_seed(0)
    model = task.make_model()
    layout = ia.ParameterLayout.of(model)
    anchor = layout.flatten(model)
    jobs, sequential = [], []
    for c, idx in enumerate(task.clients):
        a = attack if c in malicious else None
        ctx = ClientContext(1, c, layout, anchor) if a is not None else None
        jobs.append(ClientJob(idx, torch.Generator().manual_seed(100 + c), a, ctx))
        worker = task.make_model()
        worker.load_state_dict(model.state_dict())
        local_train(
            worker,
            task,
            idx,
            cfg,
            torch.Generator().manual_seed(100 + c),
            device=torch.device("cpu"),
            attack=a,
            ctx=ctx,
        )
        sequential.append(layout.flatten(worker))
    batched, _ = BatchedTrainer(model, layout, cfg, torch.device("cpu")).train(model, task, jobs)
    return anchor, torch.stack(sequential), batched


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_a_client_with_fewer_batches_stops_where_its_sequential_twin_stops(optimizer):
    """Clients of 0, 5, 64, 70 and 200 samples (0 to 4 batches of 64, 2 epochs): each batched
    client ends where its sequential twin ends. With momentum / Adam a client that went on
    stepping after its last batch (even with a zero gradient) would keep moving."""
    task = _task([0, 5, 64, 70, 200])
    cfg = config(sets=[*TINY_PHISHING, f"train.optimizer='{optimizer}'", "train.local_epochs=2", "train.lr=0.1"])
    anchor, sequential, batched = _train_both(task, cfg)
    torch.testing.assert_close(batched, sequential, rtol=0, atol=ATOL)
    assert torch.equal(batched[0], anchor)  # no data: no step
    moved = (batched - anchor).abs().amax(1)
    assert (moved[1:] > 1e-3).all()  # the comparison is not of untouched models


def test_attack_hooks_act_per_client_in_the_batched_path():
    """PGD's projection after every step and the backdoor batches reach exactly the malicious
    clients: their batched models equal their sequential twins' and lie on the PGD ball."""
    task = _task([40, 90, 130])
    cfg = config(sets=[*TINY_PHISHING, "attack.pgd_eps=0.05", "train.lr=0.5", "train.local_epochs=2"])
    attack = build_attack(cfg["attack"])
    anchor, sequential, batched = _train_both(task, cfg, attack, malicious={1, 2})
    torch.testing.assert_close(batched, sequential, rtol=0, atol=ATOL)
    radius = torch.linalg.vector_norm(batched - anchor, dim=1)
    assert radius[0] > 0.05 * 1.5  # benign: not projected
    torch.testing.assert_close(radius[1:], torch.full((2,), 0.05), rtol=1e-5, atol=0)


def _records(path):
    return [{k: v for k, v in r.items() if k != "seconds"} for r in json.loads(path.read_text())]


def _same_records(a, b):
    """Record for record: who took part exactly, accuracies exactly (no test sample sits on a
    decision boundary in these runs), the loss to 1e-5 relative (it sums rounding)."""
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert {k: v for k, v in x.items() if k != "loss"} == {k: v for k, v in y.items() if k != "loss"}
        assert ("loss" in x) == ("loss" in y) and x.get("loss", 0) == pytest.approx(y.get("loss", 0), rel=1e-5)


def _both_paths(tmp_path, cfg_of):
    out = {}
    for path in ("sequential", "batched"):
        run = Run(cfg_of(path), tmp_path / path)
        summary = run.run()
        out[path] = (summary, _records(tmp_path / path / "records.json"), run.layout.flatten(run.model))
    return out


ATTACKS = {
    "no attack": ["federation.malicious_fraction=0.0"],
    "edge case": [],
    "edge case + PGD + scaling": ["attack.pgd_eps=0.5", "attack.scale=3.0"],
}


@pytest.mark.parametrize("attack", list(ATTACKS))
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_phishing_mlp_batched_and_sequential_give_the_same_records(tmp_path, attack, optimizer):
    sets = [*TINY_PHISHING, *ATTACKS[attack], f"train.optimizer='{optimizer}'", "train.local_epochs=2"]
    if optimizer == "adam":
        sets.append("train.lr=0.01")
    out = _both_paths(tmp_path, lambda p: config(defence="invariant", sets=[*sets, f"runtime.client_training='{p}'"]))
    (s_seq, r_seq, w_seq), (s_bat, r_bat, w_bat) = out["sequential"], out["batched"]
    _same_records(r_seq, r_bat)
    torch.testing.assert_close(w_bat, w_seq, rtol=0, atol=ATOL)
    assert s_seq["client_training"]["path"] == "sequential" and s_bat["client_training"]["path"] == "batched"
    assert "mask" in s_bat["client_training"]["why"]


@pytest.mark.parametrize("attack", ["edge_case", "pixel_pattern"])
def test_resnet_batched_and_sequential_give_the_same_records(tmp_path, data_root, attack):
    """ResNet-18 with BatchNorm in training mode: clients grouped by batch size, each with its
    own BatchNorm statistics; averaged buffers ("mean") reach the server the same way."""
    sets = [
        *FED,
        "model.width=4",
        "federation.buffers='mean'",
        "train.batch_size=16",
        f"attack.kind='{attack}'",
        "attack.pgd_eps=5.0",
        *_edge(data_root),
    ]

    def cfg_of(path):
        return config("cifar10", "invariant", data=data_root, sets=[*sets, f"runtime.client_training='{path}'"])

    out = _both_paths(tmp_path, cfg_of)
    (s_seq, r_seq, w_seq), (s_bat, r_bat, w_bat) = out["sequential"], out["batched"]
    torch.testing.assert_close(w_bat, w_seq, rtol=0, atol=ATOL)
    _same_records(r_seq, r_bat)
    assert s_seq["client_training"]["path"] == "sequential" and "group" in s_bat["client_training"]["why"]
    seq_state = torch.load(tmp_path / "sequential" / CHECKPOINT, weights_only=True)["model"]
    bat_state = torch.load(tmp_path / "batched" / CHECKPOINT, weights_only=True)["model"]
    for name in seq_state:
        if "running" in name:
            torch.testing.assert_close(bat_state[name], seq_state[name], rtol=1e-5, atol=ATOL)


def test_lstm_falls_back_to_sequential_and_says_why(tmp_path, data_root):
    cfg = config(
        "twitter",
        "fedavg",
        data=data_root / "leaf",
        sets=[*FED, "federation.rounds=1", f"data.glove='{data_root / 'glove.txt'}'", *_edge(data_root)],
    )
    summary = Run(cfg, tmp_path).run()
    assert summary["client_training"]["path"] == "sequential"
    assert "LSTM" in summary["client_training"]["why"] and "vmap" in summary["client_training"]["why"]


def test_which_models_vectorise():
    assert unsupported_reason(MLP(4)) is None and unsupported_reason(ResNet18(width=2)) is None
    assert "LSTM" in unsupported_reason(LSTMClassifier(torch.randn(5, 3), hidden=4))
    assert "Dropout" in unsupported_reason(nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.5)))
    assert resolve_client_training("auto", MLP(4))[0] == "batched"
    assert resolve_client_training("auto", ResNet18(width=2), "cpu")[0] == "sequential"  # measured faster there
    assert resolve_client_training("auto", ResNet18(width=2), "cuda")[0] == "batched"
    assert resolve_client_training("batched", ResNet18(width=2), "cpu")[0] == "batched"
    assert resolve_client_training("sequential", MLP(4))[0] == "sequential"
    with pytest.raises(ExperimentError, match="cannot be batched.*LSTM.*'auto' or 'sequential'"):
        resolve_client_training("batched", LSTMClassifier(torch.randn(5, 3), hidden=4))


def test_an_unknown_client_training_is_refused_before_any_data():
    with pytest.raises(ExperimentError, match="runtime.client_training.*'auto', 'sequential' or 'batched'"):
        config(sets=[*TINY_PHISHING, "runtime.client_training='parallel'"])


def test_resume_after_a_kill_is_bit_identical_in_the_batched_path(tmp_path):
    sets = [*TINY_PHISHING, "federation.rounds=5", "runtime.checkpoint_every=2", "runtime.client_training='batched'"]
    whole = Run(config(defence="invariant", sets=sets), tmp_path / "whole").run()
    assert Run(config(defence="invariant", sets=sets), tmp_path / "cut").run(stop_after=3) is None
    resumed = Run(config(defence="invariant", sets=sets), tmp_path / "cut")
    assert resumed.round == 2
    summary = resumed.run()
    assert _records(tmp_path / "whole" / "records.json") == _records(tmp_path / "cut" / "records.json")
    assert (summary["acc_m"], summary["loss"]) == (whole["acc_m"], whole["loss"])
    wa = torch.load(tmp_path / "whole" / CHECKPOINT, weights_only=True)["model"]
    wb = torch.load(tmp_path / "cut" / CHECKPOINT, weights_only=True)["model"]
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_a_checkpoint_is_resumed_only_by_the_path_that_wrote_it(tmp_path):
    sets = [*TINY_PHISHING, "runtime.client_training='sequential'"]
    Run(config(sets=sets), tmp_path).run(stop_after=2)
    with pytest.raises(ExperimentError, match="client_training = 'sequential'.*to resume it, or --restart"):
        Run(config(sets=[*TINY_PHISHING, "runtime.client_training='batched'"]), tmp_path)
    assert Run(config(sets=sets), tmp_path).round == 2


class _ReversedBatches(Attack):
    """An attack that makes its batches itself (not from indices): each clean batch reversed
    and relabelled 0, so the batched trainer must take its ``batches`` as they come."""

    def batches(self, task, indices, batch_size, generator, ctx=None):
        for batch in super().batches(task, indices, batch_size, generator, ctx):
            yield Samples(batch.inputs.flip(0), torch.zeros_like(batch.labels))


def test_an_attack_that_makes_its_own_batches_trains_the_same_in_both_paths():
    task = _task([30, 70, 140])
    cfg = config(sets=[*TINY_PHISHING, "train.local_epochs=2", "train.lr=0.3"])
    anchor, sequential, batched = _train_both(task, cfg, _ReversedBatches(), malicious={0, 2})
    torch.testing.assert_close(batched, sequential, rtol=0, atol=ATOL)
    benign = _train_both(task, cfg)[2]
    assert (batched[[0, 2]] - benign[[0, 2]]).abs().max() > 1e-3  # the attack's batches were used
    torch.testing.assert_close(batched[1], benign[1], rtol=0, atol=ATOL)


@settings(max_examples=25, deadline=None)
@given(
    sizes=st.lists(st.integers(0, 150), min_size=1, max_size=6),
    batch_size=st.sampled_from([1, 7, 64]),
    epochs=st.integers(1, 3),
    k_bd=st.sampled_from([0, 3, 64]),
)
def test_the_gathered_round_holds_exactly_each_clients_sequential_batches(sizes, batch_size, epochs, k_bd):
    """The one-indexing gather of the tabular path against the batches the sequential path
    draws (clean_batches from the same generators): every client's t-th batch, row for row,
    and zero weight exactly on the padding."""
    from deep_experiments.attacks import clean_batches
    from deep_experiments.batched import _Batches

    task = _task(sizes)
    cfg = config(
        sets=[
            *TINY_PHISHING,
            f"attack.backdoor_per_batch={k_bd}",
            f"train.batch_size={batch_size}",
            f"train.local_epochs={epochs}",
        ]
    )
    attack = build_attack(cfg["attack"])
    jobs = [
        ClientJob(idx, torch.Generator().manual_seed(c), attack if c % 2 else None)
        for c, idx in enumerate(task.clients)
    ]
    pool = (
        torch.cat([task.train.inputs, task.backdoor_train.inputs]),
        torch.cat([task.train.labels, task.backdoor_train.labels]),
    )
    data = _Batches(task, jobs, cfg["train"], torch.device("cpu"), lambda _: pool)
    assert data.indexed and sorted(data.order) == list(range(len(jobs)))
    assert data.counts == sorted(data.counts, reverse=True)  # most batches first: active rows lead
    for c, idx in enumerate(task.clients):
        row = data.order.index(c)
        gen = torch.Generator().manual_seed(c)
        expected = [b for _ in range(epochs) for b in clean_batches(task, idx, batch_size, gen, k_bd if c % 2 else 0)]
        assert data.counts[row] == len(expected)
        for t, b in enumerate(expected):
            active = [j for j in range(len(jobs)) if data.counts[j] > t]
            assert active == list(range(len(active)))
            rows = len(active) if t % 2 else torch.tensor(active)  # both ways of naming the rows
            inputs, labels, weight = data.batch(t, active, rows)
            i = active.index(row)
            assert torch.equal(inputs[i, : len(b)], b.inputs) and torch.equal(labels[i, : len(b)], b.labels)
            if weight is not None:
                assert weight[i].sum() == len(b) and (weight[i, : len(b)] == 1).all()
