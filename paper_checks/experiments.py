"""The experimental claims, checked on our runs: Table 1 (its cells and its qualitative claims),
Section 6.2's statements about prior defences, the headline numbers recomputed from our runs,
and Appendix D's announced studies rebuilt at small scale.

Every claim about our runs is checked on each tabular task (Spambase, the synthetic phishing
stand-in) and in both settings, the fair one (``small``) and the paper-literal one
(``small-literal``), each a *part* of the claim, so a reader sees how much a conclusion depends
on the setting. Numbers are the tables' seed means at the last round, with their standard
errors (SE); "significantly" means by more than ``Z`` = 2 standard errors of the difference
(independent SEs added in quadrature; about 95 % two-sided with many seeds, rougher with the
quick plan's two). A reading that needs an SE is ``inapplicable`` on a single seed. A bound
("loses only 1.2 %") is judged on the measured value, the claim's rounding allowed, with its SE
beside it; an equality ("decreases by 61.6 %") is reproduced when the measured value +- Z SE meets
the claim's rounding interval. These rules are the same for every defence; the one change made
after a first quick run (bounds had been judged "within 2 SE", which called a 7-point utility
loss with a 4-point SE "within 1.2 points") makes the checks stricter, not the paper's case.
"""

from __future__ import annotations

import itertools
import math

from deep_experiments.results import row_params

from .claims import Claim, Finding, register
from .headline import reduction
from .plan import TABULAR_TASKS
from .table1 import ROUNDING as PAPER_ROUNDING
from .table1 import TASKS as PAPER_TASKS
from .table1 import paper_table1

Z = 2.0
SETTINGS = (("small", "fair"), ("small-literal", "paper-literal"))


# --------------------------------------------------------------------------- helpers


def by_defence(rows: list[dict]) -> dict[str, dict]:
    """{defence: row} of a Table 1 stage (one configuration per defence; run rows only)."""
    return {r["defence"]: r for r in rows if r.get("seeds")}


def diff(a: dict, key_a: str, b: dict, key_b: str | None = None) -> tuple[float, float]:
    """(a[key_a] - b[key_b], its SE); the SE is NaN when either side has one seed."""
    key_b = key_b or key_a
    se = math.hypot(a.get(f"{key_a}_se", math.nan), b.get(f"{key_b}_se", math.nan))
    return a[key_a] - b[key_b], se


def _fmt(value: float, se: float) -> str:
    return f"{value:.3f}" if math.isnan(se) else f"{value:.3f} ± {se:.3f}"


def attack_works(rows: dict) -> tuple[bool, str]:
    """Whether the attack raised FedAvg's Acc_B above the no-attack run's (by > Z SE, or by more
    than 0.05 on one seed): without that there is nothing for a defence to mitigate."""
    gain, se = diff(rows["fedavg"], "acc_b", rows["no_attack"])
    ok = gain > Z * se if not math.isnan(se) else gain > 0.05
    return ok, f"FedAvg's Acc_B {rows['fedavg']['acc_b']:.3f} vs {rows['no_attack']['acc_b']:.3f} without attack"


def for_each_setting(evidence, needed: tuple, check, settings=SETTINGS, tasks=TABULAR_TASKS) -> list[Finding]:
    """``check(rows_by_defence)`` on each task and setting, each a part; a part whose table or
    rows the plan did not produce is ``not run``, with the reason."""
    findings = []
    for task, (stage, label) in itertools.product(tasks, settings):
        part = f"{task}, {label}"
        rows = evidence.table(task, stage)
        if rows is None:
            findings.append(Finding("", "not run", {}, evidence.why_missing(f"{task}-{stage}"), part))
            continue
        rows = by_defence(rows)
        absent = [d for d in needed if d not in rows]
        if absent:
            why = f"the plan ran no {', '.join(absent)} row here; {evidence.why_missing(f'{task}-{stage}')}"
            findings.append(Finding("", "not run", {}, why, part))
            continue
        findings += [Finding(**{**f.__dict__, "part": f"{part}, {f.part}" if f.part else part}) for f in check(rows)]
    return findings


