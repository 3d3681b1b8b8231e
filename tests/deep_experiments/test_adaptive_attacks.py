"""The attacks that aim at a defence (ALIE, Neurotoxin, the mask-aware attacker), DBA, the
untargeted attacks and the schedules: each one's defining property, on small inputs, against
oracles written from the definitions (numpy sorting and sign counting, scipy's normal
quantile), and inside real runs of both training paths."""

import json
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy.stats import norm

import deep_experiments as de
import invariant_aggregator as ia
from deep_experiments import attacks
from deep_experiments.attacks import RoundUpdates
from deep_experiments.data import cifar10
from deep_experiments.errors import ExperimentError

from .helpers import TINY_PHISHING, config

ATTACKED = [*TINY_PHISHING, "federation.malicious_fraction=0.4", "federation.eval_every=1"]
values = st.floats(-1e3, 1e3, allow_nan=False, width=32) | st.sampled_from([0.0, 1.0, -1.0, 1e-30, -1e-30])


def _rows(n_benign, m, d, data):
    """A stack of n_benign + m rows (attackers last) drawn by hypothesis: ties, zeros, duplicates."""
    arr = data.draw(hnp.arrays(np.float32, (n_benign + m, d), elements=values))
    if data.draw(st.booleans()):  # duplicated rows
        arr[1] = arr[0]
    return torch.from_numpy(arr)


def _info(n, m, own=None):
    malicious = torch.zeros(n, dtype=torch.bool)
    malicious[n - m :] = True
    return RoundUpdates(1, malicious, own)


# ----------------------------------------------------------------------------------------- ALIE
def test_alie_z_max_is_baruchs_formula():
    # Baruch et al.: s = floor(n/2 + 1) - m, z = Phi^-1((n - s)/n)
    assert attacks.ALIE.z_max(50, 24) == pytest.approx(norm.ppf(48 / 50))  # their n = 50 example: s = 2
    assert attacks.ALIE.z_max(20, 4) == pytest.approx(0.3853, abs=1e-4)
    assert attacks.ALIE.z_max(10, 1) == 0.0  # one attacker of ten: it may not leave the mean
    assert math.isinf(attacks.ALIE.z_max(4, 3))  # a majority: no bound


@settings(max_examples=60, deadline=None)
@given(
    n_benign=st.integers(2, 8),
    m=st.integers(1, 4),
    d=st.integers(1, 6),
    z=st.sampled_from([0.0, 0.5, 2.0]),
    data=st.data(),
)
def test_alie_rows_lie_inside_mu_plus_minus_z_sigma_of_the_benign_updates(n_benign, m, d, z, data):
    stack = _rows(n_benign, m, d, data)
    before = stack.clone()
    attacks.ALIE("omniscient", z).shape_round(stack, _info(len(stack), m))
    benign = before[:n_benign].double().numpy()
    mu, sigma = benign.mean(0), benign.std(0, ddof=1)
    n, s = len(stack), len(stack) // 2 + 1 - m  # Baruch et al.'s z_max when z = 0
    zz = z or (norm.ppf((n - s) / n) if s > 0 else np.inf)
    mal, sent = stack[n_benign:].double().numpy(), before[n_benign:].double().numpy()
    assert torch.equal(stack[:n_benign], before[:n_benign])  # the benign rows are untouched
    if not np.isfinite(zz):  # a majority of attackers: no bound, nothing clipped
        assert np.array_equal(mal, sent)
        return
    slack = 1e-6 * (np.abs(mu) + zz * sigma + 1)
    assert np.all(mal >= mu - zz * sigma - slack) and np.all(mal <= mu + zz * sigma + slack)
    inside = (sent >= mu - zz * sigma) & (sent <= mu + zz * sigma)
    np.testing.assert_allclose(mal[inside], sent[inside], rtol=1e-6)  # clipping only: inside values stay


