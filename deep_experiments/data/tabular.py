"""Tabular data for the phishing task: the user's table, a synthetic stand-in, and Spambase.

The paper's phishing table (45 standardised sender-reputation features, proprietary) is not
available. Two stand-ins: samples from ``linear_theory``'s Gaussian data model (Eq. 6) with 45
features, one of which — the trigger feature — is 0 on most rows; and UCI Spambase, real
e-mail data whose word-frequency columns are 0 on most rows.
"""

from __future__ import annotations

import csv
import hashlib
import math
import os
import zipfile
from pathlib import Path

import numpy as np

from ..errors import DataMissing, ExperimentError
from . import default_locations, is_number
from .download import fetch, temporary_beside

PHISHING_FEATURES = 45
SPAMBASE_ENV_VAR = "INVARIANT_AGGREGATOR_SPAMBASE"


def _csv_rows(path: Path) -> list[list[str]]:
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            return list(csv.reader(fh))
    except UnicodeDecodeError as exc:
        raise ExperimentError(
            f"{path}: not UTF-8 text (byte {exc.start}: {exc.reason}); a binary file, or a CSV saved in another "
            "encoding (e.g. Latin-1): save it as UTF-8 CSV"
        ) from None
    except csv.Error as exc:
        raise ExperimentError(f"{path}: not a readable CSV file ({exc})") from None


def _read_csv(path: Path) -> tuple[list[str], list[list[str]]]:
    rows = _csv_rows(path)
    if len(rows) < 2:
        raise ExperimentError(f"{path}: needs a header row and at least one data row")
    return rows[0], rows[1:]


def _read_parquet(path: Path) -> tuple[list[str], list[list]]:
    try:
        import pandas as pd
    except ImportError:
        raise ExperimentError(
            f"{path}: reading Parquet needs pandas with pyarrow (pip install pandas pyarrow), "
            f"or convert the table to CSV"
        ) from None
    frame = pd.read_parquet(path)
    return [str(c) for c in frame.columns], frame.to_numpy().tolist()


def read_table(path, *, label: str, n_features: int | None, label_map: dict | None = None):
    """(x float32 (n, d), y int64 (n,), feature names) with a schema check.

    The table has a header, ``label`` among its columns and numeric, finite features; with
    ``n_features`` set, exactly that many. ``label_map`` turns label strings into 0/1; without
    it labels must already be 0/1.
    """
    path = Path(path)
    header, rows = _read_parquet(path) if path.suffix.lower() in (".parquet", ".pq") else _read_csv(path)
    if label not in header:
        raise ExperimentError(
            f"{path}: no label column {label!r}; columns are {header[:8]}...; set data.label_column to the label's name"
        )
    if header.count(label) > 1:
        # the second would be read as a feature: the label leaking into the inputs
        raise ExperimentError(f"{path}: {header.count(label)} columns are named {label!r}; rename or drop the extras")
    li = header.index(label)
    names = [h for i, h in enumerate(header) if i != li]
    if n_features is not None and len(names) != n_features:
        raise ExperimentError(f"{path}: {len(names)} feature columns besides {label!r}, the task needs {n_features}")
    x, y = _parse_rows(path, rows, li, names, label_map, first="row", number=2, width=f"the header {len(header)}")
    return x, y, names


def _parse_rows(path, rows, label_index: int, names: list[str], label_map, *, first: str, number: int, width: str):
    """(x float32, y int64) from rows of strings: every row as wide as ``names`` plus the label,
    labels through :func:`_label`, numeric finite features, both classes present. Errors name
    the ``first`` ("row" / "line") by its number in the file (``number`` for rows[0])."""
    x = np.empty((len(rows), len(names)), np.float32)
    y = np.empty(len(rows), np.int64)
    for r, row in enumerate(rows):
        where = f"{path}: {first} {r + number}"
        if len(row) != len(names) + 1:
            raise ExperimentError(f"{where} has {len(row)} fields, {width}")
        y[r] = _label(row[label_index], label_map, where)
        try:
            x[r] = [float(v) for i, v in enumerate(row) if i != label_index]
        except (TypeError, ValueError):
            raise ExperimentError(f"{where} has a non-numeric feature") from None
    if not np.all(np.isfinite(x)):
        bad = np.argwhere(~np.isfinite(x))[0]
        raise ExperimentError(
            f"{path}: NaN/Inf in {first} {bad[0] + number}, column {names[bad[1]]!r}; impute or drop it"
        )
    _check_both_classes(y, path)
    return x, y


