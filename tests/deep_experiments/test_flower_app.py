"""The example Flower app end to end under Flower's simulation engine (one tiny run, ~15 s of
Flower's and Ray's start-up), against the same configuration run by deep_experiments itself."""

import json
import os
import subprocess
import sys

import pytest

import deep_experiments as de
from deep_experiments.errors import ExperimentError
from tests.deep_experiments.helpers import TINY_PHISHING, config, main

pytest.importorskip("flwr", reason="Flower is an optional extra: pip install 'invariant-aggregator[flower]'")
pytest.importorskip("ray", reason="Flower's simulation engine needs Ray: pip install 'invariant-aggregator[flower]'")

from deep_experiments import flower_app  # noqa: E402


@pytest.mark.parametrize(
    ("sets", "defence", "task", "message"),
    [
        (["attack.evasion=alie"], "invariant", "phishing", "ALIE needs the round's other updates"),
        (["attack.kind=ipm"], "invariant", "phishing", "IPM needs the round's other updates"),
        (["attack.evasion=neurotoxin"], "invariant", "phishing", "Neurotoxin needs"),
        ([], "freeze_layers", "phishing", "does not freeze layers"),
        ([], "invariant", "twitter", "runs the tabular tasks"),
    ],
)
def test_what_the_example_cannot_run_faithfully_is_refused(sets, defence, task, message):
    with pytest.raises(ExperimentError, match=message):
        flower_app.check_flower_config(config(task, defence, sets=sets))


def test_flowers_telemetry_is_off_unless_the_caller_set_it():
    """Flower reads FLWR_TELEMETRY_ENABLED once, at its first import: the app must set it first."""
    code = (
        "import deep_experiments.flower_app, flwr.supercore.telemetry as t, os\n"
        "print(t.FLWR_TELEMETRY_ENABLED, os.environ['RAY_USAGE_STATS_ENABLED'])"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("FLWR_TELEMETRY_ENABLED", "RAY_USAGE_STATS_ENABLED")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env).stdout
    assert out.split() == ["0", "0"]
    env["FLWR_TELEMETRY_ENABLED"] = "1"  # the caller's choice stands
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env).stdout
    assert out.split()[0] == "1"


def test_the_flower_app_replays_the_engine_when_every_client_trains(tmp_path, monkeypatch):
    """With every client sampled in every round, Flower's and the engine's runs train the same
    clients from the same model with the same seeds: the Flower app must give the engine's
    accuracies round by round (edge-case attackers included), up to floating-point rounding."""
    monkeypatch.setenv("FLWR_TELEMETRY_ENABLED", "0")
    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")
    sets = [*TINY_PHISHING, "federation.clients_per_round=10", "federation.rounds=3", "federation.eval_every=1"]
    sets.append("runtime.client_training=sequential")
    cfg = config("phishing", "invariant", seed=2, sets=sets)
    summary = flower_app.run_flower(cfg, tmp_path / "flower", workers=2)
    engine = de.run(cfg, "invariant", seed=2, out=tmp_path / "engine", progress=False, params=cfg["defence"]["params"])
    flower_records = json.loads((tmp_path / "flower" / "records.json").read_text())
    engine_records = [r for r in json.loads((tmp_path / "engine" / "records.json").read_text()) if "acc_m" in r]
    assert summary["engine"] == "flower" and summary["rounds"] == 3 and len(flower_records) == 3
    assert engine["malicious_clients"] and sum(r["malicious_in_round"] for r in engine_records) == 3 * 2
    for f, e in zip(flower_records, engine_records, strict=True):
        assert f["round"] == e["round"]
        assert f["acc_m"] == pytest.approx(e["acc_m"], abs=1e-9)
        assert f["acc_b"] == pytest.approx(e["acc_b"], abs=1e-9)
        assert f["loss"] == pytest.approx(e["loss"], rel=1e-4)


def test_the_flower_command_refuses_before_starting_flower(capsys, tmp_path):
    code = main(["flower", "phishing", "--defence", "invariant", "--set", "attack.kind=ipm", "--out", str(tmp_path)])
    assert code == 2 and "IPM needs the round's other updates" in capsys.readouterr().err
    assert not (tmp_path / "summary.json").exists()