def test_alie_with_own_knowledge_never_reads_the_benign_rows():
    gen = torch.Generator().manual_seed(0)
    own = torch.randn(3, 50, generator=gen)
    stack = torch.randn(10, 50, generator=gen) * 5
    other = stack.clone()
    other[:7] = torch.randn(7, 50, generator=gen) * 100  # other benign updates, same attackers
    for s in (stack, other):
        attacks.ALIE("own", 1.0).shape_round(s, _info(10, 3, own))
    assert torch.equal(stack[7:], other[7:])
    mu, sd = own.double().mean(0), own.double().std(0)
    assert bool(((stack[7:] >= mu - sd - 1e-6) & (stack[7:] <= mu + sd + 1e-6)).all())


# ----------------------------------------------------------------------------------- Neurotoxin
@settings(max_examples=40, deadline=None)
@given(d=st.integers(1, 40), keep=st.sampled_from([0.05, 0.5, 0.95, 1.0]), data=st.data())
def test_neurotoxin_mask_keeps_the_smallest_last_update_coordinates(d, keep, data):
    last = torch.from_numpy(data.draw(hnp.arrays(np.float32, d, elements=values)))
    mask = attacks.Neurotoxin.mask_of(last, keep).numpy()
    n_keep = math.ceil(keep * d)
    assert mask.sum() == n_keep and set(np.unique(mask)) <= {0.0, 1.0}
    a = np.abs(last.numpy())
    if n_keep < d:  # every kept coordinate changed no more than every masked one
        assert a[mask == 1].max() <= a[mask == 0].min()


@pytest.mark.parametrize("path", ["sequential", "batched"])
def test_neurotoxin_update_is_zero_outside_its_mask_in_a_run(tmp_path, path):
    run = de.Run(
        config(
            sets=[
                *ATTACKED,
                "attack.evasion='neurotoxin'",
                "attack.neurotoxin_keep=0.5",
                f"runtime.client_training='{path}'",
            ]
        ),
        tmp_path,
    )
    seen = []
    rule = run.rule
    run.rule = lambda u, client_ids=None: (seen.append((u.clone(), client_ids)), rule(u, client_ids=client_ids))[1]
    run.step()
    last = run.last_update.clone()
    run.step()
    updates, clients = seen[1]
    outside = attacks.Neurotoxin.mask_of(last, 0.5) == 0
    rows = [j for j, c in enumerate(clients) if c in run.malicious]
    assert rows, "the round has attackers"
    for j in range(len(clients)):
        zero = bool((updates[j][outside] == 0).all())
        assert zero == (j in rows)  # exactly zero for the attackers; benign clients move everywhere
    run.close()


def test_neurotoxin_run_resumes_exactly(tmp_path):
    sets = [*ATTACKED, "attack.evasion='neurotoxin'", "attack.neurotoxin_keep=0.5"]
    de.Run(config(sets=sets), tmp_path / "a").run(stop_after=2)
    resumed = de.Run(config(sets=sets), tmp_path / "a").run()
    whole = de.Run(config(sets=sets), tmp_path / "b").run()
    assert [resumed[k] for k in ("acc_m", "acc_b", "loss")] == [whole[k] for k in ("acc_m", "acc_b", "loss")]


# --------------------------------------------------------------------------------- mask-aware
def _oracle(stack: np.ndarray, tau: float, alpha: float) -> np.ndarray:
    """m ⊙ TrMean from the definitions: sort each column, drop ceil(alpha N) from each end, mean;
    keep the column when |sum of signs| >= ceil(tau N) (float64)."""
    n = len(stack)
    k = math.ceil(round(alpha * n, 9))
    trimmed = np.sort(stack.astype(np.float64), axis=0)[k : n - k].mean(0)
    agree = np.abs(np.sign(stack).sum(0)) >= math.ceil(round(tau * n, 9))
    return np.where(agree, trimmed, 0.0)


