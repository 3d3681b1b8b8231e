"""Every experimental claim on hand-made result files whose verdict is known from the numbers."""

from __future__ import annotations

import math

import pytest

from paper_checks.claims import CLAIMS, evaluate, part_verdicts
from paper_checks.evidence import Evidence
from paper_checks.experiments import Z, delta_se, diff
from paper_checks.table1 import paper_table1

from .support import baseline_rows, row, write


def findings(claim_id, results, part=None):
    got = CLAIMS[claim_id].check(Evidence(results))
    return [f for f in got if part is None or f.part.startswith(part)]


def verdicts(claim_id, results, part):
    return {f.reading: f.verdict for f in findings(claim_id, results, part)}


def test_backdoor_reduced_known_verdicts(tmp_path):
    write(tmp_path, "phishing-small.table.json", baseline_rows(ours_b=0.10))
    write(tmp_path, "spambase-small.table.json", baseline_rows("spambase", ours_b=0.94))
    # phishing: 0.10 vs 0.95 (no attack 0.05): significantly lower, 94 % of the gain removed
    assert set(verdicts("table1.backdoor_reduced", tmp_path, "phishing, fair").values()) == {"reproduced"}
    # spambase: Ours equals FedAvg within noise (deliberately wrong claim for it): not reproduced
    assert set(verdicts("table1.backdoor_reduced", tmp_path, "spambase, fair").values()) == {"not reproduced"}
    entry = evaluate(CLAIMS["table1.backdoor_reduced"], Evidence(tmp_path))
    assert entry["verdict"] == "not reproduced"  # a failing part decides
    assert entry["parts"]["phishing, paper-literal"] == "not run"  # no literal table here


def test_an_attack_that_did_not_work_leaves_nothing_to_mitigate(tmp_path):
    write(tmp_path, "phishing-small.table.json", baseline_rows(fedavg_b=0.06, none_b=0.05, ours_b=0.05))
    (f,) = findings("table1.backdoor_reduced", tmp_path, "phishing, fair")
    assert f.verdict == "inapplicable" and "did not succeed" in f.why


def test_comparable_utility_thresholds(tmp_path):
    write(tmp_path, "phishing-small.table.json", baseline_rows(ours_m=0.935))  # loss 0.5 points
    write(tmp_path, "spambase-small.table.json", baseline_rows("spambase", ours_m=0.80))  # loss 14 points
    assert set(verdicts("table1.comparable_utility", tmp_path, "phishing, fair").values()) == {"reproduced"}
    assert set(verdicts("table1.comparable_utility", tmp_path, "spambase, fair").values()) == {"not reproduced"}


def test_ours_lowest_backdoor_names_the_defence_that_beats_it(tmp_path):
    write(tmp_path, "phishing-small.table.json", baseline_rows(ours_b=0.30, krum=(0.9, 0.05), rfa=(0.9, 0.9)))
    (f,) = findings("table1.ours_lowest_backdoor", tmp_path, "phishing, fair")
    assert f.verdict == "not reproduced" and f.numbers["significantly_lower"] == ["krum"]
    assert f.numbers["rank_of_ours"] == 2
    # on the paper's own table Ours is lowest within the printed spread on every task
    paper = [f for f in findings("table1.ours_lowest_backdoor", tmp_path) if "paper's own" in f.part]
    assert len(paper) == 3 and {f.verdict for f in paper} == {"reproduced"}


def test_admits_backdoor_per_defence(tmp_path):
    rows = baseline_rows(krum=(0.9, 0.95), multi_krum=(0.9, 0.05), multi_krum_cosine=(0.9, 0.9))
    write(tmp_path, "phishing-small.table.json", rows)
    got = findings("section6.vector_wise_admits_backdoor", tmp_path, "phishing, fair")
    significant = part_verdicts(got, "Acc_B not significantly below FedAvg's")
    half = part_verdicts(got, "keeps more than half of the attack's gain")
    assert significant["phishing, fair, krum"] == half["phishing, fair, krum"] == "reproduced"
    assert significant["phishing, fair, multi_krum"] == half["phishing, fair, multi_krum"] == "not reproduced"
    # Multi-Krum_C: 0.90 vs 0.95 is significantly lower, yet keeps 94 % of the attack's gain
    assert significant["phishing, fair, multi_krum_cosine"] == "not reproduced"
    assert half["phishing, fair, multi_krum_cosine"] == "reproduced"
    assert evaluate(CLAIMS["section6.vector_wise_admits_backdoor"], Evidence(tmp_path))["verdict"] == "not reproduced"
    # a table without the row: not run, with the reason
    (f,) = findings("section6.rfa_admits_backdoor", tmp_path, "phishing, fair")
    assert f.verdict == "not run" and "rfa" in f.why


