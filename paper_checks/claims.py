"""The claim registry: a claim, its parts and readings, and what each gives.

Verdicts: the vocabulary of ``linear_theory.records`` (holds / violated / vacuous /
inapplicable / ill-posed) for mathematical claims, and ``reproduced`` / ``not reproduced`` /
``not run`` for numbers and experiments.

A claim's :class:`Finding` s are grouped by *part* (a separate statement, or the same statement
on another task or setting) and by *reading* (an alternative meaning of the words, the same
across parts). A reading's verdict is its worst part's (parts where it could not be checked
do not count; a part with one unnamed finding, e.g. ``not run`` or ``inapplicable``, applies to
every reading). The claim's verdict is that of its best reading among those checked in the most
parts: the claim holds if the paper's words have one meaning under which every part holds, and
the report names it. A *corrected*
reading (the package's fix of a misprint, named "corrected ...") is reported beside the others
but never decides the verdict: a fix is not what the paper says.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from linear_theory.records import VERDICTS as THEORY_VERDICTS

VERDICTS = (*THEORY_VERDICTS, "reproduced", "not reproduced", "not run")
# best first, among alternative readings
# (a reading under which the words cannot be evaluated beats one under which they are false)
_BEST = ("holds", "reproduced", "vacuous", "ill-posed", "violated", "not reproduced", "inapplicable", "not run")
# worst first, across parts: a failing part decides; parts that do not apply or did not run do not
_WORST = ("violated", "not reproduced", "ill-posed", "holds", "reproduced", "vacuous", "inapplicable", "not run")


@dataclass(frozen=True)
class Finding:
    """What one reading of one part of a claim gives: a verdict, the numbers behind it, and why."""

    reading: str
    verdict: str
    numbers: dict
    why: str
    part: str = ""

    def __post_init__(self):
        if self.verdict not in VERDICTS:
            raise ValueError(f"unknown verdict {self.verdict!r}; expected one of {VERDICTS}")


@dataclass(frozen=True)
class Claim:
    """A checkable statement of the paper: ``check(evidence)`` returns its findings.

    ``needs``: the plan's stage kinds whose results the check reads (``paper_checks.plan``);
    ``figures``: the names of the figures (``figures.FIGURES``) that show its evidence.
    """

    id: str
    statement: str
    source: str  # where in the paper: "abstract", "Section 6.2", "Table 1 caption", ...
    check: Callable = field(compare=False)
    needs: tuple = ()
    figures: tuple = ()

    def verdict(self, findings: list[Finding]) -> str:
        return overall_verdict(findings)


def is_corrected(reading: str) -> bool:
    return reading.startswith("corrected")


def part_verdicts(findings: list[Finding], reading: str | None = None) -> dict[str, str]:
    """{part: verdict} under ``reading`` (None: each part's best reading, corrected ones
    excluded when the part has another)."""
    parts: dict[str, dict[str, str]] = {}
    for f in findings:
        parts.setdefault(f.part, {})[f.reading] = f.verdict
    out = {}
    for part, by_reading in parts.items():
        if reading is not None:
            if reading in by_reading:
                out[part] = by_reading[reading]
            elif len(by_reading) == 1:  # one unnamed verdict for the whole part
                out[part] = next(iter(by_reading.values()))
            continue
        plain = {r: v for r, v in by_reading.items() if not is_corrected(r)} or by_reading
        out[part] = min(plain.values(), key=_BEST.index)
    return out


def reading_verdicts(findings: list[Finding]) -> dict[str, str]:
    """{reading: its verdict across the parts} for every named reading (worst part decides)."""
    readings = list(dict.fromkeys(f.reading for f in findings if f.reading))
    out = {}
    for r in readings:
        parts = part_verdicts(findings, r)
        out[r] = min(parts.values(), key=_WORST.index) if parts else "not run"
    return out


def candidate_readings(findings: list[Finding]) -> list[str]:
    """The plain (not corrected) readings checked in the most parts: a reading that speaks to
    one part only (e.g. the AND-mask alone, where the claim is about the AND-mask and the
    trimmed mean together) cannot decide a claim that others check in full."""
    plain = [r for r in dict.fromkeys(f.reading for f in findings if f.reading) if not is_corrected(r)]
    coverage = {r: len(part_verdicts(findings, r)) for r in plain}
    most = max(coverage.values(), default=0)
    return [r for r in plain if coverage[r] == most]


def overall_verdict(findings: list[Finding]) -> str:
    """The best reading's verdict (corrected readings excluded); with no named reading, the
    worst unnamed finding's; ``not run`` when there is nothing else."""
    if not findings:
        return "not run"
    by_reading = {r: v for r, v in reading_verdicts(findings).items() if r in candidate_readings(findings)}
    if by_reading:
        return min(by_reading.values(), key=_BEST.index)
    unnamed = [f.verdict for f in findings if not f.reading]
    return min(unnamed, key=_WORST.index) if unnamed else "not run"


CLAIMS: dict[str, Claim] = {}


def register(claim: Claim) -> Claim:
    """Add a claim; a taken id is refused (a claim is never silently replaced)."""
    if claim.id in CLAIMS:
        raise ValueError(f"a claim with id {claim.id!r} is already registered ({CLAIMS[claim.id].source})")
    CLAIMS[claim.id] = claim
    return claim


def evaluate(claim: Claim, evidence) -> dict:
    """One claim's findings and verdict, as plain data (an entry of report.json). A check that
    raises is reported as ``not run`` with its error, never dropped."""
    try:
        findings = claim.check(evidence)
    except Exception as exc:  # one broken check must not hide the others' verdicts
        findings = [Finding("", "not run", {}, f"the check failed: {type(exc).__name__}: {exc}")]
    by_reading = reading_verdicts(findings)
    verdict = overall_verdict(findings)
    best = next((r for r in candidate_readings(findings) if by_reading[r] == verdict), None)
    return {
        "id": claim.id,
        "statement": claim.statement,
        "source": claim.source,
        "verdict": verdict,
        "readings": by_reading,
        "best_reading": best,
        "parts": part_verdicts(findings, best),
        "holding_readings": [r for r, v in by_reading.items() if v in ("holds", "reproduced")],
        "figures": list(claim.figures),
        "findings": [f.__dict__ for f in findings],
    }


def run_all(evidence, claims: dict[str, Claim] | None = None) -> list[dict]:
    """Every claim's entry (see :func:`evaluate`), in registration order."""
    return [evaluate(claim, evidence) for claim in (claims or CLAIMS).values()]
