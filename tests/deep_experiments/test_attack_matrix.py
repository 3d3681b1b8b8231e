"""The attack x defence matrix as function calls: its runs, their folders, its rows."""

import json

import pytest

import deep_experiments as de
from deep_experiments import attack_matrix
from deep_experiments.api import run_or_reuse
from deep_experiments.errors import ExperimentError

from .helpers import TINY_PHISHING

SETS = [*TINY_PHISHING, "federation.rounds=4", "federation.eval_every=1"]


def test_every_table1_defence_applies_except_the_settings_rows():
    for task in ("phishing", "spambase"):
        got = attack_matrix.matrix_defences(task)
        assert "invariant" in got and "fedavg" in got and len(got) == 12
        assert not {"no_attack", "freeze_layers", "median", "and_mask"} & set(got)
    assert "freeze_layers" in attack_matrix.matrix_defences("cifar10")  # it applies to the images' ResNet


def test_matrix_runs_own_their_folders_and_the_reference_is_run_once(tmp_path):
    cfg = de.load_config("phishing", overrides=SETS)
    attacks = ("edge_case", "neurotoxin_stop", "ipm")
    runs = attack_matrix.matrix_runs(cfg, out=tmp_path, attacks=attacks, defences=["fedavg", "invariant"], seeds=[0, 1])
    folders = [f for _, f in runs]
    assert len(set(folders)) == len(folders) == (3 + 1) * 2 * 2
    by_folder = {f.relative_to(tmp_path).parts[0]: c for c, f in runs}
    assert by_folder["none"]["federation"]["malicious_fraction"] == 0
    assert by_folder["neurotoxin_stop"]["attack"]["end_round"] == 2  # half of the 4 rounds
    assert by_folder["ipm"]["attack"]["kind"] == "ipm"
    with pytest.raises(ExperimentError, match="'no_attack' is a setting of FedAvg"):
        attack_matrix.matrix_runs(cfg, out=tmp_path, defences=["no_attack"])
    with pytest.raises(ExperimentError, match="unknown attack 'alie2'"):
        attack_matrix.matrix_runs(cfg, out=tmp_path, attacks=("alie2",))


def test_matrix_rows_read_exactly_the_planned_runs(tmp_path):
    cfg = de.load_config("phishing", overrides=[*SETS, "federation.malicious_fraction=0.4"])
    attacks = ("edge_case", "edge_case_stop", "sign_flip")
    runs = attack_matrix.matrix_runs(cfg, out=tmp_path, attacks=attacks, defences=["fedavg", "invariant"], seeds=[0])
    for run_cfg, folder in runs:
        run_or_reuse(run_cfg, folder, progress=False)
    rows = attack_matrix.matrix_rows([f for _, f in runs], out=tmp_path)
    cells = {(r["attack"], r["defence"]): r for r in rows}
    assert set(cells) == {(a, d) for a in ("none", *attacks) for d in ("fedavg", "invariant")}
    assert cells[("sign_flip", "fedavg")]["targeted"] is False and cells[("edge_case", "fedavg")]["targeted"]
    summary = json.loads((tmp_path / "edge_case_stop" / "invariant" / "seed0" / "summary.json").read_text())
    durability = cells[("edge_case_stop", "invariant")]["durability"]
    assert durability["stopped_after"] == 2 and durability["acc_b_final"] == summary["acc_b"]
    assert durability["acc_b_at_stop"] == summary["durability"]["acc_b_at_stop"]
    assert json.loads((tmp_path / "attacks.json").read_text()) == json.loads(json.dumps(rows))
    assert "| defence | no attack | edge case (the paper's) |" in (tmp_path / "attacks.md").read_text()
    worst = attack_matrix.worst_attacks(rows)
    for defence in ("fedavg", "invariant"):
        targeted = [r for r in rows if r["defence"] == defence and r["targeted"]]
        assert worst[f"phishing/{defence}"]["backdoor"]["acc_b_last10"] == max(r["acc_b_last10"] for r in targeted)


def test_the_study_command_runs_the_matrix(tmp_path, capsys, monkeypatch):
    from deep_experiments.cli import main

    monkeypatch.setattr(attack_matrix, "ATTACKS", {k: attack_matrix.ATTACKS[k] for k in ("edge_case", "gaussian")})
    monkeypatch.setattr(attack_matrix, "matrix_defences", lambda task: ["fedavg", "invariant"])
    sets = [a for s in SETS for a in ("--set", s)]
    assert main(["study", "attacks", "phishing", "--seeds", "0", "--out", str(tmp_path), *sets]) == 0
    rows = json.loads((tmp_path / "attacks.json").read_text())
    assert {(r["attack"], r["defence"]) for r in rows} == {
        (a, d) for a in ("none", "edge_case", "gaussian") for d in ("fedavg", "invariant")
    }
    assert "| defence | no attack | edge case (the paper's) | Gaussian noise |" in capsys.readouterr().out