def test_utility_cost_of_sign_sgd(tmp_path):
    write(tmp_path, "phishing-small.table.json", baseline_rows(sign_sgd=(0.80, 0.5)))
    write(tmp_path, "spambase-small.table.json", baseline_rows("spambase", sign_sgd=(0.94, 0.5)))
    assert verdicts("section6.sign_sgd_utility", tmp_path, "phishing, fair") == {
        "Acc_M without attack significantly below FedAvg's": "reproduced",
        "Acc_M under attack significantly below FedAvg's": "reproduced",
    }
    assert "not reproduced" in verdicts("section6.sign_sgd_utility", tmp_path, "spambase, fair").values()


def test_one_seed_gives_no_standard_error(tmp_path):
    rows = baseline_rows(sign_sgd=(0.80, 0.5))
    for r in rows:
        r["acc_m_se"] = r["acc_b_se"] = r["acc_m_clean_se"] = math.nan
    write(tmp_path, "phishing-small.table.json", rows)
    assert set(verdicts("section6.sign_sgd_utility", tmp_path, "phishing, fair").values()) == {"inapplicable"}


def test_our_headline_reproduces_exactly_the_claimed_reduction(tmp_path):
    # FedAvg 0.90, Ours 0.284 on both tasks: 61.6 points
    for task in ("phishing", "spambase"):
        write(tmp_path, f"{task}-small.table.json", baseline_rows(task, fedavg_b=0.90, ours_b=0.284))
    got = {f.reading: f for f in findings("headline.backdoor_reduction.our_runs", tmp_path, "our tasks, fair")}
    assert got["points"].numbers["value"] == pytest.approx(61.6)
    assert got["points"].verdict == "reproduced"
    # relative: 68.4 %, gain: 72.5 %, both far beyond their SE of about 1.6 points
    assert got["relative"].verdict == "not reproduced" and got["gain"].verdict == "not reproduced"


def test_delta_method_against_the_exact_formula():
    # for a difference of two independent cells the SE is exactly the root sum of squares
    assert delta_se(lambda a, b: 100 * (a - b), [(0.9, 0.01), (0.3, 0.02)]) == pytest.approx(
        100 * math.hypot(0.01, 0.02)
    )
    # a ratio a / b: (sd_a / b)^2 + (a sd_b / b^2)^2
    want = math.hypot(0.01 / 0.5, 0.8 * 0.02 / 0.25)
    assert delta_se(lambda a, b: a / b, [(0.8, 0.01), (0.5, 0.02)]) == pytest.approx(want, rel=1e-6)
    assert delta_se(lambda a, b: a - b, [(0.8, math.nan), (0.5, 0.0)]) == 0.0
    assert diff({"x": 1.0, "x_se": 0.3}, "x", {"x": 0.5, "x_se": 0.4}) == (0.5, pytest.approx(0.5))


def test_table1_cells_reproduced_within_errors_and_not_beyond(tmp_path):
    paper = paper_table1()
    exact = [
        row(defence, *paper.acc(label, "phishing"), se=0.0)
        for label, defence in (("FedAvg", "fedavg"), ("Ours", "invariant"), ("Krum", "krum"))
    ]
    write(tmp_path, "phishing-paper.table.json", exact)
    (f,) = [f for f in findings("table1.cells", tmp_path, "phishing") if f.reading == "paper scale"]
    assert f.verdict == "reproduced" and f.numbers["within"] == f.numbers["of"] == 6
    off = [dict(r) for r in exact]
    off[1]["acc_b"] += Z * 0.001 / math.sqrt(3) + 0.0005 + 0.01  # just beyond the allowed width
    write(tmp_path, "phishing-paper.table.json", off)
    (f,) = [f for f in findings("table1.cells", tmp_path, "phishing") if f.reading == "paper scale"]
    assert f.verdict == "not reproduced" and f.numbers["within"] == 5 and "Ours acc_b" in f.why
    # CIFAR-10 and Twitter: never filled in
    for task in ("cifar10", "twitter"):
        (g,) = findings("table1.cells", tmp_path, task)
        assert g.verdict == "not run"


