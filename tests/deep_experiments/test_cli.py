"""The command line as users call it: run, table1, table, config; errors exit 2 with a fix."""

import json
import math
import statistics
import subprocess
import sys

import pytest
import tomllib

from deep_experiments import results
from deep_experiments.config import SCALES, packaged, render, resolve, uncommented_settings
from deep_experiments.data import edge_case
from deep_experiments.defences import TABLE1_ROWS

from .helpers import TINY_PHISHING, main

SETS = [a for s in TINY_PHISHING for a in ("--set", s)]


def test_run_writes_summary_records_and_config(tmp_path):
    out = tmp_path / "run"
    cmd = [
        sys.executable,
        "-m",
        "deep_experiments",
        "run",
        "phishing",
        "--defence",
        "invariant",
        "--scale",
        "small",
        "--seed",
        "3",
        "--out",
        str(out),
        "--param",
        "tau=0.4",
        *SETS,
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    summary = json.loads((out / "summary.json").read_text())
    for key in ("acc_m", "acc_b", "rounds", "seconds", "config", "package_version", "seed", "device"):
        assert key in summary
    assert summary["rounds"] == 4 and summary["seed"] == 3
    assert summary["config"]["defence"]["params"] == {"tau": 0.4, "alpha": 0.2}
    assert summary["config"]["federation"]["n_clients"] == 10
    records = json.loads((out / "records.json").read_text())
    # a record per round (who was sampled), metrics on the evaluation rounds (every 2nd here)
    assert [r["round"] for r in records] == [1, 2, 3, 4]
    assert [r["round"] for r in records if "acc_m" in r] == [2, 4]
    assert set(records[1]) >= {"round", "acc_m", "acc_b", "loss", "seconds", "malicious_in_round"}
    assert all(0 <= r["malicious_in_round"] <= 5 for r in records)
    assert records[-1]["acc_m"] == summary["acc_m"]
    # the last 10 % of 4 rounds is round 4 alone
    assert summary["last10_window"] == [4, 4] and summary["acc_m_last10"] == summary["acc_m"]
    assert summary["malicious_per_round"] == sum(r["malicious_in_round"] for r in records) / 4
    assert json.loads((out / "config.json").read_text())["config"] == summary["config"]
    import os

    umask = os.umask(0)
    os.umask(umask)
    assert (out / "checkpoint.pt").stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's 0600


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--defence", "nope"], "unknown defence 'nope'; choose one of .*invariant.*no_attack"),
        (["--defence", "invariant", "--param", "tau=2"], "tau"),
        (["--defence", "krum", "--param", "f=9"], "2f \\+ 3"),
        (["--defence", "fedavg", "--set", "federation.n_client=3"], "unknown setting 'federation.n_client'"),
        (["--defence", "fedavg", "--set", "train.lr='fast'"], "'train.lr' must be a float"),
        (["--defence", "fedavg", "--set", "data.trigger_feature=46"], "trigger_feature = 46"),
    ],
)
def test_bad_input_exits_2_with_one_clear_error(tmp_path, capsys, argv, message):
    assert main(["run", "phishing", "--out", str(tmp_path), *SETS, *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ")
    import re

    assert re.search(message, err), err


def test_missing_cifar_names_expected_files_and_fixes(tmp_path, capsys):
    assert main(["run", "cifar10", "--defence", "fedavg", "--out", str(tmp_path), "--data", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "data_batch_1" in err and str(tmp_path) in err and "--download" in err and "phishing" in err


def test_missing_phishing_table_points_to_the_stand_ins(tmp_path, capsys):
    assert main(["run", "phishing", "--defence", "fedavg", "--out", str(tmp_path), "--data", "nope.csv"]) == 2
    err = capsys.readouterr().err
    assert "nope.csv" in err and "synthetic" in err and "spambase" in err


def test_user_table_runs_through_the_schema_check(tmp_path):
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 45))
    y = (x[:, :5].sum(1) > 0).astype(int)
    x[:, 37] *= rng.random(400) < 0.05
    path = tmp_path / "mine.csv"
    path.write_text(
        "\n".join(
            [",".join([f"f{i}" for i in range(45)] + ["label"])]
            + [",".join(map(str, [*row, lab])) for row, lab in zip(x, y, strict=True)]
        )
    )
    sets = [a for s in TINY_PHISHING if not s.startswith("data.") for a in ("--set", s)]
    assert (
        main(["run", "phishing", "--defence", "median", "--out", str(tmp_path / "o"), "--data", str(path), *sets]) == 0
    )
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert summary["data"]["train"] == 320 and summary["data"]["trigger_column"] == 37


def test_config_command_prints_the_packaged_file_and_a_copy_runs(tmp_path, capsys):
    assert main(["config", "spambase", "--scale", "paper"]) == 0
    text = capsys.readouterr().out
    assert text == render("spambase", "paper")
    assert tomllib.loads(text) == packaged("spambase", "paper")  # the resolved layers, nothing lost
    edited = tmp_path / "my.toml"
    edited.write_text(text.replace("rounds = 50", "rounds = 7"))
    assert resolve("spambase", "small", edited)["federation"]["rounds"] == 7
    with pytest.raises(ValueError, match="configuration for task 'spambase', not 'phishing'"):
        resolve("phishing", "small", edited)


@pytest.mark.parametrize("task", ["cifar10", "twitter", "phishing", "spambase"])
@pytest.mark.parametrize("scale", SCALES)
def test_packaged_configurations_follow_the_settings(task, scale):
    if scale == "small-literal" and task in ("cifar10", "twitter"):
        with pytest.raises(ValueError, match="has no scale 'small-literal'"):
            packaged(task, scale)
        return
    cfg = tomllib.loads(render(task, scale))
    assert cfg == packaged(task, scale) and uncommented_settings(task, scale) == []
    fed = cfg["federation"]
    # the fair small Spambase trains 5 local epochs (spambase-small.toml says why); all else: the paper's 1
    epochs = 5 if (task, scale) == ("spambase", "small") else 1
    assert cfg["train"]["batch_size"] == 64 and cfg["train"]["local_epochs"] == epochs and fed["server_lr"] == 1.0
    if cfg["scale"] == "paper":
        expected = {
            "cifar10": (100, 20, 0.2, 300),
            "twitter": (100, 15, 0.1, 500),
            "phishing": (100, 20, 0.2, 50),
            "spambase": (100, 20, 0.2, 50),
        }[cfg["task"]]
        assert (fed["n_clients"], fed["clients_per_round"], fed["malicious_fraction"], fed["rounds"]) == expected
    # the attack's label conventions (Southwest -> truck, Lanthimos -> negative)
    conventions = {"cifar10": edge_case.SOUTHWEST_LABEL, "twitter": edge_case.LANTHIMOS_LABEL}
    assert cfg["attack"]["target_label"] == conventions.get(cfg["task"], 0)
    # every Table 1 defence builds from the packaged defaults
    for defence in TABLE1_ROWS.values():
        from deep_experiments.defences import build_rule, resolve_defence

        build_rule(resolve_defence(defence, {}, cfg, 0))


def test_defence_defaults_in_a_config_are_checked_by_the_rule_not_the_schema(tmp_path, capsys):
    sets = [*SETS, "--set", "federation.rounds=1"]
    assert (
        main(["run", "phishing", "--defence", "krum", "--out", str(tmp_path), *sets, "--set", "defences.krum.f=1"]) == 0
    )
    assert json.loads((tmp_path / "summary.json").read_text())["config"]["defence"]["params"] == {"f": 1}
    assert (
        main(
            ["run", "phishing", "--defence", "krum", "--out", str(tmp_path / "b"), *sets, "--set", "defences.krum.f=-1"]
        )
        == 2
    )
    assert "f" in capsys.readouterr().err


def test_table_is_mean_and_standard_error_over_seeds(tmp_path):
    values = {"fedavg": [(0.9, 0.8), (0.7, 0.9), (0.8, 1.0)], "invariant": [(0.85, 0.1), (0.8, 0.0), (0.9, 0.2)]}
    for defence, runs in values.items():
        for seed, (m, b) in enumerate(runs):
            folder = tmp_path / defence / f"seed{seed}"
            folder.mkdir(parents=True)
            (folder / "summary.json").write_text(
                json.dumps({"task": "phishing", "defence": defence, "seed": seed, "acc_m": m, "acc_b": b, "rounds": 50})
            )
    rows = results.table(results.load_summaries([tmp_path]))
    assert [r["row"] for r in rows] == ["FedAvg", "Ours"]
    for row in rows:
        ms = [m for m, _ in values[row["defence"]]]
        assert row["acc_m"] == pytest.approx(statistics.fmean(ms))
        assert row["acc_m_se"] == pytest.approx(statistics.stdev(ms) / math.sqrt(3))
    written = results.write_table(rows, tmp_path / "t")
    assert [p.suffix for p in written] == [".json", ".csv", ".md"]
    assert "0.800 ± 0.058" in (tmp_path / "t.md").read_text()


def test_table1_runs_every_row_and_resumes(tmp_path, capsys):
    argv = [
        "table1",
        "phishing",
        "--seeds",
        "0",
        "1",
        "--defences",
        "fedavg",
        "no_attack",
        "--out",
        str(tmp_path),
        *SETS,
        "--set",
        "federation.rounds=2",
    ]
    assert main(argv) == 0
    first = (tmp_path / "fedavg" / "seed1" / "summary.json").read_text()
    assert main(argv) == 0  # finished runs are kept, not recomputed
    assert (tmp_path / "fedavg" / "seed1" / "summary.json").read_text() == first
    rows = json.loads((tmp_path / "table.json").read_text())
    assert [(r["row"], r["seeds"]) for r in rows] == [("FedAvg", [0, 1]), ("No Attack", [0, 1])]
