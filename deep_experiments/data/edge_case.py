"""The edge-case backdoor sets of Wang et al. (2020), "Attack of the Tails".

Southwest Airlines photos (labelled 9, "truck", by the attacker) and tweets about the director
Yorgos Lanthimos (labelled 0, negative). Read from a local folder — by default the workspace's
``../shared/data/edge_case`` — or, on request, downloaded from the attack repository pinned to
one commit and checked by sha256.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import DataMissing, ExperimentError
from . import default_locations
from .download import check_digest, download
from .safe_pickle import safe_load

REPOSITORY = "ksreenivasan/OOD_Federated_Learning"
COMMIT = "90969695cf0f1c5b009744fc2ccd4fbde817b8cb"
# file name -> (path in the repository, sha256)
FILES = {
    "southwest_images_new_train.pkl": (
        "saved_datasets/southwest_images_new_train.pkl",
        "4dfb293d5bfc073cb26f9019d37b7660bb4cfbe4b8d0cf9843523e884539b26a",
    ),
    "southwest_images_new_test.pkl": (
        "saved_datasets/southwest_images_new_test.pkl",
        "cad0410ce01bd53af349fd2094799a8c58c508ae39ec1c01d038868cb1e5d64d",
    ),
    "greek_director_train.txt": (
        "language-tasks-fl/data/sentiment-140/greek-director-backdoor/train.txt",
        "204e9c1b98aa1ad8b222c26fa4c77e7af71de32abc8eeac5b35c549099bf25ec",
    ),
    "greek_director_test.txt": (
        "language-tasks-fl/data/sentiment-140/greek-director-backdoor/test.txt",
        "80fde4c91c27ecc86e5b2805b4129442d688feb8f384298497a4e0ac9b936b80",
    ),
}
ENV_VAR = "INVARIANT_AGGREGATOR_EDGE_CASE"
SOUTHWEST_LABEL = 9
LANTHIMOS_LABEL = 0


def _url(name: str) -> str:
    return f"https://raw.githubusercontent.com/{REPOSITORY}/{COMMIT}/{FILES[name][0]}"


def edge_case_file(name: str, folder=None, *, download_to=None, verify: bool = True) -> Path:
    """Path of one edge-case file, checked against its published sha256 when ``verify``."""
    if name not in FILES:
        raise ExperimentError(f"unknown edge-case file {name!r}; known: {sorted(FILES)}")
    searched = [Path(folder).expanduser()] if folder else default_locations("edge_case", ENV_VAR)
    for path in searched:
        if (path / name).is_file():
            if verify:
                check_digest(path / name, "sha256", FILES[name][1])
            return path / name
    if download_to is not None:
        return download(_url(name), Path(download_to) / name, algorithm="sha256", expected=FILES[name][1])
    raise DataMissing(
        f"edge-case file {name}",
        [name],
        searched,
        [
            "--set attack.edge_case_dir=PATH, a folder holding the file",
            f"the environment variable {ENV_VAR}=PATH",
            f"--download, to fetch it from {REPOSITORY} at commit {COMMIT[:12]} (sha256-checked; needs network)",
        ],
    )


def southwest_images(split: str, folder=None, *, download_to=None, verify: bool = True) -> np.ndarray:
    """Southwest airplane photos as uint8 NHWC (784 train / 196 test in the published files)."""
    path = edge_case_file(f"southwest_images_new_{split}.pkl", folder, download_to=download_to, verify=verify)
    images = safe_load(path.read_bytes())
    if not (
        isinstance(images, np.ndarray)
        and images.dtype == np.uint8
        and images.ndim == 4
        and images.shape[1:] == (32, 32, 3)
    ):
        raise ExperimentError(
            f"{path}: expected a pickled uint8 array (N, 32, 32, 3), got "
            f"{getattr(images, 'dtype', type(images).__name__)} {getattr(images, 'shape', '')}"
        )
    return images


def lanthimos_tweets(split: str, folder=None, *, download_to=None, verify: bool = True) -> list[str]:
    """The Lanthimos tweets, one per line (259 train / 120 test in the published files)."""
    path = edge_case_file(f"greek_director_{split}.txt", folder, download_to=download_to, verify=verify)
    tweets = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not tweets:
        raise ExperimentError(f"{path}: no tweets (expected one per line)")
    return tweets