@settings(max_examples=60, deadline=None)
@given(n_benign=st.integers(6, 16), m=st.integers(1, 4), d=st.integers(1, 8), data=st.data())
def test_mask_aware_is_a_best_response_no_worse_than_benign_behaviour(n_benign, m, d, data):
    tau, alpha = 0.6, 0.2
    stack = _rows(n_benign, m, d, data)
    benign = stack[:n_benign].numpy().astype(np.float64)
    target = stack[n_benign:].double().mean(0).numpy()
    before = stack.clone()
    attacker = attacks.MaskAware("omniscient", tau, alpha)
    attacker.shape_round(stack, _info(len(stack), m))
    assert torch.equal(stack[:n_benign], before[:n_benign])
    sent = stack[n_benign:].numpy().astype(np.float64)
    assert np.all(sent == sent[0])  # one common value per coordinate
    out = _oracle(stack.numpy(), tau, alpha)
    honest = _oracle(np.vstack([benign, np.repeat(benign.mean(0, keepdims=True), m, 0)]), tau, alpha)
    tol = 1e-4 * (1 + np.abs(target) + np.abs(benign).max(0))
    assert np.all(np.abs(out - target) <= np.abs(honest - target) + tol)
    # every value sent is one of the construction's candidates, written here from its docstring:
    # the benign mean, the target, a benign extreme (a value a benign client sent, so no more
    # trimmed than that client), or a small vote against the benign sign majority
    mean, lo, hi = benign.mean(0), benign.min(0), benign.max(0)
    # the attack averages in float32: its means are within 1e-6 of the largest magnitude averaged
    slack = 1e-6 * np.abs(stack.numpy().astype(np.float64)).max(0)
    majority = np.sign(np.sign(benign).sum(0))
    breaker = (np.sign(sent[0]) == np.where(majority == 0, -1, -majority)) & (
        np.abs(sent[0]) <= 1e-3 * (np.abs(mean) + slack) + 1e-30
    )
    close = lambda a: np.abs(sent[0] - a) <= slack + 1e-6 * np.abs(a)  # noqa: E731
    assert np.all(close(mean) | close(target) | (sent[0] == lo) | (sent[0] == hi) | breaker)


def test_mask_aware_breaks_the_mask_where_the_benign_direction_opposes_the_backdoor():
    # 16 benign clients, 13 positive and 3 negative; 4 attackers whose backdoor wants -1
    benign = torch.tensor([1.0] * 13 + [-1.0] * 3).unsqueeze(1)
    stack = torch.cat([benign, torch.full((4, 1), -1.0)])
    honest = _oracle(torch.cat([benign, torch.full((4, 1), benign.mean())]).numpy(), 0.6, 0.2)
    assert honest[0] > 0  # benign behaviour: |13 - 3 + 4| = 14 >= 12 votes, the coordinate moves up
    attacks.MaskAware("omniscient", 0.6, 0.2).shape_round(stack, _info(20, 4))
    assert stack[16:, 0].lt(0).all()  # they vote against the majority ...
    assert _oracle(stack.numpy(), 0.6, 0.2)[0] == 0  # ... |13 - 3 - 4| = 6 < 12: the mask drops it


def test_mask_aware_with_own_knowledge_stands_its_clean_updates_in_for_the_benign_ones():
    gen = torch.Generator().manual_seed(1)
    own = torch.randn(4, 30, generator=gen)
    stack = torch.randn(20, 30, generator=gen)
    other = stack.clone()
    other[:16] += 3
    for s in (stack, other):
        attacks.MaskAware("own", 0.6, 0.2).shape_round(s, _info(20, 4, own))
    assert torch.equal(stack[16:], other[16:])


