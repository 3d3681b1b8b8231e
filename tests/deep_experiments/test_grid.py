"""Grids of runs: local processes and a local Ray instance, retries, reported failures, skipped
finished runs, specs, and the files of a grid's run against those of a single run."""

import importlib.util
import json
from pathlib import Path

import pytest

import deep_experiments as de
from deep_experiments import grid
from deep_experiments.errors import ExperimentError
from tests.deep_experiments import grid_support
from tests.deep_experiments.helpers import TINY_PHISHING, config, main


def tiny_runs(root: Path, defences=("fedavg", "invariant"), seeds=(0, 1)):
    return [(config("phishing", d, seed=s, sets=TINY_PHISHING), root / d / f"seed{s}") for d in defences for s in seeds]


def records(folder) -> list[dict]:
    saved = json.loads((Path(folder) / "records.json").read_text())
    return [{k: v for k, v in r.items() if k != "seconds"} for r in saved]


def check_retry_and_failure(tmp_path, executor, jobs):
    runs = tiny_runs(tmp_path / "grid")
    lines = []
    report = grid.run_grid(
        runs, executor=executor, jobs=jobs, retries=1, train=grid_support.fail_first_attempt, log=lines.append
    )
    assert report.failed == {} and report.trained == 4 and report.reused == 0
    assert report.attempts == {str(f): 2 for _, f in runs}  # each failed once, then finished
    assert sum(line.startswith("retry") for line in lines) == 4
    assert all(de.results.is_finished(f) for _, f in runs)
    # a run that always fails: tried 1 + retries times, then reported with its error; the others go on
    broken = [(config("phishing", "median", seed=0, sets=TINY_PHISHING), tmp_path / "broken")]
    report = grid.run_grid(
        broken + tiny_runs(tmp_path / "grid"), executor=executor, jobs=jobs, retries=2, train=grid_support.always_fail
    )
    assert list(report.failed) == [str(tmp_path / "broken")]
    assert "ValueError: planned failure of" in report.failed[str(tmp_path / "broken")]
    assert report.attempts == {str(tmp_path / "broken"): 3}
    assert report.reused == 4 and report.trained == 0  # finished runs were never attempted (always_fail)
    # a worker process that dies (killed, out of memory) fails the attempt; the retry finishes the run
    dying = tiny_runs(tmp_path / "dying", defences=("median",), seeds=(0,))
    report = grid.run_grid(dying, executor=executor, jobs=jobs, retries=1, train=grid_support.die_on_first_attempt)
    assert report.failed == {} and report.trained == 1 and report.attempts == {str(dying[0][1]): 2}
    return runs


def test_a_local_grid_retries_reports_and_skips(tmp_path):
    check_retry_and_failure(tmp_path, "local", jobs=2)


def test_a_grid_on_a_local_ray_instance(tmp_path):
    pytest.importorskip("ray", reason="Ray is an optional extra: pip install 'invariant-aggregator[ray]'")
    import cloudpickle

    cloudpickle.register_pickle_by_value(grid_support)  # Ray's workers need not import the tests package
    try:
        check_retry_and_failure(tmp_path, "ray", jobs=2)
    finally:
        cloudpickle.unregister_pickle_by_value(grid_support)


def test_a_grid_run_writes_what_a_single_run_writes(tmp_path):
    runs = tiny_runs(tmp_path / "grid", defences=("invariant",), seeds=(1,))
    lines = []
    grid.run_grid(runs, executor="local", jobs=1, progress=False, log=lines.append, log_finished=False)
    assert lines == []  # a finished run is not logged when the caller asked for failures only
    cfg, folder = runs[0]
    single = tmp_path / "single"
    de.run(cfg, "invariant", seed=1, out=single, progress=False, params=cfg["defence"]["params"])
    assert sorted(p.name for p in folder.iterdir()) == sorted(p.name for p in single.iterdir())
    assert records(folder) == records(single)


def test_the_grid_refuses_conflicts_before_anything_runs(tmp_path):
    runs = tiny_runs(tmp_path, defences=("fedavg",), seeds=(0,))
    grid.run_grid(runs, executor="local", jobs=1, progress=False)
    other = [(config("phishing", "fedavg", seed=0, sets=[*TINY_PHISHING, "federation.rounds=2"]), runs[0][1])]
    with pytest.raises(ExperimentError, match=r"hold a finished run of another configuration.*rounds"):
        grid.run_grid(other, train=grid_support.always_fail)
    twice = [(runs[0][0], tmp_path / "x"), (other[0][0], tmp_path / "x")]
    with pytest.raises(ExperimentError, match="planned into one folder"):
        grid.run_grid(twice, train=grid_support.always_fail)
    with pytest.raises(ExperimentError, match="executor 'slurm'"):
        grid.run_grid(runs, executor="slurm")
    with pytest.raises(ExperimentError, match="address = 'auto' is for executor 'ray'"):
        grid.run_grid(runs, executor="local", address="auto")
    with pytest.raises(ExperimentError, match="retries must be an integer >= 0"):
        grid.run_grid(runs, retries=-1)


