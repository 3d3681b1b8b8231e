"""The attack x defence matrix: every Table 1 defence against the paper's edge-case backdoor,
the backdoors that aim at a defence (ALIE, Neurotoxin, the mask-aware attacker, each with the
knowledge it assumes), the same backdoors stopped halfway (durability), and the untargeted
attacks; with each defence's no-attack runs as the reference column.

A cell is a function call like every run: :func:`matrix_runs` plans (configuration, folder)
pairs, ``out/ATTACK/DEFENCE/seedS`` (the reference: ``out/none/...``), and :func:`matrix_rows`
reads exactly those folders back into rows of seed means and standard errors. The attacks'
settings are their documented defaults (``configs/<task>.toml``, ``[attack]``); nothing here
is tuned per defence.

>>> [name for name, spec in ATTACKS.items() if spec.targeted][:3]
['edge_case', 'alie', 'alie_omniscient']
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

import invariant_aggregator as ia

from . import results
from .api import attacked_and_clean, without_attackers
from .config import with_overrides
from .defences import NOT_APPLICABLE, SETTINGS, TABLE1_ROWS, check_defence_name
from .errors import ExperimentError
from .tasks import MODALITY

REFERENCE = "none"  # the column of runs without attackers


@dataclass(frozen=True)
class AttackSpec:
    label: str
    overrides: dict = field(default_factory=dict)  # dotted [attack] settings
    targeted: bool = True  # a backdoor (Acc_B is its aim); else untargeted (Acc_M is)
    stops_halfway: bool = False  # attack rounds 1 .. rounds // 2, then measure durability


ATTACKS = {
    "edge_case": AttackSpec("edge case (the paper's)"),
    "alie": AttackSpec("ALIE, own", {"attack.evasion": "alie", "attack.knowledge": "own"}),
    "alie_omniscient": AttackSpec("ALIE, omniscient", {"attack.evasion": "alie", "attack.knowledge": "omniscient"}),
    "neurotoxin": AttackSpec("Neurotoxin", {"attack.evasion": "neurotoxin"}),
    "mask_aware": AttackSpec("mask-aware, own", {"attack.evasion": "mask_aware", "attack.knowledge": "own"}),
    "mask_aware_omniscient": AttackSpec(
        "mask-aware, omniscient", {"attack.evasion": "mask_aware", "attack.knowledge": "omniscient"}
    ),
    "edge_case_stop": AttackSpec("edge case, first half", stops_halfway=True),
    "neurotoxin_stop": AttackSpec("Neurotoxin, first half", {"attack.evasion": "neurotoxin"}, stops_halfway=True),
    "sign_flip": AttackSpec("sign flip", {"attack.kind": "sign_flip"}, targeted=False),
    "gaussian": AttackSpec("Gaussian noise", {"attack.kind": "gaussian"}, targeted=False),
    "ipm": AttackSpec("IPM", {"attack.kind": "ipm"}, targeted=False),
}


def matrix_defences(task: str) -> list[str]:
    """Every Table 1 defence that applies to the task (the no-attack row is the reference column)."""
    ablation_only = ("median", "and_mask")  # in TABLE1_ROWS for the ablation, not rows of the paper
    rows = [d for d in TABLE1_ROWS.values() if d not in ("no_attack", *ablation_only)]
    return [d for d in rows if (d, MODALITY[task]) not in NOT_APPLICABLE]


def attack_config(config: dict, attack: str) -> dict:
    """``config`` under the named attack of :data:`ATTACKS`."""
    if attack not in ATTACKS:
        raise ExperimentError(f"unknown attack {attack!r}; choose from {', '.join(ATTACKS)}")
    spec = ATTACKS[attack]
    overrides = dict(spec.overrides)
    if spec.stops_halfway:
        overrides["attack.end_round"] = max(1, config["federation"]["rounds"] // 2)
    base = {k: v for k, v in config.items() if k not in ("seed", "defence")}
    return with_overrides(base, overrides)


def matrix_runs(
    config: dict, *, out, attacks=None, defences=None, seeds=(0, 1, 2), data=None, download=False, device=None
) -> list[tuple[dict, Path]]:
    """(configuration, folder) of every cell and seed (``attacks``: default all of :data:`ATTACKS`),
    and of each defence without attackers."""
    out = Path(out)
    attacks = tuple(attacks or ATTACKS)
    defences = list(defences or matrix_defences(config["task"]))
    for d in defences:
        check_defence_name(d)
        if d in SETTINGS:
            raise ExperimentError(f"{d!r} is a setting of FedAvg, not a defence to attack; leave it out")
    options = {"data": data, "download": download, "device": device}
    quiet = without_attackers(config)
    runs = []
    for attack in attacks:
        cfg = attack_config(config, attack)
        twin = quiet if attack == attacks[0] else None  # one reference run per defence and seed
        for defence in defences:
            for seed in seeds:
                for kind, run_cfg in attacked_and_clean(cfg, twin, defence, seed=seed, **options):
                    name = REFERENCE if kind == "clean" else attack
                    runs.append((run_cfg, out / name / defence / f"seed{seed}"))
    return runs


def _durability(summaries: list[dict]) -> dict:
    found = [s["durability"] for s in summaries if "durability" in s]
    if not found:
        return {}
    at_stop = [d["acc_b_at_stop"] for d in found]
    final = [d["acc_b_final"] for d in found]
    return {
        "stopped_after": found[0]["stopped_after"],
        "acc_b_at_stop": float(np.mean(at_stop)),
        "acc_b_at_stop_se": results.mean_se(at_stop)[1],
        "acc_b_final": float(np.mean(final)),
        "acc_b_final_se": results.mean_se(final)[1],
    }


def matrix_rows(folders, *, out=None) -> list[dict]:
    """One row per (attack, defence) of the finished runs in exactly ``folders``: the table
    columns of :func:`deep_experiments.results.table` (seed means and SEs of Acc_M and Acc_B, at
    the last round and over the last 10 % of rounds), the attack's name, label and kind, and for
    attacks that stop halfway the backdoor's durability. Written to ``out/attacks.{json,md}``."""
    by_attack = defaultdict(list)
    for f in folders:
        if results.is_finished(f):
            by_attack[Path(f).parent.parent.name].append(Path(f))
    rows = []
    for attack in [REFERENCE, *ATTACKS]:
        if attack not in by_attack:
            continue
        summaries = results.load_summaries(by_attack[attack])
        spec = ATTACKS.get(attack)
        for row in results.table(summaries):
            row |= {
                "attack": attack,
                "attack_label": spec.label if spec else "no attack",
                "targeted": spec.targeted if spec else None,
            }
            if spec and spec.stops_halfway:
                row["durability"] = _durability([s for s in summaries if s["defence"] == row["defence"]])
            rows.append(row)
    if out is not None:
        ia.write_json_atomic(Path(out) / "attacks.json", rows)
        ia.write_text_atomic(Path(out) / "attacks.md", to_markdown(rows))
    return rows