def test_missing_results_say_why_from_the_plan(tmp_path):
    plan = {
        "level": "quick",
        "missing": {"spambase": "UCI Spambase not found", "cifar10-paper": "needs a CUDA GPU"},
        "left_out": {"phishing-small-literal": "only the rows fedavg", "paper": "run with --paper"},
    }
    write(tmp_path, "plan.json", plan)
    ev = Evidence(tmp_path)
    assert "UCI Spambase not found" in ev.why_missing("spambase-small")
    assert "needs a CUDA GPU" in ev.why_missing("cifar10-paper")
    assert "only the rows fedavg" in ev.why_missing("phishing-small-literal")
    assert "run with --paper" in ev.why_missing("twitter-paper")
    assert "not in this plan" in ev.why_missing("phishing-ablation")


def test_sensitivity_ablation_and_mechanism(tmp_path):
    write(tmp_path, "phishing-small.table.json", baseline_rows())
    grid = [
        row("invariant", 0.93, b, params={"tau": t, "alpha": a}, seeds=(0,), se=math.nan, clean=0.94)
        for (t, a), b in {(0.4, 0.1): 0.10, (0.4, 0.2): 0.20, (0.8, 0.1): 0.90, (0.8, 0.2): 0.30}.items()
    ]
    write(tmp_path, "phishing-sensitivity.table.json", grid)
    got = {f.reading: f for f in findings("appendix_d.sensitivity", tmp_path, "phishing")}
    half = got["removes at least half of the attack's gain at every (tau, alpha)"]
    assert half.verdict == "not reproduced" and half.numbers["at_least_half"] == 3 and "tau=0.8, alpha=0.1" in half.why
    assert got["Acc_B significantly below FedAvg's at every (tau, alpha)"].verdict == "inapplicable"

    ablation = [
        row("invariant", 0.90, 0.2, clean=0.93, params={"tau": 0.4, "alpha": 0.2}),
        row("mean_ratio", 0.85, 0.2, clean=0.88, params={"match_tau": 0.4, "alpha": 0.2}),
        row("invariant", 0.80, 0.2, clean=0.82, params={"tau": 0.8, "alpha": 0.2}),
        row("mean_ratio", 0.85, 0.2, clean=0.88, params={"match_tau": 0.8, "alpha": 0.2}),
    ]
    write(tmp_path, "phishing-ablation.table.json", ablation)
    parts = evaluate(CLAIMS["appendix_d.ablation"], Evidence(tmp_path))["parts"]
    assert parts == {
        "spambase": "not run",
        "phishing, tau = 0.4": "reproduced",
        "phishing, tau = 0.8": "not reproduced",
    }

    mech = [
        {
            "task": "phishing",
            "defence": "fedavg",
            "seeds": 2,
            "tau": 0.6,
            "trigger_pass_rate": 0.3,
            "other_pass_rate": 0.1,
            "trigger_benign_zero_share": 0.995,
        },
        {
            "task": "phishing",
            "defence": "invariant",
            "seeds": 2,
            "tau": 0.6,
            "trigger_pass_rate": 0.05,
            "other_pass_rate": 0.1,
            "trigger_benign_zero_share": 0.6,
        },
    ]
    write(tmp_path, "phishing-mechanism.mechanism.json", mech)
    assert (
        evaluate(CLAIMS["mechanism.mask_singles_out_trigger"], Evidence(tmp_path))["parts"]["phishing"] == "reproduced"
    )
    premise = verdicts("mechanism.corollary9_premise", tmp_path, "phishing")
    assert set(premise.values()) == {"reproduced"}  # 99.5 % zero under FedAvg
    mech[1]["trigger_pass_rate"] = 0.2
    write(tmp_path, "phishing-mechanism.mechanism.json", mech)
    got = evaluate(CLAIMS["mechanism.mask_singles_out_trigger"], Evidence(tmp_path))  # a new reader: fresh files
    assert got["parts"]["phishing"] == "not reproduced"


@pytest.mark.parametrize(
    ("claim_id", "defence"),
    [
        ("section6.naive_combination_admits_backdoor", "krum_trimmed_mean"),
        ("section6.weak_dp_admits_backdoor", "weak_dp"),
        ("section6.foolsgold_admits_backdoor", "foolsgold"),
        ("section6.rfa_admits_backdoor", "rfa"),
        ("section6.sparsefed_admits_backdoor", "sparsefed"),
    ],
)
def test_each_prior_defence_claim_reads_its_own_row(tmp_path, claim_id, defence):
    write(tmp_path, "phishing-small.table.json", baseline_rows(**{defence: (0.9, 0.95)}))  # admits it all
    write(tmp_path, "spambase-small.table.json", baseline_rows("spambase", **{defence: (0.9, 0.05)}))  # stops it
    got = evaluate(CLAIMS[claim_id], Evidence(tmp_path))
    assert {v for p, v in got["parts"].items() if p.startswith("phishing, fair")} == {"reproduced"}
    assert {v for p, v in got["parts"].items() if p.startswith("spambase, fair")} == {"not reproduced"}
    assert got["verdict"] == "not reproduced"


