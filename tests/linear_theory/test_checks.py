"""The checks of Theorems 4, 5, 8, Corollary 9, the failure modes and the simulation."""

import json

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from scipy import stats

import invariant_aggregator as ia
from invariant_aggregator import functional as F
from linear_theory import corollary9, failure_modes, simulation, theorem4, theorem5, theorem8
from linear_theory.__main__ import main
from linear_theory.gradients import expected_gradient_sign
from linear_theory.laws import LAW_NAMES, make_law
from linear_theory.model import GaussianDataModel
from linear_theory.records import Estimate
from linear_theory.sweep import run_sweep

# --------------------------------------------------------------------------- laws


@pytest.mark.parametrize("name", LAW_NAMES)
def test_laws_have_the_moments_they_claim(name):
    law = make_law(name, 0.7, 1.3)
    x = law.sample(np.random.default_rng(0), 400_000)
    assert x.mean() == pytest.approx(0.7, abs=0.02)
    assert x.std() == pytest.approx(1.3, rel=0.03 if name != "student_t3" else 0.1)
    neg, zero, _ = law.sign_probabilities()
    assert (x < 0).mean() == pytest.approx(neg, abs=0.005) and zero == 0


@given(st.floats(0.1, 10))
def test_cantelli_law_attains_cantelli_bound(phi):
    neg = make_law("cantelli", phi, 1.0, eps=1e-9).sign_probabilities()[0]
    assert neg == pytest.approx(1 / (1 + phi**2), rel=1e-6)


# --------------------------------------------------------------------------- theorem 5

SIGN_LAWS = ("gaussian", "cantelli", "student_t3", "lognormal")
# (law, N, N'/N, tau, phi, adversary)
THEOREM_5_REGIMES = st.tuples(
    st.sampled_from(SIGN_LAWS),
    st.integers(2, 60),
    st.floats(0, 0.45),
    st.floats(0.05, 0.95),
    st.floats(0.3, 6),
    st.sampled_from(theorem5.ADVERSARIES),
)


@settings(max_examples=30)
@given(THEOREM_5_REGIMES, st.integers(0, 2**31))
def test_theorem_5_exact_probability_matches_monte_carlo_through_the_core(regime, seed):
    law_name, n, eta, tau, phi, adversary = regime
    n_mal = int(eta * n)
    law = make_law(law_name, phi, 1.0)
    rng = np.random.default_rng(seed)
    exact = theorem5.exact_probability(law, n, n_mal, tau, adversary)
    mc = theorem5.monte_carlo_probability(law.sample(rng, (n - n_mal, 3000)), n, n_mal, tau, adversary)
    assert mc.contains(exact)


@settings(max_examples=60)
@given(THEOREM_5_REGIMES)
def test_theorem_5_corrected_range_is_a_valid_bound(regime):
    law_name, n, eta, tau, phi, adversary = regime
    # Chebyshev: P(wrong sign) <= phi^-2, and P(W = i) <= C(n, i) p^i, summed over the event's W.
    n_mal = int(eta * n)
    exact = theorem5.exact_probability(make_law(law_name, phi, 1.0), n, n_mal, tau, adversary)
    assert exact <= theorem5.claimed_bound(n, n_mal, tau, phi, reading="corrected", adversary=adversary) * (1 + 1e-9)


def test_theorem_5_printed_range_fails_on_the_cantelli_law():
    # A concrete counterexample to the printed statement (sigma = std): N = 10, N' = 0, tau = 0.2.
    law = make_law("cantelli", 3.0, 1.0)
    exact = theorem5.exact_probability(law, 10, 0, 0.2, "opposite")
    printed = theorem5.claimed_bound(10, 0, 0.2, 3.0, reading="printed")
    assert printed < exact < 1


def test_adaptive_adversary_is_at_least_as_strong():
    law = make_law("gaussian", 1.0, 1.0)
    for n, n_mal, tau in ((10, 2, 0.6), (20, 4, 0.2), (50, 10, 0.9)):
        assert theorem5.exact_probability(law, n, n_mal, tau, "adaptive") >= theorem5.exact_probability(
            law, n, n_mal, tau, "opposite"
        )


# --------------------------------------------------------------------------- theorem 4


