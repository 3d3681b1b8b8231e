"""Nothing lost, nothing mixed: a run owns its folder, leftovers of a kill are cleaned, a bad
checkpoint is named, and finished results are reused only for the identical configuration."""

import json
import subprocess
import sys

import pytest
import torch

import deep_experiments as de
from deep_experiments import results
from deep_experiments.errors import ExperimentError

from .helpers import TINY_PHISHING, config, main

SETS = [a for s in TINY_PHISHING for a in ("--set", s)]


def test_a_second_run_on_a_folder_in_use_is_refused(tmp_path):
    first = de.Run(config(sets=TINY_PHISHING), tmp_path)
    with pytest.raises(ExperimentError, match="in use by another run \\(pid \\d+\\)"):
        de.Run(config(defence="invariant", sets=TINY_PHISHING), tmp_path)
    first.run()  # the owner finishes, then gives the folder up
    assert de.Run(config(sets=TINY_PHISHING), tmp_path).round == 4


def test_two_processes_on_one_folder_leave_one_consistent_run(tmp_path):
    out = tmp_path / "same"
    cmds = [
        [sys.executable, "-m", "deep_experiments", "run", "phishing", "--defence", d, "--out", str(out), *SETS]
        for d in ("invariant", "fedavg")
    ]
    procs = [subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for c in cmds]
    codes = sorted(p.wait(timeout=300) for p in procs)
    assert codes == [0, 2]  # one ran; the other was refused (in use, or another configuration)
    described = json.loads((out / "config.json").read_text())
    summary = json.loads((out / "summary.json").read_text())
    assert (
        described["fingerprint"]
        == summary["fingerprint"]
        == torch.load(out / "checkpoint.pt", weights_only=True)["fingerprint"]
    )


def test_leftovers_of_a_killed_atomic_write_are_removed(tmp_path):
    stale = tmp_path / ".checkpoint.pt.abc123.tmp"
    stale.write_bytes(b"x" * 1000)
    de.Run(config(sets=TINY_PHISHING), tmp_path)
    assert not stale.exists()


@pytest.mark.parametrize("content", [b"", b"not a checkpoint", b"PK\x03\x04garbage"])
def test_a_corrupt_checkpoint_is_named_with_the_fix(tmp_path, content):
    (tmp_path / "checkpoint.pt").write_bytes(content)
    with pytest.raises(ExperimentError, match="checkpoint.pt is not a valid checkpoint.*--restart discards it"):
        de.Run(config(sets=TINY_PHISHING), tmp_path)
    assert de.Run(config(sets=TINY_PHISHING), tmp_path, restart=True).round == 0


def test_a_foreign_checkpoint_is_named_with_the_fix(tmp_path):
    torch.save({"weights": torch.zeros(3)}, tmp_path / "checkpoint.pt")
    with pytest.raises(ExperimentError, match="lacks the fields of a run checkpoint.*--restart"):
        de.Run(config(sets=TINY_PHISHING), tmp_path)


def test_table1_reuses_only_identical_configurations(tmp_path, capsys):
    argv = ["table1", "phishing", "--seeds", "0", "--defences", "fedavg", "--out", str(tmp_path), *SETS]
    assert main([*argv, "--set", "federation.rounds=2"]) == 0
    first = (tmp_path / "fedavg" / "seed0" / "summary.json").read_text()
    assert main([*argv, "--set", "federation.rounds=2"]) == 0  # identical: reused
    assert (tmp_path / "fedavg" / "seed0" / "summary.json").read_text() == first
    assert main([*argv, "--set", "federation.rounds=3", "--set", "train.lr=0.5"]) == 2
    err = capsys.readouterr().err
    assert "another configuration" in err and "federation.rounds: 2 -> 3" in err and "train.lr" in err
    assert (tmp_path / "fedavg" / "seed0" / "summary.json").read_text() == first  # nothing overwritten


def test_table1_checks_every_defence_name_before_training(tmp_path, capsys):
    argv = ["table1", "phishing", "--seeds", "0", "--defences", "invariant", "bogus", "--out", str(tmp_path), *SETS]
    assert main(argv) == 2
    assert "unknown defence 'bogus'" in capsys.readouterr().err
    assert not (tmp_path / "invariant").exists()


def test_table_never_averages_different_configurations(tmp_path):
    for rounds, seed in ((2, 0), (3, 1)):
        de.run(
            de.load_config("phishing", overrides=[*TINY_PHISHING, f"federation.rounds={rounds}"]),
            "fedavg",
            seed=seed,
            out=tmp_path / f"r{rounds}",
            progress=False,
        )
    rows = results.table(results.load_summaries([tmp_path]))
    assert [r["seeds"] for r in rows] == [[0], [1]]
    assert [r["differs"] for r in rows] == [["federation.rounds=2"], ["federation.rounds=3"]]
    assert "federation.rounds=3" in results.to_markdown(rows)


def test_seeds_of_one_configuration_share_a_row_even_with_weak_dp(tmp_path):
    for seed in (0, 1):
        de.run(
            de.load_config("phishing", overrides=TINY_PHISHING),
            "weak_dp",
            seed=seed,
            out=tmp_path / str(seed),
            progress=False,
        )
    rows = results.table(results.load_summaries([tmp_path]))
    assert len(rows) == 1 and rows[0]["seeds"] == [0, 1] and rows[0]["differs"] == []


