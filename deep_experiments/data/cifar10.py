"""CIFAR-10 from the standard ``cifar-10-batches-py`` folder, and its preprocessing in torch.

Images stay uint8 NHWC in memory (150 MB for the training set); :func:`preprocess` turns a
batch into normalised float NCHW on the training device, with the authors' augmentation
(random crop 32 after padding 4, horizontal flip) drawn from an explicit generator so that a
round can be replayed exactly.
"""

from __future__ import annotations

import tarfile
from pathlib import Path

import numpy as np
import torch

from ..errors import DataMissing, ExperimentError
from .download import check_digest, download
from .safe_pickle import safe_load

MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2023, 0.1994, 0.2010)
FOLDER = "cifar-10-batches-py"
TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_FILE = "test_batch"
META_FILE = "batches.meta"
# md5 sums of the files in the official archive (as published with the data set)
MD5 = {
    "data_batch_1": "c99cafc152244af753f735de768cd75f",
    "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
    "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
    "data_batch_4": "634d18415352ddfa80567beed471001a",
    "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
    "test_batch": "40351d587109b95175f43aff81a1287e",
    "batches.meta": "5ff9c542aee3614f3951f8cda6e48888",
}
ARCHIVE_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
ARCHIVE_MD5 = "c58f30108f718f92721af3b95e74349a"


def _locate(root) -> Path | None:
    root = Path(root).expanduser()
    for candidate in (root, root / FOLDER):
        if all((candidate / f).is_file() for f in (*TRAIN_FILES, TEST_FILE)):
            return candidate
    return None


def _read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        entry = safe_load(path.read_bytes(), encoding="bytes")
    except ExperimentError as exc:
        raise ExperimentError(f"{path}: {exc}") from None
    if not isinstance(entry, dict):
        raise ExperimentError(f"{path}: expected a pickled dict with b'data' and b'labels', got {type(entry).__name__}")
    data = entry.get(b"data", entry.get("data"))
    labels = entry.get(b"labels", entry.get("labels"))
    if not isinstance(data, np.ndarray) or labels is None:
        raise ExperimentError(
            f"{path}: a CIFAR-10 batch holds b'data' (N, 3072 uint8) and b'labels'; keys found: "
            f"{sorted(map(str, entry))}"
        )
    labels = np.asarray(labels)
    if labels.ndim != 1 or labels.dtype.kind not in "iu":
        raise ExperimentError(
            f"{path}: b'labels' must be a flat list of integers 0..9, got {labels.dtype} with shape {labels.shape}"
        )
    labels = labels.astype(np.int64)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072 or len(labels) != len(data):
        raise ExperimentError(
            f"{path}: b'data' must be uint8 (N, 3072) with N labels; "
            f"got {data.dtype} {data.shape}, {len(labels)} labels"
        )
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise ExperimentError(f"{path}: labels must lie in 0..9, found {labels.min()}..{labels.max()}")
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).copy(), labels


def load_cifar10(root, *, strict: bool = False, download_to=None):
    """(x_train, y_train, x_test, y_test): uint8 NHWC images and int64 labels.

    ``root`` is the ``cifar-10-batches-py`` folder or its parent. ``strict`` checks every file's
    md5 against the official archive. ``download_to``: a folder to fetch and unpack the archive
    into when the data is missing (needs network).
    """
    searched = [Path(root).expanduser()] if root else []
    folder = _locate(root) if root else None
    if folder is None and download_to is not None:
        archive = download(
            ARCHIVE_URL, Path(download_to) / "cifar-10-python.tar.gz", algorithm="md5", expected=ARCHIVE_MD5
        )
        with tarfile.open(archive) as tar:
            tar.extractall(Path(download_to), filter="data")
        folder = _locate(download_to)
        searched.append(Path(download_to))
    if folder is None:
        raise DataMissing(
            "CIFAR-10",
            [f"{FOLDER}/{f}" for f in (*TRAIN_FILES, TEST_FILE)],
            searched,
            [
                "--data PATH, PATH being the cifar-10-batches-py folder or its parent "
                "(from https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz)",
                "--download, to fetch and unpack it into --data (needs network)",
                "the phishing or spambase tasks, which need no download",
            ],
        )
    if strict:
        for name in (*TRAIN_FILES, TEST_FILE):
            check_digest(folder / name, "md5", MD5[name])
    parts = [_read_batch(folder / f) for f in TRAIN_FILES]
    x_test, y_test = _read_batch(folder / TEST_FILE)
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]), x_test, y_test


def preprocess(images: torch.Tensor, *, augment: bool, generator: torch.Generator | None = None) -> torch.Tensor:
    """uint8 NHWC batch -> normalised float NCHW; with ``augment``, random crop (pad 4) and flip.

    The same function serves clean and backdoor images, so both see identical preprocessing.
    """
    x = images.permute(0, 3, 1, 2).float().div_(255.0)
    if augment:
        n, _, h, w = x.shape
        padded = torch.nn.functional.pad(x, (4, 4, 4, 4))
        dev = x.device
        oy = torch.randint(0, 9, (n,), generator=generator, device="cpu").to(dev)
        ox = torch.randint(0, 9, (n,), generator=generator, device="cpu").to(dev)
        flip = torch.rand(n, generator=generator, device="cpu").to(dev) < 0.5
        rows = oy[:, None] + torch.arange(h, device=dev)[None, :]  # (n, h)
        cols = ox[:, None] + torch.arange(w, device=dev)[None, :]
        cols = torch.where(flip[:, None], cols.flip(1), cols)
        idx_n = torch.arange(n, device=dev)[:, None, None]
        x = padded.permute(0, 2, 3, 1)[idx_n, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)
    mean = torch.tensor(MEAN, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(STD, device=x.device).view(1, 3, 1, 1)
    # contiguous NCHW: oneDNN has pathologically slow kernels for some channels-last shapes
    return ((x - mean) / std).contiguous()


def stamp_pixel_pattern(images: np.ndarray, size: int = 3, value: int = 255, cells=None) -> np.ndarray:
    """The pixel-pattern trigger (Bagdasaryan et al.): a ``size`` x ``size`` checkerboard in the
    lower-right corner of uint8 NHWC images; returns a copy. ``cells``: stamp only these cells of
    the square (flat indices, row-major; DBA's local triggers), leaving the others' pixels as
    they were."""
    if not 1 <= size <= min(images.shape[1:3]):
        raise ExperimentError(f"pixel pattern size {size} must be in 1..{min(images.shape[1:3])}")
    out = images.copy()
    checker = (np.indices((size, size)).sum(0) % 2 == 0).astype(np.uint8) * value
    if cells is None:
        out[:, -size:, -size:, :] = checker[..., None]
        return out
    rows, cols = np.unravel_index(np.asarray(cells, dtype=np.int64), (size, size))
    h, w = images.shape[1:3]
    out[:, h - size + rows, w - size + cols, :] = checker[rows, cols][None, :, None]
    return out
