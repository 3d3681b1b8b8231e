"""What a paper check runs: the plan of stages, their training runs, and what each level leaves out.

A *stage* produces one results file under ``RESULTS/`` (``linear_theory.json``,
``TASK-STAGE.table.json``, ``TASK-mechanism.mechanism.json``): the file names are those of
``benchmarks/tabular-results``, so ``python -m figures`` and the claims read either. A stage of
training runs lists them as (configuration, folder) pairs; the folders sit under
``RUNS/TASK-STAGE-HASH/``, where HASH is the digest of the task's configuration, so a changed
setting gets new folders (nothing is mixed) and an unchanged one reuses every finished run.

Levels:

* ``quick``: the linear-theory quick grid; per tabular task, Table 1 (every row, 2 seeds, with
  no-attack twins), the paper-literal setting for a subset of rows, a 3 x 3 tau x alpha grid and
  the ablation at two taus (1 seed), the mechanism diagnostic (2 seeds), the attack x defence
  matrix (``TASK-attacks.attacks.json``, :mod:`deep_experiments.attack_matrix`; 1 seed). 3 min 47 s
  on two cores (measured: 464 runs); what it leaves out is listed in :attr:`Plan.left_out`.
* ``full``: the linear-theory full grid and everything of ``benchmarks/tabular_studies.py``:
  5 seeds for Table 1 at both settings and the mechanism, the whole sensitivity grid, the
  ablation and the attack matrix at 3 seeds (16 min 54 s on two cores, measured: 1,872 runs).
* ``paper``: ``full`` plus Table 1 at the paper's scale for every task whose data and hardware
  this machine has; the others are listed in :attr:`Plan.missing`, with what they need.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import deep_experiments as de
from deep_experiments import attack_matrix, studies
from deep_experiments.api import table1_runs
from deep_experiments.defences import TABLE1_ROWS
from deep_experiments.errors import ExperimentError

LEVELS = ("quick", "full", "paper")
TABULAR_TASKS = ("spambase", "phishing")
PAPER_TASKS = ("cifar10", "twitter", "phishing")  # the tasks of the paper's Table 1
# the stages a claim can need (see paper_checks.claims.Claim.needs)
STAGE_KINDS = ("theory", "table1", "literal", "sensitivity", "ablation", "mechanism", "attacks", "paper")

# The paper-literal rows of the quick plan: the reference points (FedAvg, no attack), the
# defence under test and the two prior rules it is built from (trimmed mean) or compared with
# most (Krum: vector-wise). Chosen before any literal result was looked at; --full runs all.
QUICK_LITERAL_ROWS = ("fedavg", "no_attack", "invariant", "trimmed_mean", "krum")
# The rows whose utility without attack a claim reads (table1.comparable_utility, the Sign-SGD and
# Weak-DP utility claims): the quick plan runs no-attack twins for these only; --full for all.
QUICK_CLEAN_ROWS = ("fedavg", "invariant", "sign_sgd", "weak_dp")


@dataclass(frozen=True)
class LevelSettings:
    theory_grid: str  # linear_theory's grid: "quick" or "full"
    table1_seeds: tuple
    clean_rows: tuple | None  # the Table 1 rows with no-attack twins (None: every row)
    literal_rows: tuple | None  # None: every row
    literal_seeds: tuple
    sensitivity_taus: tuple
    sensitivity_alphas: tuple
    authors_trim: bool
    ablation_taus: tuple
    study_seeds: tuple
    mechanism_seeds: tuple
    attack_seeds: tuple  # the attack x defence matrix (deep_experiments.attack_matrix)


LEVEL_SETTINGS = {
    "quick": LevelSettings(
        theory_grid="quick",
        table1_seeds=(0, 1),
        clean_rows=QUICK_CLEAN_ROWS,
        literal_rows=QUICK_LITERAL_ROWS,
        literal_seeds=(0, 1),
        sensitivity_taus=(0.4, 0.6, 0.8),
        sensitivity_alphas=(0.1, 0.2, 0.3),
        authors_trim=False,
        ablation_taus=(0.4, 0.8),
        study_seeds=(0,),
        mechanism_seeds=(0, 1),
        attack_seeds=(0,),
    ),
    "full": LevelSettings(
        theory_grid="full",
        table1_seeds=tuple(range(5)),
        clean_rows=None,
        literal_rows=None,
        literal_seeds=tuple(range(5)),
        sensitivity_taus=studies.TAUS,
        sensitivity_alphas=studies.ALPHAS,
        authors_trim=True,
        ablation_taus=(0.4, 0.6, 0.8),
        study_seeds=(0, 1, 2),
        mechanism_seeds=tuple(range(5)),
        attack_seeds=(0, 1, 2),
    ),
}
LEVEL_SETTINGS["paper"] = LEVEL_SETTINGS["full"]


@dataclass
class Stage:
    """One results file and the runs that produce it."""

    name: str  # e.g. "phishing-small": the results file is RESULTS/<name>.<suffix>
    kind: str  # one of STAGE_KINDS
    task: str | None
    runs: list = field(default_factory=list)  # (configuration, folder) pairs
    skipped: dict = field(default_factory=dict)  # Table 1 rows that do not apply: {defence: why}
    result: str = "table.json"  # the suffix of its results file
    note: str = ""  # what this stage covers, in words

    @property
    def result_file(self) -> str:
        return f"{self.name}.{self.result}"


@dataclass
class Plan:
    level: str
    stages: list[Stage]
    left_out: dict[str, str]  # {stage name or "all": what this level does not run that a fuller one would}
    missing: dict[str, str]  # {task or stage name: why it cannot run here (data or hardware), what it needs}
    settings: dict  # the plan's own settings, for the report

    @property
    def n_runs(self) -> int:
        return sum(len(s.runs) for s in self.stages)

    def to_dict(self) -> dict:
        return {
            "level": self.level,
            "settings": self.settings,
            "left_out": self.left_out,
            "missing": self.missing,
            "stages": [
                {
                    "name": s.name,
                    "kind": s.kind,
                    "task": s.task,
                    "runs": len(s.runs),
                    "result": s.result_file,
                    "note": s.note,
                }
                for s in self.stages
            ],
        }


def config_digest(config: dict) -> str:
    """A short digest of a configuration (the run folders of a changed setting differ)."""
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:10]


def _data_missing(config: dict, data) -> str | None:
    """Why the task of ``config`` cannot load its data here (None: it can). Builds the task once,
    which for the tabular tasks takes well under a second and reads and checks the whole file."""
    from deep_experiments.tasks import build_task

    cfg = de.run_config(config, "fedavg", seed=0, data=data)
    try:
        build_task(cfg, 0)
    except ExperimentError as exc:
        lines = [line.strip() for line in str(exc).strip().splitlines()]
        return " ".join(lines) + f" (to paper_checks: --data {config['task']}=PATH)"
    return None


def _folder(runs: Path, name: str, config: dict) -> Path:
    return runs / f"{name}-{config_digest(config)}"


def make_plan(
    level: str = "quick",
    *,
    runs: Path,
    kinds=STAGE_KINDS,
    tasks=TABULAR_TASKS,
    overrides: dict | None = None,
    data: dict | None = None,
    cuda: bool | None = None,
) -> Plan:
    """The stages of ``level`` restricted to ``kinds`` (the stages the selected claims need).
    ``overrides``: dotted settings applied to every tabular configuration (e.g. fewer rounds, for
    a smoke test: they change the folders' digest, so they never mix with real runs).
    ``data``: {task: path} for tasks whose data is not found by default. ``cuda``: whether a GPU
    is there (default: ask torch)."""
    if level not in LEVELS:
        raise ExperimentError(f"unknown level {level!r}; choose one of {', '.join(LEVELS)}")
    unknown = set(kinds) - set(STAGE_KINDS)
    if unknown:
        raise ExperimentError(f"unknown stage kinds {sorted(unknown)}; choose from {', '.join(STAGE_KINDS)}")
    s = LEVEL_SETTINGS[level]
    runs, overrides, data = Path(runs), dict(overrides or {}), dict(data or {})
    full = LEVEL_SETTINGS["full"]  # what a reduced level is compared with in its left_out notes
    clean = True if s.clean_rows is None else s.clean_rows
    stages: list[Stage] = []
    left_out: dict[str, str] = {}
    missing: dict[str, str] = {}
    if "theory" in kinds:
        stages.append(
            Stage("linear_theory", "theory", None, result="json", note=f"linear_theory's {s.theory_grid} grid")
        )
        if s.theory_grid == "quick":
            left_out["linear_theory"] = "the quick grid (fewer laws, sizes and Monte-Carlo trials than --full)"
    for task in tasks:
        fair = de.load_config(task, "small", overrides=overrides)
        reason = _data_missing(fair, data.get(task))
        if reason is not None:
            missing[task] = reason
            continue
        if "table1" in kinds:
            name = f"{task}-small"
            runs_, skipped = table1_runs(
                fair, out=_folder(runs, name, fair), seeds=s.table1_seeds, clean=clean, data=data.get(task)
            )
            stages.append(
                Stage(name, "table1", task, runs_, skipped, note=f"Table 1, fair setting, {len(s.table1_seeds)} seeds")
            )
        if "literal" in kinds:
            literal = de.load_config(task, "small-literal", overrides=overrides)
            name = f"{task}-small-literal"
            rows = s.literal_rows or tuple(TABLE1_ROWS.values())
            runs_, skipped = table1_runs(
                literal,
                out=_folder(runs, name, literal),
                defences=rows,
                seeds=s.literal_seeds,
                clean=clean,
                data=data.get(task),
            )
            stages.append(
                Stage(
                    name,
                    "literal",
                    task,
                    runs_,
                    skipped,
                    note=f"Table 1, paper-literal setting, {len(s.literal_seeds)} seeds",
                )
            )
            if s.literal_rows is not None:
                left_out[name] = f"the quick plan runs only the rows {', '.join(s.literal_rows)} (--full: all)"
        if "sensitivity" in kinds:
            name = f"{task}-sensitivity"
            variants = studies.sensitivity_variants(s.sensitivity_taus, s.sensitivity_alphas, s.authors_trim)
            runs_ = studies.variant_runs(
                fair, variants, out=_folder(runs, name, fair), seeds=s.study_seeds, data=data.get(task)
            )
            stages.append(Stage(name, "sensitivity", task, runs_, note=f"tau x alpha, {len(s.study_seeds)} seed(s)"))
            if level == "quick":
                left_out[name] = (
                    f"tau in {list(s.sensitivity_taus)} x alpha in {list(s.sensitivity_alphas)}, "
                    f"{len(s.study_seeds)} seed(s) (--full: tau in {list(full.sensitivity_taus)}, also the "
                    f"authors' trim, {len(full.study_seeds)} seeds)"
                )
        if "ablation" in kinds:
            name = f"{task}-ablation"
            variants = studies.ablation_variants(s.ablation_taus)
            runs_ = studies.variant_runs(
                fair, variants, out=_folder(runs, name, fair), seeds=s.study_seeds, data=data.get(task)
            )
            stages.append(Stage(name, "ablation", task, runs_, note=f"ablation, {len(s.study_seeds)} seed(s)"))
            if level == "quick":
                left_out[name] = (
                    f"tau in {list(s.ablation_taus)}, {len(s.study_seeds)} seed(s) "
                    f"(--full: tau in {list(full.ablation_taus)}, {len(full.study_seeds)} seeds)"
                )
        if "mechanism" in kinds:
            name = f"{task}-mechanism"
            watched = studies.watched(fair)
            variants = [("fedavg", {}), ("invariant", {})]
            runs_ = studies.variant_runs(
                watched,
                variants,
                out=_folder(runs, name, watched),
                seeds=s.mechanism_seeds,
                clean=False,
                data=data.get(task),
            )
            stages.append(
                Stage(name, "mechanism", task, runs_, result="mechanism.json", note=f"{len(s.mechanism_seeds)} seeds")
            )
        if "attacks" in kinds:
            name = f"{task}-attacks"
            runs_ = attack_matrix.matrix_runs(
                fair, out=_folder(runs, name, fair), seeds=s.attack_seeds, data=data.get(task)
            )
            stages.append(
                Stage(
                    name,
                    "attacks",
                    task,
                    runs_,
                    result="attacks.json",
                    note=f"attack x defence matrix, fair setting, {len(s.attack_seeds)} seed(s)",
                )
            )
            if len(s.attack_seeds) < len(full.attack_seeds):
                left_out[name] = f"{len(s.attack_seeds)} seed(s) (--full: {len(full.attack_seeds)})"
    if level == "quick" and "table1" in kinds:
        left_out["all"] = (
            f"Table 1: {len(s.table1_seeds)} seeds per row (--full: {len(full.table1_seeds)}), no-attack twins "
            f"for {', '.join(s.clean_rows)} only (--full: every row); mechanism: {len(s.mechanism_seeds)} seeds "
            f"(--full: {len(full.mechanism_seeds)})"
        )
    if "paper" in kinds:
        stages_, missing_ = _paper_stages(runs, data, cuda, overrides)
        missing |= missing_  # said at every level: what this machine could not run even with --paper
        if level != "paper":
            runnable = ", ".join(s.task for s in stages_) or "none"
            left_out["paper"] = f"Table 1 at the paper's scale: run with --paper (runnable here: {runnable})"
        else:
            stages += stages_
    return Plan(level, stages, left_out, missing, {"level": level, **s.__dict__, "overrides": overrides})


def _paper_stages(runs: Path, data: dict, cuda: bool | None, overrides: dict):
    """Table 1 at the paper's scale for each of the paper's tasks this machine can run."""
    import torch

    cuda = torch.cuda.is_available() if cuda is None else cuda
    stages, missing = [], {}
    for task in PAPER_TASKS:
        mine = overrides if task in TABULAR_TASKS else {}  # --set speaks to the tabular tasks only
        cfg = de.load_config(task, "paper", overrides=mine)
        needs_gpu = task in ("cifar10", "twitter")
        reasons = []
        if needs_gpu and not cuda:
            reasons.append(
                f"needs a CUDA GPU (the paper's {task} model would train for days on CPU); torch sees none here"
            )
        reason = _data_missing(cfg, data.get(task))
        if reason is not None:
            reasons.append(reason)
        if reasons:
            missing[f"{task}-paper"] = "; ".join(reasons)
            continue
        if needs_gpu:
            cfg = de.load_config(task, "paper", overrides={**mine, "runtime.device": "cuda"})
        name = f"{task}-paper"
        runs_, skipped = table1_runs(cfg, out=_folder(runs, name, cfg), seeds=(0, 1, 2), data=data.get(task))
        stages.append(Stage(name, "paper", task, runs_, skipped, note="Table 1 at the paper's scale, 3 seeds"))
    return stages, missing