def test_weak_dp_utility_and_our_utility_headline(tmp_path):
    write(tmp_path, "phishing-small.table.json", baseline_rows(ours_m=0.928, weak_dp=(0.80, 0.6)))
    assert evaluate(CLAIMS["section6.weak_dp_utility"], Evidence(tmp_path))["verdict"] == "reproduced"
    # FedAvg 0.940, Ours 0.928: 1.2 points on the one task present
    got = {f.reading: f for f in findings("headline.utility_cost.our_runs", tmp_path, "our tasks, fair")}
    assert got["points"].numbers["value"] == pytest.approx(1.2) and got["points"].verdict == "reproduced"
    assert got["points"].numbers["tasks"] == ["phishing"]


# --------------------------------------------------------------------------- the attack matrix
def _matrix(task, cells):
    """Attack-matrix rows {(attack, defence): (acc_m, acc_b)}, in attack_matrix.matrix_rows' format."""
    from deep_experiments.attack_matrix import ATTACKS

    out = []
    for (attack, defence), (m, b) in cells.items():
        spec = ATTACKS.get(attack)
        out.append(row(defence, m, b, task=task) | {"attack": attack, "targeted": spec.targeted if spec else None})
    return out


def exact(claim_id, results, part):
    """{reading: verdict} of exactly this part (its name may prefix another's)."""
    return {f.reading: f.verdict for f in CLAIMS[claim_id].check(Evidence(results)) if f.part == part}


def test_adaptive_backdoor_known_verdicts(tmp_path):
    cells = {
        ("none", "fedavg"): (0.95, 0.05),
        ("edge_case", "fedavg"): (0.94, 0.95),
        ("edge_case", "invariant"): (0.93, 0.10),  # mitigated
        ("neurotoxin", "fedavg"): (0.94, 0.90),
        ("neurotoxin", "invariant"): (0.93, 0.89),  # not mitigated (within noise of FedAvg)
        ("alie", "fedavg"): (0.94, 0.06),  # the attack does not work: nothing to mitigate
        ("alie", "invariant"): (0.93, 0.06),
        # shaped for the Invariant Aggregator: FedAvg's gain is read under the edge case (0.95)
        ("mask_aware_omniscient", "fedavg"): (0.94, 0.07),
        ("mask_aware_omniscient", "invariant"): (0.93, 0.20),
    }
    write(tmp_path, "phishing-attacks.attacks.json", _matrix("phishing", cells))
    v = lambda part: exact("adaptive.backdoor_reduced", tmp_path, f"phishing, {part}")  # noqa: E731
    assert set(v("edge case (the paper's)").values()) == {"reproduced"}
    assert set(v("Neurotoxin").values()) == {"not reproduced"}
    assert v("ALIE, own") == {"": "inapplicable"}
    assert set(v("mask-aware, omniscient").values()) == {"reproduced"}  # 0.20 vs 0.95: 83 % of the gain removed
    assert v("ALIE, omniscient") == {"": "not run"}  # no invariant cell
    entry = evaluate(CLAIMS["adaptive.backdoor_reduced"], Evidence(tmp_path))
    assert entry["verdict"] == "not reproduced" and entry["parts"]["spambase"] == "not run"


def test_adaptive_untargeted_utility_is_judged_against_fedavg_without_attack(tmp_path):
    cells = {
        ("none", "fedavg"): (0.95, 0.05),
        ("sign_flip", "invariant"): (0.945, 0.05),  # 0.5 points: within both bounds
        ("gaussian", "invariant"): (0.93, 0.05),  # 2 points: within 3 only
        ("ipm", "invariant"): (0.80, 0.05),  # 15 points
    }
    write(tmp_path, "phishing-attacks.attacks.json", _matrix("phishing", cells))
    v = lambda part: exact("adaptive.untargeted_utility", tmp_path, f"phishing, {part}")  # noqa: E731
    assert v("sign flip") == {"loss <= 1.2 points": "reproduced", "loss <= 3.0 points": "reproduced"}
    assert v("Gaussian noise") == {"loss <= 1.2 points": "not reproduced", "loss <= 3.0 points": "reproduced"}
    assert set(v("IPM").values()) == {"not reproduced"}