def significantly_below(a: dict, b: dict, key: str, what: str, reading: str) -> Finding:
    """Reproduced when a[key] < b[key] by more than Z SE of the difference."""
    d, se = diff(a, key, b)
    numbers = {"difference": d, "se": se}
    if math.isnan(se):
        return Finding(reading, "inapplicable", numbers, f"{what}: difference {d:+.3f} on one seed, no SE")
    verdict = "reproduced" if d < -Z * se else "not reproduced"
    return Finding(reading, verdict, numbers, f"{what}: difference {d:+.3f} ± {se:.3f} (SE)")


# --------------------------------------------------------------------------- Table 1, qualitative


def _backdoor_reduced(rows):
    ok, why = attack_works(rows)
    if not ok:
        return [Finding("", "inapplicable", {}, f"the attack did not succeed ({why}): nothing to mitigate")]
    fed, ours, none = rows["fedavg"], rows["invariant"], rows["no_attack"]
    share = (fed["acc_b"] - ours["acc_b"]) / (fed["acc_b"] - none["acc_b"])
    return [
        significantly_below(ours, fed, "acc_b", "Ours - FedAvg, Acc_B", "Acc_B significantly below FedAvg's"),
        Finding(
            "removes at least half of the attack's gain",
            "reproduced" if share >= 0.5 else "not reproduced",
            {"share_removed": share, "acc_b_ours": ours["acc_b"], "acc_b_fedavg": fed["acc_b"]},
            f"removes {100 * share:.0f} % of the attack's gain (Acc_B {ours['acc_b']:.3f}, FedAvg {fed['acc_b']:.3f}, "
            f"no attack {none['acc_b']:.3f})",
        ),
    ]


def _comparable_utility(rows):
    fed, ours = rows["fedavg"], rows["invariant"]
    findings = []
    for condition, key in (("under attack", "acc_m"), ("without attack", "acc_m_clean")):
        if key not in ours or key not in fed:
            findings.append(Finding(f"{condition}", "not run", {}, "no no-attack twin in this table"))
            continue
        loss, se = diff(fed, key, ours)
        for points in (1.2, 3.0):
            # a bound ("loses only 1.2 %") is judged on the measured loss, the claim's rounding
            # allowed; "within 2 SE of the bound" would call a 7-point loss with a 4-point SE
            # reproduced. The SE is reported beside it.
            verdict = "reproduced" if 100 * loss <= points + 0.05 else "not reproduced"
            findings.append(
                Finding(
                    f"{condition}, loss <= {points} points",
                    verdict,
                    {"loss_points": 100 * loss, "se_points": 100 * se},
                    f"Acc_M {condition}: FedAvg {fed[key]:.3f}, Ours {ours[key]:.3f}: loss "
                    f"{100 * loss:.1f} ± {100 * se:.1f} points",
                )
            )
    return findings


PRIOR_DEFENCES = (
    "krum",
    "multi_krum",
    "multi_krum_cosine",
    "trimmed_mean",
    "krum_trimmed_mean",
    "sign_sgd",
    "weak_dp",
    "foolsgold",
    "rfa",
    "sparsefed",
)  # the rows of the paper's Table 1 besides FedAvg, No Attack, Freezing Layers and Ours


def _lowest_backdoor(rows):
    ours = rows["invariant"]
    present = [d for d in PRIOR_DEFENCES if d in rows]
    better = [d for d in present if (lambda d_se: d_se[0] < -Z * d_se[1])(diff(rows[d], "acc_b", ours))]
    ranking = sorted(present + ["invariant"], key=lambda d: rows[d]["acc_b"])
    numbers = {
        "rank_of_ours": ranking.index("invariant") + 1,
        "of": len(ranking),
        "significantly_lower": better,
        "acc_b": {d: rows[d]["acc_b"] for d in ranking},
    }
    why = f"Ours ranks {ranking.index('invariant') + 1} of {len(ranking)} by Acc_B ({ours['acc_b']:.3f})" + (
        "; significantly lower: " + ", ".join(f"{d} {rows[d]['acc_b']:.3f}" for d in better) if better else ""
    )
    return [Finding("no prior defence significantly lower", "not reproduced" if better else "reproduced", numbers, why)]


