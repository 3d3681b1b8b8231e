"""Opt-in downloads: fetched to a temporary file, checked, then moved into place atomically."""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.request
from pathlib import Path

from ..errors import ExperimentError


def file_digest(path, algorithm: str) -> str:
    h = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def check_digest(path, algorithm: str, expected: str) -> None:
    got = file_digest(path, algorithm)
    if got != expected:
        raise ExperimentError(
            f"{path}: {algorithm} is {got}, expected {expected}; the file is corrupt or not the published one "
            f"(delete it and download again)"
        )


def fetch(url: str, dest: Path) -> None:
    """Download ``url`` to the path ``dest`` (no check; the caller checks and moves it)."""
    try:
        urllib.request.urlretrieve(url, dest)  # noqa: S310 - fixed URLs from this package, or a user's
    except (OSError, ValueError) as exc:
        raise ExperimentError(
            f"could not download {url} ({exc}); on a machine without network, fetch it elsewhere and pass its path"
        ) from None


def temporary_beside(dest: Path) -> Path:
    """An empty temporary file in ``dest``'s folder (so that os.replace onto ``dest`` is atomic)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    os.close(fd)
    return Path(tmp)


def download(url: str, dest, *, algorithm: str, expected: str) -> Path:
    """Download ``url`` to ``dest`` unless a file with the expected digest is already there."""
    dest = Path(dest)
    if dest.exists() and file_digest(dest, algorithm) == expected:
        return dest
    tmp = temporary_beside(dest)
    try:
        fetch(url, tmp)
        check_digest(tmp, algorithm, expected)
        os.replace(tmp, dest)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return dest
