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


def download(url: str, dest, *, algorithm: str, expected: str) -> Path:
    """Download ``url`` to ``dest`` unless a file with the expected digest is already there."""
    dest = Path(dest)
    if dest.exists() and file_digest(dest, algorithm) == expected:
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    os.close(fd)
    try:
        try:
            urllib.request.urlretrieve(url, tmp)  # noqa: S310 - fixed https URLs from this package
        except OSError as exc:
            raise ExperimentError(
                f"could not download {url} ({exc}); on a machine without network, copy the file to {dest} by hand"
            ) from None
        check_digest(tmp, algorithm, expected)
        os.replace(tmp, dest)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return dest
