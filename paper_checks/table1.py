"""The paper's Table 1 as data (``reference/table1.csv``; see ``reference/README.md``)."""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

TASKS = ("cifar10", "twitter", "phishing")
ROUNDING = 0.0005  # the table prints three decimals: each cell is within this of its value


@dataclass(frozen=True)
class PaperTable1:
    """cells[(method, task)] = (Acc_M, Acc_B); a method without an entry for a task is absent.
    spread[(method, task)]: the "±" printed beside them (see reference/README.md)."""

    cells: dict
    spread: dict = field(default_factory=dict)

    def acc(self, method: str, task: str) -> tuple[float, float]:
        if (method, task) not in self.cells:
            raise KeyError(f"the paper's Table 1 has no {method!r} entry for {task!r}")
        return self.cells[(method, task)]

    @property
    def methods(self) -> list[str]:
        return list(dict.fromkeys(m for m, _ in self.cells))


def read_table1(path) -> PaperTable1:
    cells = {}
    with open(path, newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            for task in TASKS:
                m, b = row[f"{task}_acc_m"], row[f"{task}_acc_b"]
                if m and b:
                    cells[(row["method"], task)] = (float(m), float(b))
    return PaperTable1(cells)


def paper_table1() -> PaperTable1:
    """The packaged copy of the paper's Table 1, with the printed spreads."""
    folder = Path(str(resources.files(__package__) / "reference"))
    return PaperTable1(read_table1(folder / "table1.csv").cells, read_table1(folder / "table1_spread.csv").cells)


def paper_table1_records(table: PaperTable1 | None = None) -> list[dict]:
    """The table as records (``paper_table1.json`` in a results folder, which ``figures`` reads)."""
    table = table or paper_table1()
    return [
        {
            "method": m,
            "task": t,
            "acc_m": a[0],
            "acc_b": a[1],
            "spread_m": table.spread.get((m, t), (0.0, 0.0))[0],
            "spread_b": table.spread.get((m, t), (0.0, 0.0))[1],
        }
        for (m, t), a in table.cells.items()
    ]
