"""Appendix D's studies as function calls: the variants, their folders, the rows."""

import json

import pytest

import deep_experiments as de
from deep_experiments import studies
from deep_experiments.cli import main

from .helpers import TINY_PHISHING


def test_sensitivity_grid_is_the_issue_grid():
    variants = studies.sensitivity_variants()
    grid = {(p["tau"], p.get("alpha"), p.get("trim")) for _, p in variants}
    assert len(variants) == 6 * 3 + 6 and all(d == "invariant" for d, _ in variants)
    assert {(t, a, None) for t in (0.2, 0.4, 0.5, 0.6, 0.7, 0.8) for a in (0.1, 0.2, 0.3)} <= grid
    assert {(t, None, "authors") for t in (0.2, 0.4, 0.5, 0.6, 0.7, 0.8)} <= grid


def test_ablation_runs_each_variant_with_and_without_attack(tmp_path):
    cfg = de.load_config("phishing", overrides=TINY_PHISHING)
    variants = studies.ablation_variants(taus=(0.6,))
    lines = []
    rows = studies.run_variants(cfg, variants, out=tmp_path, seeds=[0], log=lines.append)
    assert len(lines) == 2 * len(variants) == 8
    by = {r["defence"]: r for r in rows}
    assert set(by) == {"invariant", "mean_ratio", "and_mask", "trimmed_mean"}
    assert all("acc_m_clean" in r for r in rows)
    ratio = json.loads((tmp_path / "mean_ratio-alpha0.2-match_tau0.6" / "seed0" / "summary.json").read_text())
    assert ratio["config"]["defence"]["params"] == {"match_tau": 0.6, "alpha": 0.2}
    assert studies.run_variants(cfg, variants, out=tmp_path, seeds=[0], log=lines.append) == rows  # reused
    assert len(lines) == 8


def test_mechanism_study_writes_its_table(tmp_path, capsys):
    sets = [a for s in TINY_PHISHING for a in ("--set", s)]
    assert main(["study", "mechanism", "phishing", "--seeds", "0", "--out", str(tmp_path), *sets]) == 0
    rows = json.loads((tmp_path / "mechanism.json").read_text())
    assert [r["defence"] for r in rows] == ["fedavg", "invariant"]
    assert all(0 <= r["trigger_pass_rate"] <= 1 and r["tau"] == 0.6 for r in rows)
    assert "benign zero" in (tmp_path / "mechanism.md").read_text()


@pytest.mark.parametrize("kind", ["sensitivity", "ablation"])
def test_study_command_refuses_a_bad_task_scale(kind, capsys):
    assert main(["study", kind, "cifar10", "--scale", "small-literal", "--out", "/tmp/never"]) == 2
    assert "has no scale 'small-literal'" in capsys.readouterr().err