def _lowest_in_paper() -> list[Finding]:
    table = paper_table1()
    findings = []
    labels = [m for m in table.methods if m not in ("FedAvg", "No Attack", "Ours")]
    for task in PAPER_TASKS:
        ours = table.acc("Ours", task)[1]
        ours_sd = table.spread.get(("Ours", task), (0, 0))[1] / math.sqrt(3)
        better = []
        for m in labels:
            if (m, task) not in table.cells:
                continue
            sd = table.spread.get((m, task), (0, 0))[1] / math.sqrt(3)
            if table.acc(m, task)[1] < ours - Z * math.hypot(sd, ours_sd) - 2 * PAPER_ROUNDING:
                better.append(m)
        findings.append(
            Finding(
                "no prior defence significantly lower",
                "not reproduced" if better else "reproduced",
                {"acc_b_ours": ours, "significantly_lower": better},
                f"the paper's Table 1: Ours {ours:.3f}" + (f"; lower: {', '.join(better)}" if better else ""),
                part=f"{task}, the paper's own table",
            )
        )
    return findings


def _admits(defence):
    def check(rows):
        if defence not in rows:
            return [Finding("", "not run", {}, f"no {defence} row")]
        ok, why = attack_works(rows)
        if not ok:
            return [Finding("", "inapplicable", {}, f"the attack did not succeed ({why})")]
        fed, none, mine = rows["fedavg"], rows["no_attack"], rows[defence]
        d, se = diff(mine, "acc_b", fed)
        share_kept = (mine["acc_b"] - none["acc_b"]) / (fed["acc_b"] - none["acc_b"])
        significant = not math.isnan(se) and d < -Z * se
        return [
            Finding(
                "Acc_B not significantly below FedAvg's",
                "not reproduced" if significant else ("inapplicable" if math.isnan(se) else "reproduced"),
                {"difference": d, "se": se},
                f"{defence} Acc_B {_fmt(mine['acc_b'], mine.get('acc_b_se', math.nan))} vs FedAvg "
                f"{_fmt(fed['acc_b'], fed.get('acc_b_se', math.nan))}",
            ),
            Finding(
                "keeps more than half of the attack's gain",
                "reproduced" if share_kept > 0.5 else "not reproduced",
                {"share_kept": share_kept},
                f"{defence} keeps {100 * share_kept:.0f} % of the attack's gain",
            ),
        ]

    return check


def _utility_cost(defence):
    def check(rows):
        findings = []
        for condition, key in (("without attack", "acc_m_clean"), ("under attack", "acc_m")):
            if key not in rows[defence] or key not in rows["fedavg"]:
                findings.append(Finding(condition, "not run", {}, "no no-attack twin in this table"))
                continue
            findings.append(
                significantly_below(
                    rows[defence],
                    rows["fedavg"],
                    key,
                    f"{defence} - FedAvg, Acc_M {condition}",
                    f"Acc_M {condition} significantly below FedAvg's",
                )
            )
        return findings

    return check


def _claim(cid, statement, source, needed, check, figures=("table1",), needs=("table1", "literal")):
    return register(
        Claim(cid, statement, source, lambda evidence: for_each_setting(evidence, needed, check), needs, figures)
    )


