from pathlib import Path

import pytest

from deep_experiments import fixtures

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
needs_shared = pytest.mark.skipif(
    not (SHARED / "edge_case").is_dir(), reason=f"the workspace's real data ({SHARED}) is absent"
)


@pytest.fixture(scope="session")
def data_root(tmp_path_factory):
    """Every fixture data set, written once in its real on-disk format."""
    root = tmp_path_factory.mktemp("data")
    fixtures.write_cifar10(root)
    fixtures.write_southwest(root / "edge")
    fixtures.write_lanthimos(root / "edge")
    fixtures.write_sent140(root / "leaf")
    fixtures.write_glove(root / "glove.txt")
    fixtures.write_glove(root / "glove.zip", zipped=True)
    return root
