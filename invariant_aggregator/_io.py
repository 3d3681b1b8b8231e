"""Atomic result files: a reader never sees a half-written file."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


def write_atomic(path, write: Callable[[BinaryIO], None]) -> None:
    """Call ``write`` on a temporary binary file beside ``path``, flush it to disk, then rename
    it over ``path`` (e.g. ``write_atomic(p, lambda fh: torch.save(state, fh))``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; results are ordinary files
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text_atomic(path, text: str) -> None:
    write_atomic(path, lambda fh: fh.write(text.encode("utf-8")))


def write_json_atomic(path, data) -> None:
    write_text_atomic(path, json.dumps(data, indent=2))