def _label(raw, label_map: dict | None, where: str) -> int:
    """A 0/1 label: through ``label_map`` when given, else a number that is exactly 0 or 1 (1.0
    is 1; 1.5, 0.7, inf are refused, never truncated)."""
    if label_map:
        if str(raw) not in label_map:
            raise ExperimentError(f"{where}: label {raw!r} is not one of {sorted(label_map)}")
        return label_map[str(raw)]
    try:
        value = float(raw)
    except (TypeError, ValueError):
        value = math.nan
    if value not in (0.0, 1.0):
        raise ExperimentError(f"{where}: label {raw!r} is not binary (0 or 1)")
    return int(value)


def _check_both_classes(y: np.ndarray, path) -> None:
    counts = np.bincount(y, minlength=2)
    if counts.min() == 0:
        raise ExperimentError(
            f"{path}: every row has label {int(np.argmax(counts))}; a classifier needs both classes (0 and 1)"
        )


# The 57 feature names of UCI's spambase.names, in the file's column order.
UCI_SPAMBASE_NAMES = [
    *(
        f"word_freq_{w}"
        for w in (
            "make address all 3d our over remove internet order mail receive will people report addresses free "
            "business email you credit your font 000 money hp hpl george 650 lab labs telnet 857 data 415 85 "
            "technology 1999 parts pm direct cs meeting original project re edu table conference"
        ).split()
    ),
    *(f"char_freq_{c}" for c in ";([!$#"),
    "capital_run_length_average",
    "capital_run_length_longest",
    "capital_run_length_total",
]
SPAMBASE_URL = "https://archive.ics.uci.edu/static/public/94/spambase.zip"
SPAMBASE_FILES = ("spambase.csv", "spambase.data")
# sha256 of the table's content, not of a file's bytes: the 4,601 rows as read (float32
# features, widened to float64, then the label 1 = spam), sorted, little-endian; meant to be the
# same for UCI's spambase.data and the kernlab CSV export. Computed here from the CSV: UCI's own
# file could not be fetched on this machine, and UCI re-packs its zip, so its bytes are not pinned.
SPAMBASE_CONTENT_SHA256 = "21fe235f8c76d00574572f40a051089c986f94bf938bb2f9dd2a12fe664ce1db"


def spambase_content_digest(x: np.ndarray, y: np.ndarray) -> str:
    """The content checksum of a Spambase table (see :data:`SPAMBASE_CONTENT_SHA256`)."""
    table = np.column_stack([x.astype(np.float32).astype(np.float64), y.astype(np.float64)])
    table = table[np.lexsort(table.T[::-1])]
    return hashlib.sha256(table.astype("<f8").tobytes()).hexdigest()


def spambase_path(given=None) -> Path:
    """The Spambase table: the given file or folder (``spambase.csv`` or UCI's ``spambase.data``),
    $INVARIANT_AGGREGATOR_SPAMBASE, or ../shared."""
    candidates = [Path(given).expanduser()] if given else default_locations("spambase", SPAMBASE_ENV_VAR)
    for c in candidates:
        for p in (c, *(c / name for name in SPAMBASE_FILES)):
            if p.is_file():
                return p
    raise DataMissing(
        "UCI Spambase",
        [
            "spambase.data (UCI's file: 58 numbers per line, no header, the 0/1 label last)",
            "or spambase.csv (57 numeric columns and the label column 'type': spam / nonspam)",
        ],
        candidates,
        [
            f"--data PATH to the file or its folder (UCI's {SPAMBASE_URL}, unzipped)",
            "--download, to fetch UCI's archive into --data (or the working directory) and check its content",
            f"the environment variable {SPAMBASE_ENV_VAR}=PATH",
            "the synthetic phishing task (python -m deep_experiments run phishing ...)",
        ],
    )


def read_uci_spambase(path):
    """UCI's ``spambase.data``: no header, 57 features and the 0/1 label (1 = spam) per line."""
    path = Path(path)
    rows = [r for r in _csv_rows(path) if r]
    if not rows:
        raise ExperimentError(f"{path}: empty; UCI's spambase.data has 4,601 lines")
    names = list(UCI_SPAMBASE_NAMES)
    width = "spambase.data has 57 features and the label"
    x, y = _parse_rows(path, rows, 57, names, None, first="line", number=1, width=width)
    return x, y, names


