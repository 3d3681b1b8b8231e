"""Every figure module draws from small result files and writes a non-empty PNG and PDF; a
figure without its inputs says so; drawing leaves matplotlib's global state alone."""

from __future__ import annotations

import json
import math

import matplotlib as mpl
import pytest

import figures
from figures.cli import main
from linear_theory.sweep import run_sweep
from paper_checks.table1 import paper_table1_records
from tests.paper_checks.support import baseline_rows, row, write


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    out = tmp_path_factory.mktemp("results")
    records, _ = run_sweep(quick=True, progress=False)  # a few seconds
    write(out, "linear_theory.json", records)
    write(out, "paper_table1.json", paper_table1_records())
    for task in ("phishing", "spambase"):
        rows = baseline_rows(task, krum=(0.9, 0.1))
        rows.append(
            {
                "task": task,
                "defence": "freeze_layers",
                "row": "Freezing Layers",
                "seeds": [],
                "differs": [],
                "not_applicable": "an MLP",
            }
        )
        write(out, f"{task}-small.table.json", rows)
    write(
        out,
        "phishing-sensitivity.table.json",
        [
            row("invariant", 0.9, 0.1 * t + a, params={"tau": t, "alpha": a}, seeds=(0,), se=math.nan)
            for t in (0.4, 0.8)
            for a in (0.1, 0.3)
        ],
    )
    write(
        out,
        "phishing-ablation.table.json",
        [
            row("invariant", 0.9, 0.2, clean=0.93, params={"tau": 0.4, "alpha": 0.2}),
            row("mean_ratio", 0.85, 0.3, clean=0.88, params={"match_tau": 0.4, "alpha": 0.2}),
            row("trimmed_mean", 0.92, 0.8, clean=0.94),
        ],
    )
    write(
        out,
        "phishing-mechanism.mechanism.json",
        [
            {
                "task": "phishing",
                "defence": d,
                "seeds": 2,
                "tau": 0.6,
                "trigger_pass_rate": 0.05,
                "other_pass_rate": 0.1,
                "trigger_benign_zero_share": 0.01,
            }
            for d in ("fedavg", "invariant")
        ],
    )
    write(
        out,
        "phishing-attacks.attacks.json",
        [
            row(d, 0.9, b, seeds=(0,), se=math.nan)
            | {"attack": a, "attack_label": a.replace("_", " "), "acc_b_last10": b, "acc_m_last10": 0.9}
            for a, b0 in (("none", 0.05), ("edge_case", 0.9), ("ipm", 0.06))
            for d, b in (("fedavg", b0), ("invariant", b0 / 3))
        ],
    )
    return out


@pytest.mark.parametrize("name", sorted(figures.FIGURES))
def test_each_figure_writes_a_png_and_a_pdf(results, tmp_path, name):
    before = dict(mpl.rcParams)
    drawn = figures.draw_all(results, tmp_path, [name])
    png, pdf = drawn[name]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    assert pdf.read_bytes()[:5] == b"%PDF-" and pdf.stat().st_size > 5_000
    assert dict(mpl.rcParams) == before  # the style applies to our figures only
    assert not list(tmp_path.glob(".*.tmp"))  # written atomically: no temporary left


def test_figures_without_inputs_say_what_is_missing(tmp_path):
    drawn = figures.draw_all(tmp_path, tmp_path / "out")
    assert set(drawn) == set(figures.FIGURES)
    assert all(isinstance(v, str) and str(tmp_path) in v for v in drawn.values())
    assert not (tmp_path / "out").exists()


def test_every_module_declares_its_inputs():
    for module in figures.FIGURES.values():
        assert module.INPUTS and module.__doc__ and callable(module.draw)


def test_the_command_line(results, tmp_path, capsys):
    assert main([str(results), "--out", str(tmp_path), "--only", "table1"]) == 0
    assert (tmp_path / "table1.png").is_file() and "table1" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main([str(tmp_path / "no-such-folder"), "--out", str(tmp_path)])
    (tmp_path / "empty").mkdir()
    assert main([str(tmp_path / "empty"), "--out", str(tmp_path / "o")]) == 1


def test_the_table1_figure_reads_the_paper_cells(results):
    cells = json.loads((results / "paper_table1.json").read_text())
    assert {
        "method": "Ours",
        "task": "twitter",
        "acc_m": 0.687,
        "acc_b": 0.296,
        "spread_m": 0.001,
        "spread_b": 0.003,
    } in cells


def test_rows_of_tables_written_before_params_still_give_their_hyperparameters():
    from deep_experiments.results import row_params

    old = {
        "differs": [
            "defence.params.alpha=0.1",
            "defence.params.tau=0.4",
            "defence.params.trim='(unset)'",
            "federation.rounds=50",
        ]
    }
    assert row_params(old) == {"alpha": 0.1, "tau": 0.4}
    assert row_params({**old, "params": {"tau": 0.6}}) == {"tau": 0.6}  # written rows win