def test_param_tau_sum_replaces_tau_and_authors_trim_drops_alpha():
    assert config(defence="invariant", params=["tau_sum=3"])["defence"]["params"] == {"tau_sum": 3, "alpha": 0.2}
    assert config(defence="invariant", params=["trim='authors'"])["defence"]["params"] == {
        "tau": 0.6,
        "trim": "authors",
    }
    de.build_rule(config(defence="invariant", params=["tau_sum=3", "trim='authors'"])["defence"])


# --------------------------------------------------------------------------- Table 1 with clean twins
def test_table1_runs_every_defence_with_and_without_attack(tmp_path):
    cfg = de.load_config("phishing", overrides=TINY_PHISHING)
    lines = []
    rows = de.table1(cfg, out=tmp_path, defences=["fedavg", "krum", "freeze_layers"], seeds=[0, 1], log=lines.append)
    assert len(lines) == 8  # 2 defences x 2 seeds x (attack, no attack); freeze_layers not run
    by = {r["defence"]: r for r in rows}
    assert set(by) == {"fedavg", "krum", "freeze_layers"}
    assert "random-feature model" in by["freeze_layers"]["not_applicable"]
    assert not (tmp_path / "freeze_layers").exists()
    for name in ("fedavg", "krum"):
        assert by[name]["seeds"] == by[name]["seeds_clean"] == [0, 1] and by[name]["differs"] == []
        clean = [json.loads((tmp_path / "clean" / name / f"seed{s}" / "summary.json").read_text()) for s in (0, 1)]
        attacked = [json.loads((tmp_path / name / f"seed{s}" / "summary.json").read_text()) for s in (0, 1)]
        assert all(c["config"]["federation"]["malicious_fraction"] == 0 and c["malicious_clients"] == [] for c in clean)
        # the defence as configured under attack: Krum keeps its f = "auto" of the attacked run
        assert [c["config"]["defence"] for c in clean] == [a["config"]["defence"] for a in attacked]
        assert by[name]["acc_m_clean"] == pytest.approx(sum(c["acc_m"] for c in clean) / 2)
        assert by[name]["acc_m"] == pytest.approx(sum(a["acc_m"] for a in attacked) / 2)
    assert by["krum"]["acc_m"] != by["krum"]["acc_m_clean"] or by["fedavg"]["acc_b"] != by["fedavg"]["acc_b_clean"]
    again = []
    de.table1(cfg, out=tmp_path, defences=["fedavg", "krum", "freeze_layers"], seeds=[0, 1], log=again.append)
    assert again == []  # everything finished with this configuration: reused
    table = (tmp_path / "table.md").read_text()
    assert "Acc_M without attack" in table and "not applicable" in table


def _summary(defence, seed, malicious_fraction, rounds=4, acc_m=0.5):
    config = {"task": "phishing", "federation": {"malicious_fraction": malicious_fraction, "rounds": rounds}}
    return {
        "task": "phishing",
        "defence": defence,
        "seed": seed,
        "rounds": rounds,
        "config": config,
        "acc_m": acc_m,
        "acc_b": 0.1,
        "acc_m_last10": acc_m,
        "acc_b_last10": 0.1,
    }


def test_clean_twins_join_only_the_configuration_they_mirror():
    runs = [
        _summary("krum", 0, 0.2, acc_m=0.6),
        _summary("krum", 1, 0.2, acc_m=0.8),
        _summary("krum", 0, 0.0, acc_m=0.9),
        _summary("krum", 0, 0.0, rounds=9, acc_m=0.3),  # mirrors no attacked configuration
        _summary("no_attack", 0, 0.0, acc_m=0.95),  # Table 1's own row, not a twin
    ]
    rows = results.table(runs)
    krum = [r for r in rows if r["defence"] == "krum"]
    assert len(krum) == 2
    paired = next(r for r in krum if "acc_m_clean" in r)
    assert paired["acc_m"] == pytest.approx(0.7) and paired["acc_m_clean"] == 0.9 and paired["seeds_clean"] == [0]
    alone = next(r for r in krum if "acc_m_clean" not in r)
    assert alone["acc_m"] == 0.3 and alone["rounds"] == [9]
    assert next(r for r in rows if r["defence"] == "no_attack")["acc_m"] == 0.95


def test_last_window_means_cover_the_last_tenth_of_rounds():
    from deep_experiments.engine import last_window_means

    evaluated = [{"round": r, "acc_m": r / 100, "acc_b": 1 - r / 100} for r in range(1, 31)]
    got = last_window_means(evaluated, 30)
    assert got["last10_window"] == [28, 30] and got["last10_evaluations"] == 3
    assert got["acc_m_last10"] == pytest.approx((0.28 + 0.29 + 0.30) / 3)
    sparse = [rec for rec in evaluated if rec["round"] % 5 == 0]  # evaluated every 5th round
    assert last_window_means(sparse, 30)["last10_evaluations"] == 1
    assert last_window_means(evaluated[:4], 4)["last10_window"] == [4, 4]