@settings(max_examples=15)
@given(
    st.floats(0.01, 0.4),
    st.sampled_from([(100, 0), (100, 2), (200, 3), (400, 4)]),
    st.floats(0.2, 0.9),
    st.floats(0.01, 3),
    st.integers(0, 2**31),
)
def test_theorem_4_exact_two_point_probability_matches_monte_carlo(p, sizes, delta, bound, seed):
    n, n_mal = sizes
    alpha = theorem4.trim_level(n, n_mal, delta)
    try:
        F.trim_bounds(n, alpha)
    except ia.AggregatorError:
        assume(False)  # the trimmed mean is undefined; the check reports these regimes as inapplicable
    law = make_law("rare_atom", 1.0, 1.0, p=p)
    errors = theorem4.worst_case_errors(
        law, n, n_mal, alpha, law.sample(np.random.default_rng(seed), (n - n_mal, 4000))
    )
    mc = Estimate.proportion(int((errors <= bound).sum()), errors.size)
    exact = theorem4.exact_success_probability(law, n, n_mal, alpha, bound)
    assert mc.contains(exact)


@settings(max_examples=30)
@given(st.integers(0, 2**31), st.integers(1, 4), st.floats(0.05, 0.3))
def test_the_worst_case_adversary_dominates_any_other(seed, n_mal, alpha):
    # The trimmed mean is monotone in each input: no placement of the N' values errs more.
    rng = np.random.default_rng(seed)
    n = 30
    if np.ceil(alpha * n) < n_mal:
        return
    benign = rng.normal(size=(n - n_mal, 50))
    worst = theorem4.worst_case_errors(make_law("gaussian", 0.0, 1.0), n, n_mal, alpha, benign)
    other = np.concatenate([benign, rng.normal(0, 10, size=(n_mal, 50))])
    assert np.all(np.abs(F.trimmed_mean(other, alpha)) <= worst + 1e-12)


def test_theorem_4_claimed_probability_by_hand():
    # N = 1000, N' = 10, delta = 0.05: alpha = 0.08 + 12 log(80) / 1000; c = 2.
    alpha = 0.08 + 12 * np.log(80) / 1000
    k = int(np.ceil(alpha * 1000))
    by_hand = (
        sum(stats.binom.pmf(i, 990, 0.99) for i in range(1000 - k, 991)) * 2**-4 * (1 - 4 * np.exp(-alpha * 1000 / 12))
    )
    assert theorem4.claimed_probability(1000, 10, 0.05, 2.0) == pytest.approx(by_hand, rel=1e-12)


# --------------------------------------------------------------------------- theorem 8 / corollary 9


def test_theorem_8_signs_follow_the_exact_formula():
    records = theorem8.check(
        rng=np.random.default_rng(1), spreads=(0.1, 30.0), sigmas=(1.0,), replicates=1, mc_samples=2000
    )
    by = {(r.part, r.reading.split(",")[0]): r.verdict for r in records if r.reading.endswith("std")}
    assert by[(theorem8.PART_I, "as printed (gradient of the loss)")] == "violated"  # the sign is -sign(mu_k)
    assert by[(theorem8.PART_I, "descent direction (-gradient)")] == "holds"
    assert by[(theorem8.PART_II, "as printed (gradient of the loss)")] == "holds"
    assert all(r.evidence.get("monte_carlo_agrees", True) for r in records)


def test_corollary_9_counterexample_to_part_b():
    # Malicious clients far below their optimum (w_k small, mu_k large) pull w_k up while the benign
    # clients pull it down: q = 1 - 2N'/N, not >= 1 - N'/N.
    rng = np.random.default_rng(0)
    model = GaussianDataModel.with_trigger(n_clients=10, n_malicious=3, n_features=3, trigger_mu=2.0, rng=rng)
    w = np.array([0.1, 0.1, 0.05])
    signs = expected_gradient_sign(model.mu, model.variance, w)[:, model.trigger]
    assert np.all(signs[~model.malicious] == 1) and np.all(signs[model.malicious] == -1)
    assert corollary9.consistency(signs) == (4, 0.4)  # 1 - 2 * 3/10 < 1 - 3/10


def test_corollary_9_parts_a_and_c_hold_exactly():
    records = corollary9.check(
        rng=np.random.default_rng(2), ns=(7, 12), fractions=(0.3,), trigger_mus=(-1.0, 2.0), spreads=(1.0,)
    )
    for r in records:
        if r.part in (corollary9.PART_A, corollary9.PART_C):
            assert r.verdict == "holds", r.reason