def _has_header(path: Path) -> bool:
    with open(path, "rb") as fh:
        first = fh.readline().decode("utf-8", errors="replace").strip().split(",")
    return not all(is_number(v) for v in first)


def download_spambase(folder) -> Path:
    """Fetch UCI's Spambase archive, check the table's content checksum, and write
    ``folder/spambase.data`` atomically (an existing file with the right content is kept)."""
    dest = Path(folder).expanduser() / "spambase.data"
    if dest.is_file() and spambase_content_digest(*read_uci_spambase(dest)[:2]) == SPAMBASE_CONTENT_SHA256:
        return dest
    archive = temporary_beside(dest)
    table = temporary_beside(dest)
    try:
        fetch(SPAMBASE_URL, archive)
        try:
            with zipfile.ZipFile(archive) as zf:
                table.write_bytes(zf.read("spambase.data"))  # only this member is read
        except (zipfile.BadZipFile, KeyError) as exc:
            raise ExperimentError(f"{SPAMBASE_URL}: not the Spambase archive ({exc})") from None
        digest = spambase_content_digest(*read_uci_spambase(table)[:2])
        if digest != SPAMBASE_CONTENT_SHA256:
            raise ExperimentError(
                f"{SPAMBASE_URL}: the table's content checksum is {digest}, expected {SPAMBASE_CONTENT_SHA256}; "
                "it is not the published Spambase table"
            )
        os.replace(table, dest)
    finally:
        archive.unlink(missing_ok=True)
        table.unlink(missing_ok=True)
    return dest


def load_spambase(given=None, *, download_to=None):
    """Spambase as (x, y, names): y = 1 for spam (the 'phishing' class), 0 for nonspam; from
    UCI's spambase.data or the CSV export. ``download_to``: a folder to fetch it into when it
    is missing (needs network)."""
    try:
        path = spambase_path(given)
    except DataMissing:
        if download_to is None:
            raise
        path = download_spambase(download_to)
    if path.suffix == ".data" or not _has_header(path):
        return read_uci_spambase(path)
    return read_table(path, label="type", n_features=57, label_map={"spam": 1, "nonspam": 0})


def synthetic_phishing(
    rng: np.random.Generator,
    *,
    n_clients: int,
    samples_per_client: int,
    n_test: int,
    n_features: int = PHISHING_FEATURES,
    trigger: int = 37,
    trigger_nonzero: float = 0.05,
    signal: float = 0.25,
    heterogeneity: float = 0.25,
):
    """Per-client data from Eq. 6's Gaussian model (non-iid means), with one trigger feature.

    The trigger column has mean 0 for every client and is kept on a ``trigger_nonzero`` share of
    rows (zero elsewhere), like the rarely-set feature the paper's attacker uses. y = 1 is the
    'phishing' class. Returns (client xs list, client ys list, x_test, y_test).
    """
    from linear_theory.model import GaussianDataModel  # the one Eq. 6 implementation

    if not 0 <= trigger < n_features:
        raise ExperimentError(f"trigger feature {trigger} is not a column index in [0, {n_features})")
    model = GaussianDataModel.with_trigger(
        n_clients=n_clients,
        n_malicious=0,
        n_features=n_features,
        trigger_mu=1.0,
        rng=rng,
        signal=signal,
        heterogeneity=heterogeneity,
    )
    order = [i for i in range(n_features - 1)]
    order.insert(trigger, n_features - 1)  # move the model's trigger (its last feature) to ``trigger``
    x, y = model.sample(rng, samples_per_client + -(-n_test // n_clients))
    x = x[..., order]
    x[..., trigger] *= rng.random(x.shape[:2]) < trigger_nonzero
    x, y = x.astype(np.float32), y.astype(np.int64)
    xs = [x[i, :samples_per_client] for i in range(n_clients)]
    ys = [y[i, :samples_per_client] for i in range(n_clients)]
    x_test = x[:, samples_per_client:].reshape(-1, n_features)[:n_test]
    y_test = y[:, samples_per_client:].reshape(-1)[:n_test]
    return xs, ys, x_test, y_test


def standardise(train: np.ndarray, *others: np.ndarray):
    """z-scores with the training set's mean and std (a constant column keeps scale 1)."""
    mean, std = train.mean(0), train.std(0)
    std = np.where(std > 0, std, 1.0)
    return [((a - mean) / std).astype(np.float32) for a in (train, *others)]