_claim(
    "table1.backdoor_reduced",
    "Our approach reduces the model accuracy on backdoor samples ..., mitigating the backdoor attack",
    "Table 1 caption; abstract",
    ("fedavg", "no_attack", "invariant"),
    _backdoor_reduced,
)
_claim(
    "table1.comparable_utility",
    "[Our approach] achieves a comparable utility on benign samples as the standard FedAvg aggregator "
    "(the abstract: only loses 1.2 % accuracy)",
    "Table 1 caption; abstract",
    ("fedavg", "invariant"),
    _comparable_utility,
)
register(
    Claim(
        "table1.ours_lowest_backdoor",
        "Ranked by Acc_B, our approach is the most effective of the defences in Table 1 (no prior defence "
        "leaves a lower backdoor accuracy)",
        "Table 1; Section 6.2 (the limitations of every prior defence)",
        lambda evidence: _lowest_in_paper() + for_each_setting(evidence, ("fedavg", "invariant"), _lowest_backdoor),
        ("table1", "literal"),
        ("table1",),
    )
)
for cid, defences, statement in (
    (
        "vector_wise",
        ("krum", "multi_krum", "multi_krum_cosine"),
        "the malicious gradients can get high similarity scores and circumvent vector-wise defenses "
        "(Krum, Multi-Krum, Multi-Krum_C)",
    ),
    (
        "naive_combination",
        ("krum_trimmed_mean",),
        "A naive combination of multi-Krum and the trimmed-mean estimator fails to defend against the backdoor attack",
    ),
    (
        "weak_dp",
        ("weak_dp",),
        "The edge-case backdoor attack can work without scaling up the gradients, "
        "circumventing the norm bounding [of Weak-DP]",
    ),
    (
        "foolsgold",
        ("foolsgold",),
        "FoolsGold down-weights similar updates; there are many ways to diversify updates "
        "[so it does not stop the attack]",
    ),
    ("rfa", ("rfa",), "RFA computes geometric medians ..., which is shown to be ineffective"),
    (
        "sparsefed",
        ("sparsefed",),
        "SparseFed only accepts elements with large magnitude ...; benign and malicious "
        "updates can contribute to large magnitudes [so it does not stop the attack]",
    ),
):

    def check(rows, defences=defences):
        return [Finding(f.reading, f.verdict, f.numbers, f.why, part=d) for d in defences for f in _admits(d)(rows)]

    _claim(f"section6.{cid}_admits_backdoor", statement, "Section 6.2", ("fedavg", "no_attack"), check)

_claim(
    "section6.sign_sgd_utility",
    "Sign-SGD struggles to train a large federated model (e.g., ResNet-18 on CIFAR-10) [it loses utility]; "
    "checked here on small MLPs, a weaker setting than the claim's",
    "Section 6.2",
    ("fedavg", "sign_sgd"),
    _utility_cost("sign_sgd"),
)
_claim(
    "section6.weak_dp_utility",
    "Weak-DP's added noise costs utility (its Acc_M in Table 1 is well below FedAvg's on CIFAR-10 and Twitter)",
    "Table 1; Section 6.2",
    ("fedavg", "weak_dp"),
    _utility_cost("weak_dp"),
)


# --------------------------------------------------------------------------- Table 1, cells


def _cells(paper, task: str, rows: list[dict]) -> list[dict]:
    """Each paper cell of ``task`` beside ours: within errors when |ours - paper| <= Z sqrt(SE_ours^2
    + (spread / sqrt 3)^2) + the paper's rounding."""
    ours = {r["row"]: r for r in rows if r.get("seeds")}
    cells = []
    for method in paper.methods:
        if (method, task) not in paper.cells or method not in ours:
            continue
        for i, metric in enumerate(("acc_m", "acc_b")):
            p = paper.acc(method, task)[i]
            sd = paper.spread.get((method, task), (0.0, 0.0))[i] / math.sqrt(3)
            mine, se = ours[method][metric], ours[method].get(f"{metric}_se", math.nan)
            width = Z * math.hypot(0.0 if math.isnan(se) else se, sd) + PAPER_ROUNDING
            cells.append(
                {
                    "row": method,
                    "metric": metric,
                    "paper": p,
                    "ours": mine,
                    "ours_se": se,
                    "within": abs(mine - p) <= width,
                    "allowed": width,
                }
            )
    return cells


