"""Appendix D's studies at small scale, as function calls: the tau x alpha sensitivity of the
Invariant Aggregator and the D.2 ablation (the AND-mask against a mean/variance-ratio filter at
matched fractions of coordinates kept, each with the trimmed mean, and each half alone).

Every variant runs under attack and, with ``clean``, without attackers (same hyperparameters),
for each seed, in its own folder; finished runs of the identical configuration are reused.
The rows are :func:`deep_experiments.results.table`'s: one per configuration, ``differs``
naming the hyperparameters, the no-attack columns beside.
"""

from __future__ import annotations

from pathlib import Path

import invariant_aggregator as ia

from . import diagnostics, results
from .api import RUN_KEYS, attacked_and_clean, run_or_reuse, without_attackers
from .config import with_overrides

TAUS = (0.2, 0.4, 0.5, 0.6, 0.7, 0.8)
ALPHAS = (0.1, 0.2, 0.3)


def sensitivity_variants(taus=TAUS, alphas=ALPHAS, authors_trim: bool = True) -> list[tuple[str, dict]]:
    """(defence, hyperparameters) of the tau x alpha grid, plus the authors' trim per tau."""
    grid = [("invariant", {"tau": t, "alpha": a}) for t in taus for a in alphas]
    return grid + ([("invariant", {"tau": t, "trim": "authors"}) for t in taus] if authors_trim else [])


def ablation_variants(taus=(0.4, 0.6, 0.8), alpha: float = 0.2) -> list[tuple[str, dict]]:
    """The AND-mask and the mean/variance-ratio filter keeping as many coordinates (each with the
    trimmed mean), per tau; and the halves alone: the trimmed mean, the AND-mask with the mean."""
    variants = []
    for t in taus:
        variants += [("invariant", {"tau": t, "alpha": alpha}), ("mean_ratio", {"match_tau": t, "alpha": alpha})]
        variants.append(("and_mask", {"tau": t}))
    return variants + [("trimmed_mean", {"alpha": alpha})]


def variant_folder(defence: str, params: dict) -> str:
    """A variant's folder name: the defence and its hyperparameters (``invariant-alpha0.1-tau0.4``)."""
    return defence + "".join(f"-{k}{v}" for k, v in sorted(params.items()))


def variant_runs(
    config: dict, variants, *, out, seeds=range(3), clean: bool = True, data=None, download: bool = False, device=None
) -> list[tuple[dict, Path]]:
    """The plan of :func:`run_variants` without running it: (configuration, folder) pairs."""
    out = Path(out)
    options = {"data": data, "download": download, "device": device}
    quiet = without_attackers(config) if clean else None
    runs = []
    for defence, params in variants:
        for seed in seeds:
            for kind, cfg in attacked_and_clean(config, quiet, defence, seed=seed, params=params, **options):
                runs.append(
                    (cfg, (out / "clean" if kind == "clean" else out) / variant_folder(defence, params) / f"seed{seed}")
                )
    return runs


def variant_rows(folders, *, out) -> list[dict]:
    """The table of the finished runs in exactly ``folders``, written to ``out/table.*``."""
    rows = results.table(results.load_summaries([f for f in folders if results.is_finished(f)]))
    results.write_table(rows, Path(out) / results.TABLE)
    return rows


def run_variants(
    config: dict,
    variants,
    *,
    out,
    seeds=range(3),
    clean: bool = True,
    data=None,
    download: bool = False,
    device=None,
    restart=False,
    progress=False,
    log=print,
) -> list[dict]:
    """Run every (defence, hyperparameters) of ``variants`` for every seed, under attack in
    ``out/VARIANT/seedS`` and, with ``clean``, without attackers in ``out/clean/VARIANT/seedS``;
    returns the table rows (also written to ``out/table.*``)."""
    out = Path(out)
    runs = variant_runs(
        config, variants, out=out, seeds=seeds, clean=clean, data=data, download=download, device=device
    )
    _run_each(runs, out, restart=restart, progress=progress, log=log)
    return variant_rows([f for _, f in runs], out=out)


def _run_each(runs, out: Path, *, restart, progress, log) -> None:
    """Run (or reuse) each planned (configuration, folder), logging the ones that trained."""
    for cfg, folder in runs:
        s = run_or_reuse(cfg, folder, restart=restart, progress=progress)
        if s is not None:
            log(f"{folder.relative_to(out)}: Acc_M {s['acc_m']:.3f}  Acc_B {s['acc_b']:.3f}")


def watched(config: dict) -> dict:
    """``config`` with the per-round mechanism diagnostic switched on."""
    return with_overrides({k: v for k, v in config.items() if k not in RUN_KEYS}, {"runtime.diagnostics": True})


def mechanism_rows(folders, *, out) -> list[dict]:
    """The mechanism rows of the finished runs in exactly ``folders``, written to
    ``out/mechanism.{json,md}``."""
    rows = diagnostics.mechanism_rows(results.load_summaries([f for f in folders if results.is_finished(f)]))
    ia.write_json_atomic(Path(out) / "mechanism.json", rows)
    ia.write_text_atomic(Path(out) / "mechanism.md", diagnostics.mechanism_markdown(rows))
    return rows


def mechanism(
    config: dict,
    *,
    out,
    defences=("fedavg", "invariant"),
    seeds=range(3),
    restart=False,
    progress=False,
    log=print,
    **options,
) -> list[dict]:
    """The per-round diagnostic (:mod:`deep_experiments.diagnostics`) for ``defences`` under
    attack; rows of seed means, also written to ``out/mechanism.{json,md}`` (and the runs'
    table to ``out/table.*``). ``options``: data, download, device."""
    out = Path(out)
    runs = variant_runs(watched(config), [(d, {}) for d in defences], out=out, seeds=seeds, clean=False, **options)
    _run_each(runs, out, restart=restart, progress=progress, log=log)
    folders = [f for _, f in runs]
    variant_rows(folders, out=out)
    return mechanism_rows(folders, out=out)