# --------------------------------------------------------------------------- failure modes


@settings(max_examples=40)
@given(st.integers(0, 2**31), st.integers(3, 25), st.floats(0, 1), st.floats(0, 0.3))
def test_invariant_never_errs_where_the_trimmed_mean_does_not(seed, n, tau, alpha):
    # invariant = mask * trimmed mean: its sign is either the trimmed mean's or 0.
    rng = np.random.default_rng(seed)
    if n - 2 * np.ceil(alpha * n - 1e-9) < 1:
        return
    stack = rng.standard_t(2, size=(n, 200)) + 0.3
    ind = failure_modes.error_indicators(stack, tau, alpha)
    assert not np.any(ind["invariant"][0] & ~ind["trimmed_mean"][0])


def test_failure_modes_reproduce_fig_1_where_the_text_says():
    records = failure_modes.check(
        rng=np.random.default_rng(3), malicious=(2,), taus=(0.6,), alphas=(0.2,), laws=("gaussian",), trials=4000
    )
    by = {(r.claim, r.part): r for r in records}
    fm1 = by[("failure_mode_1", "and_mask errs more often than trimmed_mean")]
    fm2 = by[("failure_mode_2", "trimmed_mean errs more often than and_mask")]
    assert fm1.verdict == "holds" and fm1.evidence["rates"]["and_mask"]["wrong_sign"].value > 0.9
    assert fm2.verdict == "holds" and fm2.evidence["rates"]["and_mask"]["wrong_sign"].value < 0.1


# --------------------------------------------------------------------------- simulation and CLI


def test_simulation_is_reproducible_and_fedavg_learns_the_backdoor():
    cfg = simulation.SimulationConfig(rounds=6, seeds=2, taus=(0.6,))
    a = simulation.check(seed=5, cfg=cfg)
    b = simulation.check(seed=5, cfg=cfg)
    assert json.dumps([r.to_dict() for r in a]) == json.dumps([r.to_dict() for r in b])
    fed = a[0].evidence["trajectories"]["clean"]["fedavg"]
    assert fed["w_k"][-1] > 0.1  # the trigger weight grows toward the malicious mean's sign under FedAvg
    assert np.all(a[0].evidence["design"]["backdoored_start_w_k"] > 0)


def test_simulation_masks_the_trigger_when_no_sign_agreement_is_possible():
    # tau = 1 needs every client to agree; benign trigger gradients are noise, so the trigger never moves.
    cfg = simulation.SimulationConfig(rounds=5, seeds=2, taus=(1.0,))
    model = simulation.population(cfg, np.random.default_rng(0))
    traj, w = simulation.run(cfg, ia.make("and_mask", tau=1.0), model, np.zeros((2, cfg.n_features)), 0)
    assert np.all(traj["w_k"] == 0) and not traj["trigger_update_nonzero"].any()


def test_cli_writes_records_and_resumes(tmp_path, capsys):
    out = tmp_path / "lt.json"
    assert main(["--quick", "--json", str(out), "--only", "corollary_9", "theorem_8", "--no-progress"]) == 0
    records = json.loads(out.read_text())
    assert {r["claim"] for r in records} == {"corollary_9", "theorem_8"}
    for r in records:
        assert set(r) == {"claim", "part", "reading", "verdict", "reason", "evidence"}
        assert r["verdict"] in ("holds", "violated", "vacuous", "inapplicable", "ill-posed")
    text = capsys.readouterr().out
    assert "corollary_9" in text and "violated" in text
    assert not (tmp_path / "lt.json.partial").exists()

    # An interrupted run: one family finished in the checkpoint; the rerun loads it.
    ck = tmp_path / "ck"
    first, t1 = run_sweep(quick=True, seed=3, checkpoint=ck, only=["corollary_9"], progress=False)
    again, t2 = run_sweep(quick=True, seed=3, checkpoint=ck, only=["corollary_9"], progress=False)
    assert not t1["corollary_9"]["resumed"] and t2["corollary_9"]["resumed"]
    assert json.loads(json.dumps(first)) == again


def test_cli_rejects_a_directory_and_unknown_families(tmp_path):
    with pytest.raises(SystemExit):
        main(["--json", str(tmp_path), "--quick"])
    with pytest.raises(SystemExit):
        main(["--only", "theorem_6"])