def _table1_cells(evidence) -> list[Finding]:
    paper = paper_table1()
    findings = []
    for task in PAPER_TASKS:
        sources = [("paper scale", "paper")]
        if task == "phishing":
            sources += [
                ("small, paper-literal (synthetic stand-in)", "small-literal"),
                ("small, fair (synthetic stand-in)", "small"),
            ]
        for reading, stage in sources:
            rows = evidence.table(task, stage)
            if rows is None:
                why = evidence.why_missing(f"{task}-{stage}")
                findings.append(Finding(reading, "not run", {}, why, part=task))
                continue
            cells = _cells(paper, task, rows)
            n_in = sum(c["within"] for c in cells)
            note = (
                "; the phishing data here is a synthetic Gaussian stand-in for the paper's proprietary table, so its "
                "cells are not expected to match"
                if task == "phishing" and stage != "paper"
                else ""
            )
            misses = ", ".join(
                f"{c['row']} {c['metric']} {c['ours']:.3f} vs {c['paper']:.3f}" for c in cells if not c["within"]
            )
            findings.append(
                Finding(
                    reading,
                    "reproduced" if cells and n_in == len(cells) else "not reproduced",
                    {"cells": cells, "within": n_in, "of": len(cells)},
                    f"{n_in} of {len(cells)} cells within errors{note}" + (f"; outside: {misses}" if misses else ""),
                    part=task,
                )
            )
    return findings


register(
    Claim(
        "table1.cells",
        "Table 1's numbers (Acc_M, Acc_B for every defence on CIFAR-10, Twitter and phishing)",
        "Table 1",
        _table1_cells,
        ("table1", "literal", "paper"),
        ("table1",),
    )
)


# --------------------------------------------------------------------------- headline, from our runs


def delta_se(fn, cells: list[tuple[float, float]]) -> float:
    """The standard error of ``fn(*values)`` for independent cells (value, SE), by the delta
    method with central differences (a SE of NaN counts as 0: a one-seed cell adds nothing)."""
    values = [c for c, _ in cells]
    var = 0.0
    for i, (c, se) in enumerate(cells):
        if math.isnan(se) or se == 0:
            continue
        h = max(1e-6, 1e-3 * se)
        up, down = list(values), list(values)
        up[i], down[i] = c + h, c - h
        var += ((fn(*up) - fn(*down)) / (2 * h) * se) ** 2
    return math.sqrt(var)


