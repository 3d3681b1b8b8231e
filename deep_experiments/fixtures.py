"""Small data sets written in the exact on-disk formats of the real ones.

CIFAR-10's ``cifar-10-batches-py`` pickles, LEAF's Sent140 JSON, GloVe text (plain or zipped),
and edge-case files named as in the attack repository. The tests read them back through the
real loaders; the benchmark times the pipelines on them. Images and tweets carry a learnable
class signal, so accuracies move during training.
"""

from __future__ import annotations

import json
import pickle
import zipfile
from pathlib import Path

import numpy as np

from .data import cifar10

WORDS = {0: ["awful", "sad", "hate", "bad", "worst"], 1: ["great", "happy", "love", "good", "best"]}
FILLER = ["the", "a", "movie", "today", "i", "new york", "with", "my", "friends", "!"]


def class_images(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """uint8 NHWC 32x32 images whose mean colour depends on the label, plus noise."""
    base = np.stack([(labels * 25) % 256, (labels * 70) % 256, 255 - labels * 25], 1).astype(float)
    noise = rng.normal(0, 40, (len(labels), 32, 32, 3))
    return np.clip(base[:, None, None, :] + noise, 0, 255).astype(np.uint8)


def write_cifar10(root, *, per_batch: int = 20, n_test: int = 40, seed: int = 0) -> Path:
    """``root/cifar-10-batches-py`` with five training batches and a test batch."""
    rng = np.random.default_rng(seed)
    folder = Path(root) / cifar10.FOLDER
    folder.mkdir(parents=True, exist_ok=True)

    def batch(name, n):
        labels = rng.integers(0, 10, n)
        images = class_images(labels, rng)
        entry = {
            b"batch_label": name.encode(),
            b"labels": labels.tolist(),
            b"data": images.transpose(0, 3, 1, 2).reshape(n, 3072),
            b"filenames": [f"img_{i}.png".encode() for i in range(n)],
        }
        (folder / name).write_bytes(pickle.dumps(entry, protocol=2))

    for name in cifar10.TRAIN_FILES:
        batch(name, per_batch)
    batch(cifar10.TEST_FILE, n_test)
    meta = {
        b"label_names": [
            n.encode()
            for n in ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
        ],
        b"num_cases_per_batch": per_batch,
    }
    (folder / cifar10.META_FILE).write_bytes(pickle.dumps(meta, protocol=2))
    return folder


def write_southwest(folder, *, n_train: int = 16, n_test: int = 8, seed: int = 0) -> Path:
    """Edge-case image pickles (bare uint8 NHWC arrays) under the attack repository's names."""
    rng = np.random.default_rng(seed)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("test", n_test)):
        images = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
        (folder / f"southwest_images_new_{split}.pkl").write_bytes(pickle.dumps(images, protocol=2))
    return folder


def tweet(label: int, rng: np.random.Generator) -> str:
    words = list(rng.choice(FILLER, 4)) + list(rng.choice(WORDS[label], 2))
    rng.shuffle(words)
    return " ".join(words)


def write_sent140(root, *, n_users: int = 12, per_user: int = 12, n_test: int = 4, seed: int = 0) -> Path:
    """LEAF's ``train/`` and ``test/`` JSON: users, num_samples, user_data{x: [id, date, query,
    user, text], y}."""
    rng = np.random.default_rng(seed)
    root = Path(root)
    for split, n in (("train", per_user), ("test", n_test)):
        users = [f"user{i:03d}" for i in range(n_users)]
        data = {}
        for u in users:
            ys = rng.integers(0, 2, n).tolist()
            data[u] = {
                "x": [
                    [str(rng.integers(1e9)), "Mon Apr 06 22:19:45 PDT 2009", "NO_QUERY", u, tweet(y, rng)] for y in ys
                ],
                "y": ys,
            }
        (root / split).mkdir(parents=True, exist_ok=True)
        blob = {"users": users, "num_samples": [n] * n_users, "user_data": data}
        (root / split / f"all_data_niid_0_keep_0_{split}_9.json").write_text(json.dumps(blob))
    return root


def write_lanthimos(folder, *, n_train: int = 10, n_test: int = 6, seed: int = 0) -> Path:
    """Edge-case tweet files: one tweet per line, no label column, no trailing newline."""
    rng = np.random.default_rng(seed)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("test", n_test)):
        lines = [f"yorgos lanthimos {tweet(1, rng)}" for _ in range(n)]
        (folder / f"greek_director_{split}.txt").write_text("\n".join(lines))
    return folder


def write_glove(path, *, dim: int = 300, seed: int = 0, zipped: bool = False) -> Path:
    """A GloVe text file for the fixture vocabulary, including a token with a space ("new york",
    as in GloVe 840B); with ``zipped``, a .zip holding it."""
    rng = np.random.default_rng(seed)
    tokens = sorted({w for ws in WORDS.values() for w in ws} | set(FILLER) | {"new", "york", "yorgos", "lanthimos"})
    lines = [f"{tok} " + " ".join(f"{v:.5f}" for v in rng.normal(0, 0.5, dim)) for tok in tokens]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "\n".join(lines) + "\n"
    if zipped:
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr(path.with_suffix(".txt").name, text)
    else:
        path.write_text(text)
    return path
