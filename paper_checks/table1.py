"""The paper's Table 1 as data (``reference/table1.csv``; see ``reference/README.md``)."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

TASKS = ("cifar10", "twitter", "phishing")
ROUNDING = 0.0005  # the table prints three decimals: each cell is within this of its value


@dataclass(frozen=True)
class PaperTable1:
    """cells[(method, task)] = (Acc_M, Acc_B); a method without an entry for a task is absent."""

    cells: dict

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
    """The packaged copy of the paper's Table 1."""
    return read_table1(Path(str(resources.files(__package__) / "reference" / "table1.csv")))