# ----------------------------------------------------------------------------------------- DBA
def test_dba_parts_are_disjoint_and_their_union_is_the_trigger():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (40, 32, 32, 3), dtype=np.uint8)
    y = np.arange(40) % 10
    dba = attacks.DBA(backdoor_per_batch=2, pattern_size=3, parts=4)
    cells = dba.part_cells()
    flat = np.concatenate(cells)
    assert sorted(flat.tolist()) == list(range(9)) and len(flat) == 9  # disjoint, covering
    # stamping the parts one after another is the whole trigger
    img = x[:5]
    for c in cells:
        img = cifar10.stamp_pixel_pattern(img, 3, cells=c)
    assert np.array_equal(img, cifar10.stamp_pixel_pattern(x[:5], 3))
    source = attacks.BackdoorSource(target=9, edge_case=lambda: None, clean_train=(x, y), clean_test=(x, y))
    train, test = dba.backdoor_inputs(source)
    assert np.array_equal(test, cifar10.stamp_pixel_pattern(x[y != 9], 3))  # the test uses the whole trigger
    base = x[y != 9]
    for k, (lo, hi) in enumerate(dba._part_bounds):
        part = train[lo:hi]
        ref = base[k::4]
        changed = np.argwhere((part != ref).any(axis=(0, 3)))  # pixels any image of the part changed
        rows, cols = np.unravel_index(cells[k], (3, 3))
        assert {tuple(p) for p in changed} <= {(29 + r, 29 + c) for r, c in zip(rows, cols, strict=True)}
        assert np.array_equal(part, cifar10.stamp_pixel_pattern(ref, 3, cells=cells[k]))


def test_dba_attacker_k_draws_from_part_k_only():
    dba = attacks.DBA(backdoor_per_batch=4, pattern_size=3, parts=4)
    dba._part_bounds = [(0, 10), (10, 20), (20, 30), (30, 40)]
    layout = ia.ParameterLayout.of(torch.nn.Linear(2, 2))
    for rank in range(6):
        ctx = attacks.ClientContext(1, 7, layout, torch.zeros(6), rank=rank)
        drawn = torch.cat([b.backdoor for b in dba.batch_indices(None, torch.arange(12), 8, torch.Generator(), ctx)])
        lo, hi = dba._part_bounds[rank % 4]
        assert len(drawn) and bool(((drawn >= lo) & (drawn < hi)).all())


def test_dba_is_refused_on_a_tabular_task_and_with_more_parts_than_cells(tmp_path):
    with pytest.raises(ExperimentError, match="'dba' is for image tasks"):
        de.Run(config("phishing", sets=[*TINY_PHISHING, "attack.kind='dba'"]), tmp_path)
    with pytest.raises(ExperimentError, match="dba_parts = 10.*only 9 cells"):
        config("cifar10", sets=["attack.kind='dba'", "attack.dba_parts=10"])


# ---------------------------------------------------------------------------------- untargeted
def _ctx(round_=1, client=0, seed=0):
    return attacks.ClientContext(round_, client, None, None, seed=seed)


def test_sign_flip_submits_the_negative_update_and_gaussian_ignores_it():
    g = torch.randn(1000, generator=torch.Generator().manual_seed(0))
    assert torch.equal(attacks.SignFlip().shape_update(g, _ctx()), -g)
    noise = attacks.GaussianNoise(2.0)
    a, b = noise.shape_update(g, _ctx(3, 5)), noise.shape_update(g * 7, _ctx(3, 5))
    assert torch.equal(a, b)  # independent of the update, reproducible per (seed, round, client)
    assert not torch.equal(a, noise.shape_update(g, _ctx(3, 6)))
    assert not torch.equal(a, noise.shape_update(g, _ctx(3, 5, seed=1)))
    big = attacks.GaussianNoise(2.0).shape_update(torch.zeros(200_000), _ctx())
    assert abs(big.std().item() - 2.0) < 0.02 and abs(big.mean().item()) < 0.02  # 0.02 is > 4 standard errors