def test_without_ray_the_ray_executor_names_the_fix(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "ray" else real(name, *a))
    with pytest.raises(ExperimentError, match=r"pip install 'invariant-aggregator\[ray\]'.*--executor local"):
        grid.resolve_executor("ray")
    assert grid.resolve_executor("auto") == "local"


# --------------------------------------------------------------------------- specs
SPEC = """
tasks = ["phishing"]
seeds = [0, 1]
defences = ["fedavg"]
attacks = ["edge_case", "sign_flip"]
clean = true
[set]
{sets}
[[sweeps]]
defence = "invariant"
tau = [0.4, 0.6]
"""


def write_spec(tmp_path, text=None) -> Path:
    sets = "\n".join(f'"{a.split("=")[0]}" = {a.split("=")[1]}' for a in TINY_PHISHING)
    path = tmp_path / "grid.toml"
    path.write_text(text if text is not None else SPEC.format(sets=sets))
    return path


def test_a_spec_plans_every_combination_in_named_folders(tmp_path):
    spec = grid.load_spec(write_spec(tmp_path))
    runs = grid.spec_runs(spec, tmp_path / "out")
    folders = {str(f.relative_to(tmp_path / "out")) for _, f in runs}
    # 2 attacks x 3 variants x 2 seeds, and each variant's no-attack twin once per attack (same folder)
    assert len(runs) == 2 * 3 * 2 + 2 * 3 * 2 and len(folders) == 12 + 6
    assert "phishing/sign_flip/invariant-tau0.4/seed1" in folders and "phishing/none/fedavg/seed0" in folders
    by = {str(f.relative_to(tmp_path / "out")): c for c, f in runs}
    assert by["phishing/sign_flip/fedavg/seed0"]["attack"]["kind"] == "sign_flip"
    assert by["phishing/edge_case/invariant-tau0.6/seed0"]["defence"]["params"]["tau"] == 0.6
    assert by["phishing/none/fedavg/seed0"]["federation"]["malicious_fraction"] == 0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('tasks = ["phishing"]\ndefence = ["fedavg"]', r"unknown key\(s\) \['defence'\]"),
        ('tasks = ["mnist"]', "tasks must be a non-empty list of"),
        ('tasks = ["phishing"]\nattacks = ["nope"]', "attacks must be a list of"),
        ('tasks = ["phishing"]\ndefences = ["nope"]', "nope"),
        ('tasks = ["phishing"]\nseeds = [0.5]', "seeds must be a non-empty list of integers"),
        ('tasks = ["phishing"]\n[[sweeps]]\ndefence = "invariant"\ntau = 0.4', "tau must be a non-empty list"),
        ('tasks = ["phishing"]\nretries = -1', "retries must be an integer >= 0"),
        ("tasks = [", "not valid TOML"),
    ],
)
def test_bad_specs_are_named(tmp_path, text, message):
    with pytest.raises(ExperimentError, match=message):
        grid.load_spec(write_spec(tmp_path, text))


def test_the_grid_command_runs_a_spec_and_reports(tmp_path, capsys):
    spec = write_spec(
        tmp_path,
        'tasks = ["phishing"]\nseeds = [0]\ndefences = ["fedavg", "median"]\n[set]\n'
        + "\n".join(f'"{a.split("=")[0]}" = {a.split("=")[1]}' for a in TINY_PHISHING),
    )
    out = tmp_path / "out"
    assert main(["grid", str(spec), "--out", str(out), "--executor", "local", "--jobs", "1", "--no-progress"]) == 0
    report = json.loads((out / "grid.json").read_text())
    assert report["report"]["trained"] == 2 and {r["status"] for r in report["runs"]} == {"finished"}
    assert (out / "table.md").exists() and "2 runs on local: 2 trained" in capsys.readouterr().out
    assert main(["grid", str(spec), "--out", str(out), "--executor", "local", "--no-progress"]) == 0
    assert "0 trained, 2 reused" in capsys.readouterr().out


def test_a_twin_that_two_attacks_share_is_run_and_tabled_once(tmp_path):
    """With clean twins and two attacks, each defence's no-attack run is planned under both
    attacks into one folder: it trains once and enters the table once (a seed listed twice
    would stop the table)."""
    sets = "\n".join(f'"{a.split("=")[0]}" = {a.split("=")[1]}' for a in TINY_PHISHING)
    spec = grid.load_spec(
        write_spec(
            tmp_path,
            f'tasks = ["phishing"]\nseeds = [0]\ndefences = ["median"]\nattacks = ["edge_case", "sign_flip"]\n'
            f"clean = true\n[set]\n{sets}",
        )
    )
    out = tmp_path / "out"
    report = grid.run_spec(spec, out, executor="local", jobs=1, progress=False, log=lambda line: None)
    assert report.runs == 3 and report.trained == 3  # two attacked runs and one shared twin
    statuses = json.loads((out / "grid.json").read_text())["runs"]
    assert len(statuses) == 3 and {r["status"] for r in statuses} == {"finished"}
    rows = json.loads((out / "table.json").read_text())
    edge = next(r for r in rows if "attack.kind='edge_case'" in r["differs"])
    assert edge["seeds_clean"] == [0]
