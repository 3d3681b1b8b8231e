"""The core leaves the caller's thread settings as they were (issue 11: numba's OpenMP layer
reset torch's intra-op thread count from 1 to 2 on its first parallel kernel, and local
training on a loaded 2-core machine ran 10-50x slower)."""

import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent(
    """
    import torch
    torch.set_num_threads({threads})
    import numpy as np
    import invariant_aggregator as ia
    seen = []
    for name, params in [("fedavg", {{}}), ("invariant", {{}}), ("median", {{}}), ("sign_sgd", {{}}),
                         ("krum", {{"f": 2}}), ("multi_krum_cosine", {{"f": 2}}), ("rfa", {{}}),
                         ("weak_dp", {{}}), ("sparsefed", {{"k": 10}}), ("foolsgold", {{}})]:
        for x in (torch.randn(20, 5858), np.random.default_rng(0).normal(size=(20, 300_000)).astype(np.float32)):
            seen.append(torch.get_num_threads())  # (the reset shows only once torch's pool was queried)
            ids = list(range(20)) if name == "foolsgold" else None
            rule = ia.make(name, **params)
            rule(x, client_ids=ids) if ids else rule(x)
            seen.append(torch.get_num_threads())
    print(sorted(set(seen)))
    """
)


@pytest.mark.parametrize("threads", [1, 3])
def test_rules_leave_torchs_thread_count_alone(threads):
    # a fresh process: the reset happened on the first parallel kernel of the process
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT.format(threads=threads)], capture_output=True, text=True, timeout=600
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"[{threads}]"
