"""Loaders for the tasks' data, in their real on-disk formats."""

from __future__ import annotations

import os
from pathlib import Path


def is_number(text: str) -> bool:
    """Whether ``text`` parses as a float (the header test of headerless tables, GloVe widths)."""
    try:
        float(text)
    except ValueError:
        return False
    return True


def default_locations(subfolder: str, env_var: str) -> list[Path]:
    """Where a data set is looked for when no path is given: ``$env_var``, then the workspace's
    ``../shared/data/<subfolder>`` beside the working directory and beside this checkout."""
    paths = [Path(os.environ[env_var])] if os.environ.get(env_var) else []
    repo = Path(__file__).resolve().parents[2]
    paths += [Path.cwd().parent / "shared" / "data" / subfolder, repo.parent / "shared" / "data" / subfolder]
    return list(dict.fromkeys(paths))
