"""The federated loop: pseudo-gradients and the server step, attacks, resume, metrics."""

import json

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import invariant_aggregator as ia
from deep_experiments import ExperimentError, Run, build_attack, evaluate, local_train, project_to_ball
from deep_experiments.attacks import ClientContext
from deep_experiments.engine import seed_of
from deep_experiments.results import CHECKPOINT

from .helpers import TINY_PHISHING, config


def _params(model):
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def test_server_step_with_one_client_reproduces_its_local_model(tmp_path):
    """FedAvg of one pseudo-gradient g = w - w_local with lr 1 must land on w_local exactly
    (up to float rounding); an independent replay of the client's training is the oracle."""
    cfg = config(sets=[*TINY_PHISHING, "federation.clients_per_round=1", "federation.malicious_fraction=0.0"])
    run = Run(cfg, tmp_path)
    start = _params(run.model)
    client = run.sample_clients(1)[0]
    replay = run.task.make_model()
    replay.load_state_dict(run.model.state_dict())
    gen = torch.Generator().manual_seed(seed_of(0, 4, 1, client))
    local_train(replay, run.task, run.task.clients[client], cfg, gen, device=run.device)  # benign
    run.step()
    for name, p in run.model.named_parameters():
        assert not torch.equal(p, start[name])
        torch.testing.assert_close(p, dict(replay.named_parameters())[name], rtol=0, atol=1e-6)


def test_server_lr_scales_the_step(tmp_path):
    moved = {}
    for lr in (1.0, 0.5):
        run = Run(config(sets=[*TINY_PHISHING, f"federation.server_lr={lr}"]), tmp_path / str(lr))
        before = run.layout.flatten(run.model)
        run.step()
        moved[lr] = run.layout.flatten(run.model) - before
    torch.testing.assert_close(moved[0.5], 0.5 * moved[1.0], rtol=1e-5, atol=1e-7)


def test_freeze_layers_trains_only_the_last_layer(tmp_path):
    run = Run(config(defence="freeze_layers", sets=TINY_PHISHING), tmp_path)
    start = _params(run.model)
    run.step()
    last = set(ia.last_layer_names(run.model))
    assert last == {"net.4.weight", "net.4.bias"} and set(run.layout.names) == last
    for name, p in run.model.named_parameters():
        assert torch.equal(p, start[name]) != (name in last)


def test_no_attack_has_no_malicious_client_and_attack_has_the_fraction(tmp_path):
    assert Run(config(defence="no_attack", sets=TINY_PHISHING), tmp_path / "a").malicious == set()
    run = Run(config(sets=[*TINY_PHISHING, "federation.malicious_fraction=0.3"]), tmp_path / "b")
    assert len(run.malicious) == 3


class _Spy(torch.nn.Module):
    def __init__(self, inner):
        super().__init__()
        self.inner, self.batches = inner, []

    def forward(self, x):
        self.batches.append(x.detach().clone())
        return self.inner(x)


@pytest.mark.parametrize("k", [0, 8, 64])
def test_malicious_batches_hold_backdoor_per_batch_samples(tmp_path, k):
    cfg = config(sets=[*TINY_PHISHING, f"attack.backdoor_per_batch={k}", "data.samples_per_client=150"])
    run = Run(cfg, tmp_path)
    spy = _Spy(run.task.make_model())
    gen = torch.Generator().manual_seed(1)
    col, value = run.task.info["trigger_column"], cfg["data"]["trigger_value"]
    layout = ia.ParameterLayout.of(spy)
    ctx = ClientContext(1, 0, layout, layout.flatten(spy))
    local_train(
        spy, run.task, run.task.clients[0], cfg, gen, device=run.device, attack=build_attack(cfg["attack"]), ctx=ctx
    )
    clean_rows = sum(int((b[:, col] != value).sum()) for b in spy.batches)
    for b in spy.batches:
        assert int((b[:, col] == value).sum()) == k
    assert clean_rows == (150 if k < 64 else 0)
    assert len(spy.batches) == -(-150 // (64 - k if k < 64 else 64))


@given(st.integers(0, 2**31 - 1), st.floats(0.01, 10))
def test_projection_lands_on_the_ball_in_the_same_direction(seed, radius):
    gen = torch.Generator().manual_seed(seed)
    anchor, point = (
        torch.randn(50, generator=gen, dtype=torch.float64),
        torch.randn(50, generator=gen, dtype=torch.float64) * 3,
    )
    out = project_to_ball(point, anchor, radius)
    dist = torch.linalg.vector_norm(point - anchor)
    if dist <= radius:
        assert out is None
    else:
        assert torch.linalg.vector_norm(out - anchor).item() == pytest.approx(radius, rel=1e-9)
        cos = torch.nn.functional.cosine_similarity(out - anchor, point - anchor, dim=0)
        assert cos.item() == pytest.approx(1.0, abs=1e-12)


def _one_malicious_round(tmp_path, *extra):
    cfg = config(sets=[*TINY_PHISHING, "federation.clients_per_round=1", "federation.malicious_fraction=1.0", *extra])
    run = Run(cfg, tmp_path)
    before = run.layout.flatten(run.model)
    run.step()
    return before - run.layout.flatten(run.model)  # = the malicious g_i (FedAvg of one, lr 1)


def test_model_replacement_scales_the_update(tmp_path):
    g1 = _one_malicious_round(tmp_path / "a")
    g5 = _one_malicious_round(tmp_path / "b", "attack.scale=5.0")
    torch.testing.assert_close(g5, 5 * g1, rtol=1e-5, atol=1e-6)


def test_pgd_keeps_the_malicious_update_in_the_ball(tmp_path):
    free = torch.linalg.vector_norm(_one_malicious_round(tmp_path / "a")).item()
    eps = free / 4
    bound = torch.linalg.vector_norm(_one_malicious_round(tmp_path / "b", f"attack.pgd_eps={eps}")).item()
    assert bound <= eps * (1 + 1e-5) and bound > 0.5 * eps


class _Constant(torch.nn.Module):
    def __init__(self, label):
        super().__init__()
        self.label = label
        self.w = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x):
        out = torch.zeros(len(x), 2)
        out[:, self.label] = 1.0
        return out + 0 * self.w


