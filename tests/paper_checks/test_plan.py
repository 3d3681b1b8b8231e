"""The plan: what each level runs, where, and what it says it left out or cannot run."""

from __future__ import annotations

import pytest

from deep_experiments.errors import ExperimentError
from paper_checks.plan import QUICK_CLEAN_ROWS, make_plan

TINY = {"federation.rounds": 1}


def test_quick_plan_stages_and_folders(tmp_path):
    plan = make_plan("quick", runs=tmp_path, tasks=("phishing",))
    names = [s.name for s in plan.stages]
    assert names == [
        "linear_theory",
        "phishing-small",
        "phishing-small-literal",
        "phishing-sensitivity",
        "phishing-ablation",
        "phishing-mechanism",
        "phishing-attacks",
    ]
    table1 = plan.stages[1]
    clean = [cfg for cfg, folder in table1.runs if folder.parent.parent.name == "clean"]
    assert {cfg["defence"]["name"] for cfg in clean} == set(QUICK_CLEAN_ROWS)
    assert all(cfg["federation"]["malicious_fraction"] == 0 for cfg in clean)
    assert "freeze_layers" in table1.skipped  # not applicable to an MLP, said, not run
    folders = [f for s in plan.stages for _, f in s.runs]
    assert len(set(folders)) == len(folders) == plan.n_runs  # a run owns its folder
    assert "paper" in plan.left_out and "phishing-sensitivity" in plan.left_out
    # the attack matrix: every applicable defence under every attack, plus each defence's reference
    attacks = plan.stages[-1]
    cells = {(f.parent.parent.name, cfg["defence"]["name"]) for cfg, f in attacks.runs}
    assert len(attacks.runs) == len(cells) == 12 * (11 + 1) and attacks.result_file == "phishing-attacks.attacks.json"
    assert plan.left_out["phishing-attacks"] == "1 seed(s) (--full: 3)"


def test_a_changed_setting_gets_new_folders_an_unchanged_one_the_same(tmp_path):
    a = make_plan("quick", runs=tmp_path, tasks=("phishing",), kinds=("table1",))
    b = make_plan("quick", runs=tmp_path, tasks=("phishing",), kinds=("table1",))
    c = make_plan("quick", runs=tmp_path, tasks=("phishing",), kinds=("table1",), overrides=TINY)
    folders = [[f for _, f in p.stages[0].runs] for p in (a, b, c)]
    assert folders[0] == folders[1]
    assert not set(folders[0]) & set(folders[2])


def test_missing_data_and_hardware_are_said_not_failed(tmp_path):
    plan = make_plan(
        "paper", runs=tmp_path, data={"spambase": tmp_path / "no-such-file.csv"}, cuda=False, kinds=("table1", "paper")
    )
    assert "spambase" in plan.missing and not any(s.task == "spambase" for s in plan.stages)
    assert "GPU" in plan.missing["cifar10-paper"] and "GPU" in plan.missing["twitter-paper"]
    assert [s.name for s in plan.stages if s.kind == "paper"] == ["phishing-paper"]


def test_bad_levels_and_kinds_are_refused(tmp_path):
    with pytest.raises(ExperimentError, match="unknown level"):
        make_plan("fast", runs=tmp_path)
    with pytest.raises(ExperimentError, match="unknown stage kinds"):
        make_plan("quick", runs=tmp_path, kinds=("tabel1",))