def _our_headline(claimed: float, metric: str, readings, tasks=TABULAR_TASKS):
    """The claimed average reduction on our tasks: the value from the seed means, +- Z SE (delta
    method); reproduced when that interval meets the claim's rounding interval. The ``gain``
    reading leaves out a task where the attack did not succeed (its denominator is noise)."""

    def check(evidence):
        findings = []
        for stage, label in SETTINGS:
            tables = {t: evidence.table(t, stage) for t in tasks}
            have = {t: by_defence(r) for t, r in tables.items() if r is not None}
            have = {t: r for t, r in have.items() if all(d in r for d in ("fedavg", "invariant", "no_attack"))}
            if not have:
                findings.append(Finding("", "not run", {}, f"no {label} Table 1 here", part=f"our tasks, {label}"))
                continue
            for reading in readings:
                used = [t for t in have if reading != "gain" or attack_works(have[t])[0]]
                if not used:
                    findings.append(
                        Finding(
                            reading,
                            "inapplicable",
                            {},
                            "the attack succeeded on none of the tasks",
                            part=f"our tasks, {label}",
                        )
                    )
                    continue
                cells = [
                    (have[t][d][metric], have[t][d].get(f"{metric}_se", math.nan))
                    for t in used
                    for d in ("fedavg", "invariant", "no_attack")
                ]

                def mean(*c, reading=reading):
                    return sum(reduction(*c[i : i + 3], reading) for i in range(0, len(c), 3)) / (len(c) // 3)

                value = mean(*(c for c, _ in cells))
                se = delta_se(mean, cells)
                low, high = value - Z * se, value + Z * se
                meets = low <= claimed + 0.05 and claimed - 0.05 <= high
                left = [t for t in have if t not in used]
                findings.append(
                    Finding(
                        reading,
                        "reproduced" if meets else "not reproduced",
                        {"claimed": claimed, "value": value, "se": se, "tasks": used, "left_out": left},
                        f"{value:.1f} ± {se:.1f} % (SE) over {', '.join(used)}"
                        + (f" ({', '.join(left)} left out: the attack did not succeed there)" if left else ""),
                        part=f"our tasks, {label}",
                    )
                )
        return findings

    return check


register(
    Claim(
        "headline.backdoor_reduction.our_runs",
        "On average, our approach decreases the model accuracy on backdoor samples by 61.6% compared to FedAvg "
        "(recomputed on our tabular tasks)",
        "abstract; Section 6.2",
        _our_headline(61.6, "acc_b", ("points", "relative", "gain")),
        ("table1", "literal"),
        ("table1",),
    )
)
register(
    Claim(
        "headline.utility_cost.our_runs",
        "[Our approach] only loses 1.2% accuracy on benign samples compared to FedAvg "
        "(recomputed on our tabular tasks)",
        "abstract",
        _our_headline(1.2, "acc_m", ("points", "relative")),
        ("table1", "literal"),
        ("table1",),
    )
)


# --------------------------------------------------------------------------- Appendix D studies


def _sensitivity(evidence) -> list[Finding]:
    findings = []
    for task in TABULAR_TASKS:
        grid, base = evidence.table(task, "sensitivity"), evidence.table(task, "small")
        if grid is None or base is None:
            missing = f"{task}-sensitivity" if grid is None else f"{task}-small"
            findings.append(Finding("", "not run", {}, evidence.why_missing(missing), part=task))
            continue
        base = by_defence(base)
        fed, none = base["fedavg"], base["no_attack"]
        cells = [r for r in grid if r["defence"] == "invariant" and r.get("seeds") and "alpha" in row_params(r)]
        if not cells:
            findings.append(Finding("", "not run", {}, "no tau x alpha cell in the sensitivity table", part=task))
            continue
        shares = [(fed["acc_b"] - r["acc_b"]) / (fed["acc_b"] - none["acc_b"]) for r in cells]
        grid_numbers = [
            {
                **row_params(r),
                "acc_m": r["acc_m"],
                "acc_b": r["acc_b"],
                "acc_m_clean": r.get("acc_m_clean"),
                "share_removed": s,
            }
            for r, s in zip(cells, shares, strict=True)
        ]
        worst = min(range(len(cells)), key=lambda i: shares[i])
        wp = row_params(cells[worst])
        n_half = sum(s >= 0.5 for s in shares)
        findings.append(
            Finding(
                "removes at least half of the attack's gain at every (tau, alpha)",
                "reproduced" if n_half == len(cells) else "not reproduced",
                {"cells": grid_numbers, "at_least_half": n_half, "of": len(cells)},
                f"{n_half} of {len(cells)} cells; worst tau={wp.get('tau')}, alpha={wp.get('alpha')}: removes "
                f"{100 * shares[worst]:.0f} % (Acc_B {cells[worst]['acc_b']:.3f}, FedAvg {fed['acc_b']:.3f})",
                part=task,
            )
        )
        verdicts = [significantly_below(r, fed, "acc_b", "", "") for r in cells]
        if any(v.verdict == "inapplicable" for v in verdicts):
            findings.append(
                Finding(
                    "Acc_B significantly below FedAvg's at every (tau, alpha)",
                    "inapplicable",
                    {},
                    "one seed per cell: no SE",
                    part=task,
                )
            )
        else:
            n_sig = sum(v.verdict == "reproduced" for v in verdicts)
            findings.append(
                Finding(
                    "Acc_B significantly below FedAvg's at every (tau, alpha)",
                    "reproduced" if n_sig == len(cells) else "not reproduced",
                    {"significant": n_sig, "of": len(cells)},
                    f"{n_sig} of {len(cells)} cells",
                    part=task,
                )
            )
    return findings


register(
    Claim(
        "appendix_d.sensitivity",
        "The defence is not a knife-edge choice of its hyperparameters (Section 6 announces 'an evaluation of the "
        "hyper-parameter sensitivity' in Appendix D; checked: it defends across the tau x alpha grid)",
        "Section 6 (Appendix D)",
        _sensitivity,
        ("sensitivity", "table1"),
        ("sensitivity",),
    )
)


def _ablation(evidence) -> list[Finding]:
    findings = []
    for task in TABULAR_TASKS:
        rows = evidence.table(task, "ablation")
        if rows is None:
            findings.append(Finding("", "not run", {}, evidence.why_missing(f"{task}-ablation"), part=task))
            continue
        mask = {row_params(r).get("tau"): r for r in rows if r["defence"] == "invariant" and r.get("seeds")}
        ratio = {row_params(r).get("match_tau"): r for r in rows if r["defence"] == "mean_ratio" and r.get("seeds")}
        for tau in sorted(set(mask) & set(ratio), key=lambda t: (t is None, t)):
            a, b = mask[tau], ratio[tau]
            part = f"{task}, tau = {tau}"
            for condition, key in (("without attack", "acc_m_clean"), ("under attack", "acc_m")):
                if key not in a or key not in b:
                    continue
                d, se = diff(a, key, b)
                findings.append(
                    Finding(
                        f"Acc_M {condition} higher (seed means)",
                        "reproduced" if d > 0 else "not reproduced",
                        {"and_mask": a[key], "mean_ratio": b[key], "difference": d, "se": se},
                        f"AND-mask {a[key]:.3f} vs mean/variance ratio {b[key]:.3f} ({d:+.3f})",
                        part=part,
                    )
                )
                sig = significantly_below(b, a, key, "mean ratio - AND-mask", f"Acc_M {condition} significantly higher")
                findings.append(Finding(sig.reading, sig.verdict, sig.numbers, sig.why, part))
    return findings or [Finding("", "not run", {}, "no ablation rows")]


register(
    Claim(
        "appendix_d.ablation",
        "AND-mask can preserve more utility than the sample mean-variance ratio when combined with the trimmed-mean "
        "estimator (at a matched share of coordinates kept)",
        "Section 4.4 (Appendix D.2)",
        _ablation,
        ("ablation",),
        ("ablation",),
    )
)


def _per_task_mechanism(evidence, defence: str, check) -> list[Finding]:
    """``check(row)`` on each task's mechanism row of ``defence`` (a part per task)."""
    findings = []
    for task in TABULAR_TASKS:
        rows = {r["defence"]: r for r in evidence.mechanism(task) or []}
        if defence not in rows:
            findings.append(Finding("", "not run", {}, evidence.why_missing(f"{task}-mechanism"), part=task))
            continue
        findings += [Finding(**{**f.__dict__, "part": task}) for f in check(rows[defence])]
    return findings


def _singles_out(r) -> list[Finding]:
    t, o = r["trigger_pass_rate"], r["other_pass_rate"]
    return [
        Finding(
            "trigger coordinates pass the mask less often than the others",
            "reproduced" if t < o else "not reproduced",
            {"trigger_pass_rate": t, "other_pass_rate": o, "seeds": r["seeds"], "tau": r["tau"]},
            f"pass rate {t:.3f} on the trigger's coordinates, {o:.3f} on the others (tau {r['tau']})",
        )
    ]


register(
    Claim(
        "mechanism.mask_singles_out_trigger",
        "The AND-mask removes the trigger's directions: the coordinates that carry the backdoor have low sign "
        "consistency and fail the mask (Sections 4-5)",
        "Sections 4-5",
        lambda evidence: _per_task_mechanism(evidence, "invariant", _singles_out),
        ("mechanism",),
        ("mechanism",),
    )
)


def _premise(r) -> list[Finding]:
    share = r["trigger_benign_zero_share"]
    return [
        Finding(
            reading,
            "reproduced" if share >= threshold else "not reproduced",
            {"benign_zero_share": share},
            f"{100 * share:.1f} % of benign clients' trigger-coordinate updates are exactly zero (FedAvg runs)",
        )
        for reading, threshold in (
            ("all benign trigger entries are zero (>= 99 %)", 0.99),
            ("most are zero (>= 50 %)", 0.5),
        )
    ]


register(
    Claim(
        "mechanism.corollary9_premise",
        "Corollary 9's premise in the deep setting: benign clients' updates on the trigger's coordinates are zero "
        "(the trigger feature is zero on benign data, w_k = 0), so only malicious clients vote there",
        "Section 5.2 (Corollary 9 (a))",
        lambda evidence: _per_task_mechanism(evidence, "fedavg", _premise),
        ("mechanism",),
        ("mechanism",),
    )
)