@pytest.mark.parametrize("label", [0, 1])
def test_metrics_of_a_constant_classifier(tmp_path, label):
    run = Run(config(sets=TINY_PHISHING), tmp_path)
    m = evaluate(_Constant(label), run.task, run.cfg, run.device)
    labels = run.task.test.labels.numpy()
    assert m["acc_m"] == pytest.approx(np.mean(labels == label))
    assert m["acc_b"] == (1.0 if label == run.task.target else 0.0)
    p = np.exp(1) / (np.exp(1) + 1)  # softmax of (1, 0)
    assert m["loss"] == pytest.approx(-np.mean(np.where(labels == label, np.log(p), np.log(1 - p))), rel=1e-6)


@pytest.mark.parametrize("defence", ["foolsgold", "weak_dp", "invariant", "sparsefed"])
def test_resume_after_a_kill_gives_the_same_results(tmp_path, defence):
    sets = [*TINY_PHISHING, "runtime.checkpoint_every=2", "federation.rounds=5"]
    whole = Run(config(defence=defence, sets=sets), tmp_path / "whole").run()
    assert Run(config(defence=defence, sets=sets), tmp_path / "cut").run(stop_after=3) is None
    assert json.loads((tmp_path / "cut" / "records.json").read_text())[-1]["round"] == 2
    resumed = Run(config(defence=defence, sets=sets), tmp_path / "cut")
    assert resumed.round == 2  # round 3 was lost with the kill and is replayed
    summary = resumed.run()
    strip = lambda recs: [{k: v for k, v in r.items() if k != "seconds"} for r in recs]  # noqa: E731
    a = json.loads((tmp_path / "whole" / "records.json").read_text())
    b = json.loads((tmp_path / "cut" / "records.json").read_text())
    # a record per round, metrics every 2nd round and at the last (TINY_PHISHING evaluates every 2)
    assert strip(a) == strip(b) and len(a) == 5 and [r["round"] for r in a if "acc_m" in r] == [2, 4, 5]
    assert (summary["acc_m"], summary["acc_b"]) == (whole["acc_m"], whole["acc_b"])
    wa = torch.load(tmp_path / "whole" / CHECKPOINT, weights_only=True)["model"]
    wb = torch.load(tmp_path / "cut" / CHECKPOINT, weights_only=True)["model"]
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_resume_refuses_another_configuration(tmp_path):
    Run(config(sets=TINY_PHISHING), tmp_path).run(stop_after=1)
    with pytest.raises(ExperimentError, match="another configuration.*--restart"):
        Run(config(sets=[*TINY_PHISHING, "train.lr=0.2"]), tmp_path)
    assert Run(config(sets=[*TINY_PHISHING, "train.lr=0.2"]), tmp_path, restart=True).round == 0


def test_seeds_change_results_and_repeat_exactly(tmp_path):
    a = Run(config(seed=1, sets=TINY_PHISHING), tmp_path / "a").run()
    b = Run(config(seed=1, sets=TINY_PHISHING), tmp_path / "b").run()
    c = Run(config(seed=2, sets=TINY_PHISHING), tmp_path / "c").run()
    assert (a["acc_m"], a["loss"]) == (b["acc_m"], b["loss"])
    assert a["loss"] != c["loss"]


def test_diverging_training_is_reported(tmp_path):
    with pytest.raises(ExperimentError, match="NaN/Inf.*lower train.lr"):
        Run(config(sets=[*TINY_PHISHING, "train.lr=1e30"]), tmp_path).run()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_cuda_run_with_amp(tmp_path):
    s = Run(config(sets=[*TINY_PHISHING, "runtime.device='cuda'", "train.amp=true"]), tmp_path).run()
    assert s["device"].startswith("cuda") and 0 <= s["acc_m"] <= 1