def test_ipm_submits_minus_eps_times_the_benign_mean():
    stack = torch.randn(10, 20, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    benign = stack[:7].clone()
    attacks.IPM(0.1).shape_round(stack, _info(10, 3))
    expected = -0.1 * benign.numpy().mean(0)
    for row in stack[7:]:
        np.testing.assert_allclose(row.numpy(), expected, rtol=1e-12)


@pytest.mark.parametrize("kind", ["sign_flip", "gaussian", "ipm"])
def test_untargeted_attacks_train_on_clean_data_and_refuse_an_evasion(tmp_path, kind):
    run = de.Run(config(sets=[*ATTACKED, f"attack.kind='{kind}'"]), tmp_path)
    assert run.attack.poisoning.backdoor_per_batch == 0
    assert run.run()["rounds"] == 4
    with pytest.raises(ExperimentError, match="untargeted: set attack.evasion = 'none'"):
        config(sets=[f"attack.kind='{kind}'", "attack.evasion='alie'"])


# ------------------------------------------------------------------------------------ schedules
@given(start=st.integers(1, 12), end=st.integers(0, 15), every=st.integers(1, 5))
def test_schedule_rounds_are_the_definition(start, end, every):
    s = attacks.Schedule(start, end, every)
    expected = [r for r in range(start, (end or 15) + 1) if (r - start) % every == 0 and r <= 15]
    assert [r for r in range(1, 16) if s.active(r)] == expected


def test_before_its_first_round_an_attack_trains_exactly_as_no_attack(tmp_path):
    sets = [*ATTACKED, "federation.rounds=3"]
    late = de.Run(config(sets=[*sets, "attack.start_round=3"]), tmp_path / "late")
    quiet = de.Run(config(sets=[*sets, "federation.malicious_fraction=0.0"]), tmp_path / "quiet")
    for _ in range(2):
        late.step(), quiet.step()
    assert torch.equal(late.layout.flatten(late.model), quiet.layout.flatten(quiet.model))
    late.step(), quiet.step()
    assert not torch.equal(late.layout.flatten(late.model), quiet.layout.flatten(quiet.model))
    assert [r["attacking"] for r in late.records] == [False, False, True]
    late.close(), quiet.close()


def test_durability_is_measured_after_the_attackers_stop(tmp_path):
    # evaluations every 2 rounds, yet the stop round (3) is evaluated too
    sets = [*TINY_PHISHING, "federation.malicious_fraction=0.4", "federation.rounds=6", "attack.end_round=3"]
    summary = de.Run(config(sets=sets), tmp_path).run()
    records = json.loads((tmp_path / "records.json").read_text())
    evaluated = {r["round"]: r["acc_b"] for r in records if "acc_b" in r}
    assert sorted(evaluated) == [2, 3, 4, 6]
    dur = summary["durability"]
    assert dur["stopped_after"] == 3 and dur["acc_b_at_stop"] == evaluated[3]
    assert dur["acc_b_after"] == [[4, evaluated[4]], [6, evaluated[6]]] and dur["acc_b_final"] == evaluated[6]
    assert [r["attacking"] for r in records] == [True] * 3 + [False] * 3


@pytest.mark.parametrize(
    "sets, message",
    [
        (["attack.end_round=2", "attack.start_round=3"], "end_round = 2 is before attack.start_round = 3"),
        (["attack.start_round=60"], "after the last round"),
        (["attack.evasion='stealth'"], "attack.evasion = 'stealth': choose one of 'none', 'alie'"),
        (["attack.knowledge='some'"], "attack.knowledge = 'some': choose one of 'own', 'omniscient'"),
        (["attack.neurotoxin_keep=0.0"], "attack.neurotoxin_keep' must lie in \\(0, 1\\]"),
        (["attack.every=0"], "'attack.every' must lie in \\[1, inf\\)"),
    ],
)
def test_impossible_attack_settings_are_refused_when_the_configuration_loads(sets, message):
    with pytest.raises(ExperimentError, match=message):
        config("spambase", sets=sets)


@pytest.mark.parametrize("evasion", ["alie", "mask_aware"])
def test_own_knowledge_trains_each_attacker_twice_and_both_paths_agree(tmp_path, evasion):
    out = {}
    for path in ("sequential", "batched"):
        sets = [*ATTACKED, f"attack.evasion='{evasion}'", f"runtime.client_training='{path}'"]
        run = de.Run(config(sets=sets), tmp_path / path)
        calls = []

        def watched(u, info, original=run.attack.shape_round, calls=calls):
            calls.append(info)
            original(u, info)

        run.attack.shape_round = watched
        run.step()
        info = calls[0]
        assert info.own_clean is not None and len(info.own_clean) == info.n_malicious > 0
        out[path] = run.layout.flatten(run.model)
        run.close()
    torch.testing.assert_close(out["batched"], out["sequential"], rtol=0, atol=1e-5)
