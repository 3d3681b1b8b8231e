"""Tabular data for the phishing task: the user's table, a synthetic stand-in, and Spambase.

The paper's phishing table (45 standardised sender-reputation features, proprietary) is not
available. Two stand-ins: samples from ``linear_theory``'s Gaussian data model (Eq. 6) with 45
features, one of which — the trigger feature — is 0 on most rows; and UCI Spambase, real
e-mail data whose word-frequency columns are 0 on most rows.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from ..errors import DataMissing, ExperimentError
from . import default_locations

PHISHING_FEATURES = 45
SPAMBASE_ENV_VAR = "INVARIANT_AGGREGATOR_SPAMBASE"


def _read_csv(path: Path) -> tuple[list[str], list[list[str]]]:
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
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
    li = header.index(label)
    names = [h for i, h in enumerate(header) if i != li]
    if n_features is not None and len(names) != n_features:
        raise ExperimentError(f"{path}: {len(names)} feature columns besides {label!r}, the task needs {n_features}")
    x = np.empty((len(rows), len(names)), np.float32)
    y = np.empty(len(rows), np.int64)
    for r, row in enumerate(rows):
        if len(row) != len(header):
            raise ExperimentError(f"{path}: row {r + 2} has {len(row)} fields, the header {len(header)}")
        raw = row[li]
        try:
            value = label_map[str(raw)] if label_map else int(float(raw))
        except (KeyError, ValueError):
            allowed = sorted(label_map) if label_map else [0, 1]
            raise ExperimentError(f"{path}: row {r + 2}: label {raw!r} is not one of {allowed}") from None
        if value not in (0, 1):
            raise ExperimentError(f"{path}: row {r + 2}: label {raw!r} is not binary (0/1)")
        y[r] = value
        try:
            x[r] = [float(v) for i, v in enumerate(row) if i != li]
        except ValueError:
            raise ExperimentError(f"{path}: row {r + 2} has a non-numeric feature") from None
    if not np.all(np.isfinite(x)):
        bad = np.argwhere(~np.isfinite(x))[0]
        raise ExperimentError(f"{path}: NaN/Inf in row {bad[0] + 2}, column {names[bad[1]]!r}; impute or drop it")
    return x, y, names


def spambase_path(given=None) -> Path:
    """``spambase.csv``: the given path or folder, $INVARIANT_AGGREGATOR_SPAMBASE, or ../shared."""
    candidates = [Path(given).expanduser()] if given else default_locations("spambase", SPAMBASE_ENV_VAR)
    for c in candidates:
        for p in (c, c / "spambase.csv"):
            if p.is_file():
                return p
    raise DataMissing(
        "UCI Spambase",
        ["spambase.csv (57 numeric columns and the label column 'type': spam / nonspam)"],
        candidates,
        [
            "--data PATH to spambase.csv or its folder",
            f"the environment variable {SPAMBASE_ENV_VAR}=PATH",
            "the synthetic phishing task (python -m deep_experiments run phishing ...)",
        ],
    )


def load_spambase(given=None):
    """Spambase as (x, y, names): y = 1 for spam (the 'phishing' class), 0 for nonspam."""
    return read_table(spambase_path(given), label="type", n_features=57, label_map={"spam": 1, "nonspam": 0})


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
