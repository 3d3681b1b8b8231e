"""Twitter sentiment: LEAF's Sent140 JSON, GloVe vectors, and a tokenizer.

LEAF writes ``train/*.json`` and ``test/*.json``, each ``{"users": [...], "num_samples": [...],
"user_data": {user: {"x": [[id, date, query, user, text], ...], "y": [0/1, ...]}}}``; the tweet
is ``x[4]``. Users are the federated clients.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from pathlib import Path

import numpy as np

from ..errors import DataMissing, ExperimentError
from . import is_number

_TOKEN = re.compile(r"[a-z0-9']+|[^\sa-z0-9']")
PAD, UNK = 0, 1


def tokenize(text: str) -> list[str]:
    """Lower-cased words and single punctuation marks."""
    return _TOKEN.findall(text.lower())


def _leaf_split(root: Path, split: str) -> dict[str, tuple[list[str], list[int]]]:
    files = sorted((root / split).glob("*.json"))
    users: dict[str, tuple[list[str], list[int]]] = {}
    for path in files:
        try:
            blob = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ExperimentError(f"{path}: not LEAF JSON ({exc})") from None
        except RecursionError:
            raise ExperimentError(f"{path}: not LEAF JSON (nested too deeply to read)") from None
        if not isinstance(blob, dict) or not isinstance(blob.get("user_data"), dict):
            raise ExperimentError(
                f"{path}: LEAF JSON needs a 'user_data' object mapping each user to {{'x': [...], 'y': [...]}} "
                "(and 'users', 'num_samples')"
            )
        for user, data in blob["user_data"].items():
            if not isinstance(data, dict):
                raise ExperimentError(f"{path}: user {user!r}: expected {{'x': [...], 'y': [...]}}, got {data!r:.60}")
            xs, ys = data.get("x"), data.get("y")
            if not isinstance(xs, list) or not isinstance(ys, list) or len(xs) != len(ys):
                raise ExperimentError(f"{path}: user {user!r} needs lists 'x' and 'y' of equal length")
            texts, labels = users.setdefault(user, ([], []))
            for x, y in zip(xs, ys, strict=True):
                if not isinstance(x, list) or len(x) < 5 or not isinstance(x[4], str):
                    raise ExperimentError(f"{path}: user {user!r}: each x must be [id, date, query, user, text]")
                if isinstance(y, bool) or y not in (0, 1):
                    raise ExperimentError(f"{path}: user {user!r}: labels must be 0 or 1, got {y!r}")
                texts.append(x[4])
                labels.append(int(y))
    return users


def load_sent140(root) -> tuple[dict, dict]:
    """(train, test): dicts user -> (texts, labels) from a LEAF ``sent140/data`` folder."""
    root = Path(root).expanduser() if root else None
    if root is None or not (list((root / "train").glob("*.json")) and list((root / "test").glob("*.json"))):
        raise DataMissing(
            "Sent140 (LEAF)",
            ["train/*.json", "test/*.json"],
            [root] if root else [],
            [
                "--data PATH, the folder holding LEAF's train/ and test/ (leaf/data/sent140/data after "
                "running LEAF's preprocess.sh)",
                "the phishing or spambase tasks, which need no download",
            ],
        )
    return _leaf_split(root, "train"), _leaf_split(root, "test")


def _glove_lines(path: Path):
    if path.suffix == ".zip":
        try:
            zf = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError) as exc:
            raise ExperimentError(
                f"{path}: not a readable zip archive ({exc}); re-download it or unzip it by hand"
            ) from None
        with zf:
            members = [m for m in zf.namelist() if m.endswith(".txt")]
            if len(members) != 1:
                raise ExperimentError(f"{path}: expected exactly one .txt inside the zip, found {members}")
            with zf.open(members[0]) as fh:
                yield from io.TextIOWrapper(fh, encoding="utf-8", errors="replace")
    else:
        with open(path, encoding="utf-8", errors="replace") as fh:
            yield from fh


def _vector_width(fields: list[str]) -> int:
    """How many trailing fields of a GloVe line are numbers (the first field is always the token)."""
    width = 0
    for field in reversed(fields[1:]):
        if not is_number(field):
            break
        width += 1
    return width


def load_glove(path, dim: int, vocabulary=None) -> dict[str, np.ndarray]:
    """Vectors from a GloVe text file (.txt, or a .zip holding one). A line is the token and
    ``dim`` numbers; tokens may contain spaces (GloVe 840B has some), so the vector is the last
    ``dim`` fields and the token is everything before. ``vocabulary`` limits what is kept."""
    path = Path(path).expanduser() if path else None
    if path is None or not path.is_file():
        raise DataMissing(
            "GloVe vectors",
            [f"a GloVe text file with {dim}-d vectors (.txt or .zip), e.g. glove.840B.300d.zip"],
            [path] if path else [],
            [
                "--set data.glove=PATH (from https://nlp.stanford.edu/projects/glove/)",
                "the phishing or spambase tasks, which need no download",
            ],
        )
    wanted = None if vocabulary is None else set(vocabulary)
    vectors: dict[str, np.ndarray] = {}
    lines_read, width_checked = 0, False
    for lineno, line in enumerate(_glove_lines(path), 1):
        fields = line.rstrip("\n").rstrip(" ").split(" ")
        if not line.strip():
            continue
        lines_read += 1
        # the width from the first line whose token is a word (a numeric token would count as one more number)
        if not width_checked and not is_number(fields[0]):
            width_checked = True
            if _vector_width(fields) != dim:
                # a wider file would otherwise glue numbers into every token and match no word
                raise ExperimentError(
                    f"{path}:{lineno}: the vectors have {_vector_width(fields)} numbers, data.embedding_dim is {dim}; "
                    f"set data.embedding_dim to the file's width (or use the {dim}-d file)"
                )
        if len(fields) < dim + 1:
            raise ExperimentError(
                f"{path}:{lineno}: {len(fields)} fields, expected a token and {dim} numbers; "
                f"is data.embedding_dim right?"
            )
        token = " ".join(fields[:-dim])
        if wanted is not None and token not in wanted:
            continue
        try:
            vector = np.asarray(fields[-dim:], dtype=np.float32)
        except ValueError:
            raise ExperimentError(f"{path}:{lineno}: the last {dim} fields are not all numbers") from None
        if not np.all(np.isfinite(vector)):
            raise ExperimentError(f"{path}:{lineno}: the vector of {token!r} holds NaN/Inf; the file is corrupt")
        vectors[token] = vector
    if lines_read == 0:
        raise ExperimentError(f"{path}: no vectors in the file (empty?)")
    return vectors


OOV_WARN = 0.5  # above this share of tokens without a vector, a run warns


def check_coverage(oov_rate: float, path, *, warn=None) -> None:
    """Refuse a vocabulary that covers no token (nothing would be learnt from the text) and warn
    above :data:`OOV_WARN`: both mean the GloVe file does not fit the tweets."""
    if oov_rate >= 1.0:
        raise ExperimentError(
            f"{path}: none of the tweets' tokens has a GloVe vector (out-of-vocabulary rate 100%); the file is not "
            "an English GloVe file, or not the one for this data"
        )
    if oov_rate > OOV_WARN:
        import warnings

        (warn or warnings.warn)(f"{path}: {oov_rate:.0%} of the tweets' tokens have no GloVe vector; check the file")


def build_vocabulary(vectors: dict[str, np.ndarray]) -> tuple[dict[str, int], np.ndarray]:
    """Index every token that has a vector (0 = padding, 1 = unknown), and the embedding matrix."""
    dim = len(next(iter(vectors.values()))) if vectors else 1
    index = {tok: i for i, tok in enumerate(sorted(vectors), start=2)}
    matrix = np.zeros((len(index) + 2, dim), np.float32)
    for tok, i in index.items():
        matrix[i] = vectors[tok]
    return index, matrix


def encode(texts, index: dict[str, int], max_len: int) -> tuple[np.ndarray, np.ndarray]:
    """Token ids (n, max_len), right-padded with 0, and lengths (>= 1; an empty tweet is one UNK)."""
    ids = np.zeros((len(texts), max_len), np.int64)
    lengths = np.ones(len(texts), np.int64)
    for row, text in enumerate(texts):
        toks = [index.get(t, UNK) for t in tokenize(text)][:max_len] or [UNK]
        ids[row, : len(toks)] = toks
        lengths[row] = len(toks)
    return ids, lengths