def run_matrix(
    config: dict,
    *,
    out,
    attacks=None,
    defences=None,
    seeds=(0, 1, 2),
    restart=False,
    progress=False,
    log=print,
    **options,
) -> list[dict]:
    """Run (or reuse) every cell of the matrix into ``out`` and return its rows (also written to
    ``out/attacks.{json,md}``). ``options``: data, download, device."""
    from .api import run_or_reuse

    out = Path(out)
    runs = matrix_runs(config, out=out, attacks=attacks, defences=defences, seeds=seeds, **options)
    for cfg, folder in runs:
        s = run_or_reuse(cfg, folder, restart=restart, progress=progress)
        if s is not None:
            log(f"{folder.relative_to(out)}: Acc_M {s['acc_m']:.3f}  Acc_B {s['acc_b']:.3f}")
    return matrix_rows([f for _, f in runs], out=out)


def worst_attacks(rows: list[dict], key: str = "acc_b_last10") -> dict[str, dict]:
    """Per task and defence, the backdoor that leaves the highest Acc_B and the untargeted attack
    that leaves the lowest Acc_M (means over the last 10 % of rounds)."""
    worst: dict = defaultdict(dict)
    for r in rows:
        if r["attack"] == REFERENCE:
            continue
        slot = worst[(r["task"], r["defence"])]
        if r["targeted"]:
            if "backdoor" not in slot or r[key] > slot["backdoor"][key]:
                slot["backdoor"] = r
        elif "untargeted" not in slot or r["acc_m_last10"] < slot["untargeted"]["acc_m_last10"]:
            slot["untargeted"] = r
    return {f"{t}/{d}": v for (t, d), v in worst.items()}


def to_markdown(rows: list[dict]) -> str:
    """Per task: Acc_B and Acc_M (last 10 % of rounds, mean ± SE) of every defence (rows)
    under every attack (columns)."""
    out = []
    for task in sorted({r["task"] for r in rows}):
        mine = [r for r in rows if r["task"] == task]
        attacks = list(dict.fromkeys(r["attack"] for r in mine))
        labels = {r["attack"]: r["attack_label"] for r in mine}
        defences = list(dict.fromkeys(r["defence"] for r in mine))
        cell = {(r["attack"], r["defence"]): r for r in mine}
        for metric, name in (("acc_b_last10", "Acc_B"), ("acc_m_last10", "Acc_M")):
            out += [f"## {task}: {name} (mean of the last 10 % of rounds ± SE over seeds)", ""]
            out.append("| defence | " + " | ".join(labels[a] for a in attacks) + " |")
            out.append("|---" * (len(attacks) + 1) + "|")
            for d in defences:
                vals = []
                for a in attacks:
                    r = cell.get((a, d))
                    if r is None:
                        vals.append("—")
                        continue
                    se = r.get(f"{metric}_se", float("nan"))
                    vals.append(f"{r[metric]:.3f}" + ("" if se != se else f" ± {se:.3f}"))
                out.append(f"| {d} | " + " | ".join(vals) + " |")
            out.append("")
    return "\n".join(out)
