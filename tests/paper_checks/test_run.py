"""The whole job on a tiny configuration: every claim in the report, a self-contained HTML file,
and a cache that skips finished work and redoes only what is missing."""

from __future__ import annotations

import json
import re

import pytest

from deep_experiments import results as run_results
from paper_checks import CLAIMS
from paper_checks.api import run
from paper_checks.cli import main

# runs of a few hundredths of a second: the machinery, not the science
TINY = {
    "federation.rounds": 1,
    "federation.n_clients": 10,
    "federation.clients_per_round": 5,
    "data.samples_per_client": 40,
    "data.n_test": 100,
}


def _quiet(line):
    pass


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("checks")
    return out, run("quick", out=out, tasks=("phishing",), overrides=TINY, progress=False, log=_quiet)


def test_the_report_holds_every_claim(report):
    out, got = report
    assert [e["id"] for e in got["claims"]] == list(CLAIMS)
    written = json.loads((out / "report.json").read_text())
    assert [e["id"] for e in written["claims"]] == list(CLAIMS)
    md = (out / "report.md").read_text()
    assert all(f"### {cid}" in md for cid in CLAIMS) and md.count("| **") >= len(CLAIMS)
    assert "spambase" not in written["plan"]["missing"]  # not asked for, so not missing
    assert written["plan"]["execution"]["failed"] == {}
    for entry in written["claims"]:
        assert entry["verdict"] in (
            "holds",
            "violated",
            "vacuous",
            "inapplicable",
            "ill-posed",
            "reproduced",
            "not reproduced",
            "not run",
        )


def test_the_html_is_one_self_contained_file(report):
    out, _ = report
    html = (out / "report.html").read_text()
    sources = re.findall(r'src="([^"]*)"', html)
    assert sources and all(s.startswith("data:image/png;base64,") for s in sources)
    assert not re.search(r'href="(?!#)', html)  # only in-page links
    assert len(sources) == len(set(sources))  # each figure embedded once
    assert all(f'id="{cid}"' in html for cid in CLAIMS)


def test_figures_and_results_are_written(report):
    out, got = report
    assert {p.name for p in (out / "figures").glob("*.png")} >= {"table1.png", "failure_modes.png", "ablation.png"}
    assert (out / "results" / "phishing-small.table.json").is_file()
    assert got["plan"]["execution"]["trained"] == got["plan"]["execution"]["runs"] > 0


def test_the_cache_skips_finished_runs_and_redoes_only_what_is_missing(tmp_path):
    only = ["table1.backdoor_reduced"]
    first = run("quick", out=tmp_path, tasks=("phishing",), overrides=TINY, only=only, progress=False, log=_quiet)
    n = first["plan"]["execution"]["runs"]
    assert first["plan"]["execution"]["trained"] == n and [e["id"] for e in first["claims"]] == only
    again = run("quick", out=tmp_path, tasks=("phishing",), overrides=TINY, only=only, progress=False, log=_quiet)
    assert again["plan"]["execution"] | {"seconds": 0} == {
        "seconds": 0,
        "runs": n,
        "trained": 0,
        "reused": n,
        "failed": {},
        "retried": {},
        "executor": "local",
    }
    assert again["claims"] == first["claims"]  # the same runs give the same verdicts
    summaries = sorted((tmp_path / "runs").rglob(run_results.SUMMARY))
    summaries[0].unlink()  # as if that run had been interrupted
    third = run("quick", out=tmp_path, tasks=("phishing",), overrides=TINY, only=only, progress=False, log=_quiet)
    assert third["plan"]["execution"]["trained"] == 1 and third["plan"]["execution"]["reused"] == n - 1


def test_the_command_line_refuses_bad_arguments(tmp_path, capsys):
    assert main(["--list"]) == 0 and "table1.cells" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["--quick", "--jobs", "0", "--out", str(tmp_path)])
    with pytest.raises(SystemExit):
        main(["--quick", "--set", "federation.rounds", "--out", str(tmp_path)])
    assert main(["--quick", "--only", "no.such.claim", "--out", str(tmp_path)]) == 2
    assert "unknown claim" in capsys.readouterr().err
    assert main(["--quick", "--executor", "local", "--address", "auto", "--out", str(tmp_path)]) == 2
    assert "address = 'auto' is for executor 'ray'" in capsys.readouterr().err
    assert not (tmp_path / "results").exists()  # refused before the theory sweep
