"""Feed bad, hostile and extreme inputs to the package and count what happens to each.

Each case is one thing a user (or an attacker) does: a configuration value out of range, a
malformed data file, an update at 1e200, two runs in one folder. What happened is one of

* ``clear``     - one error of the package (AggregatorError / ExperimentError, or the CLI's
                  one-line ``error:``) that names the problem; the right answer to a bad input;
* ``correct``   - a valid input that worked and gave the right result;
* ``silent``    - no error, and a result that is wrong (or an error that blames the wrong thing);
* ``traceback`` - any other exception, or a CLI run that ends in a Python traceback;
* ``lost``      - results lost, mixed with another run's, or debris left behind.

The cases use only what every version of the package offers (``invariant_aggregator.make``
and the ``python -m deep_experiments`` command line), so the same script measures an older
checkout for a before/after table:

    git worktree add /tmp/before 74c4f36
    python benchmarks/fuzz_inputs.py --repo /tmp/before --json before.json
    python benchmarks/fuzz_inputs.py --json after.json
    python benchmarks/fuzz_inputs.py --compare before.json after.json

Needs no data beyond what it writes (fixture files in the real on-disk formats); a full pass
takes a few minutes on two cores (most cases start the CLI once).
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import subprocess
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

OUTCOMES = ("clear", "correct", "silent", "traceback", "lost")
PACKAGE_ERRORS = ("AggregatorError", "ExperimentError", "DataMissing")
CASES: list[tuple[str, str, str, object]] = []  # (group, name, expectation, function)


def case(group: str, name: str, expect: str = "error"):
    """Register a case. ``expect``: "error" (a bad input: it must be refused), "works" (a valid
    input: the function returns True when the result is right), or "custom" (the function
    returns the outcome itself)."""

    def register(fn):
        CASES.append((group, name, expect, fn))
        return fn

    return register


# --------------------------------------------------------------------------- machinery
class Context:
    def __init__(self, repo: Path, work: Path):
        self.repo, self.work = repo, work
        self.env = {**os.environ, "PYTHONPATH": str(repo), "PYTHONWARNINGS": "ignore"}

    def folder(self, name: str) -> Path:
        path = self.work / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def cli(self, *args, timeout=300) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "deep_experiments", *map(str, args)],
            cwd=self.work,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def run(self, task, *args, out=None, defence="fedavg", rounds=1):
        out = out or self.folder(f"out-{time.monotonic_ns()}")
        quick = ["--set", f"federation.rounds={rounds}"] if rounds else []
        return self.cli("run", task, "--defence", defence, "--out", out, "--no-progress", *quick, *args)


def cli_outcome(proc: subprocess.CompletedProcess, expect: str) -> str:
    text = proc.stdout + proc.stderr
    if "Traceback (most recent call last)" in text:
        return "traceback"
    if proc.returncode != 0:
        return "clear"
    return "silent" if expect == "error" else "correct"


def classify(expect: str, fn, ctx: Context) -> tuple[str, str]:
    try:
        result = fn(ctx)
    except Exception as exc:  # noqa: BLE001 - classifying every failure is the point
        kind = type(exc).__name__
        message = str(exc).splitlines()[0][:160] if str(exc) else kind
        return ("clear" if kind in PACKAGE_ERRORS else "traceback"), f"{kind}: {message}"
    if isinstance(result, subprocess.CompletedProcess):
        tail = (result.stdout + result.stderr).strip().splitlines()
        return cli_outcome(result, expect), (tail[-1][:160] if tail else f"exit {result.returncode}")
    if expect == "custom":
        outcome, detail = result
        return outcome, detail
    if expect == "error":
        return "silent", f"accepted: {str(result)[:120]}"
    return ("correct" if result else "silent"), ("" if result else "wrong result")


def _ia(ctx):
    sys.path.insert(0, str(ctx.repo))
    import invariant_aggregator as ia

    return ia


# --------------------------------------------------------------------------- core: numerics
def _normal_plus(row_value, n=10, d=5, seed=0):
    x = np.random.default_rng(seed).normal(size=(n + 1, d))
    x[-1] = row_value
    return x


@case("core: extreme values", "rfa, 10 N(0,1) rows and one at 1e10 (converged Weiszfeld: ~0.4)", "works")
def _(ctx):
    return float(np.abs(_ia(ctx).make("rfa")(_normal_plus(1e10))).max()) < 1.0


for _scale in (1e160, 1e200, 1e300):

    @case("core: extreme values", f"rfa with one row at {_scale:g}", "works")
    def _(ctx, s=_scale):
        z = _ia(ctx).make("rfa")(_normal_plus(s))
        return bool(np.all(np.isfinite(z)) and np.abs(z).max() < 1.0)

    @case("core: extreme values", f"foolsgold with one row at {_scale:g}", "works")
    def _(ctx, s=_scale):
        ia = _ia(ctx)
        x = _normal_plus(s)
        z = ia.make("foolsgold")(x, client_ids=list(range(len(x))))
        return bool(np.all(np.isfinite(z)))

    @case("core: extreme values", f"multi_krum_cosine with one row at {_scale:g}", "works")
    def _(ctx, s=_scale):
        return bool(np.all(np.isfinite(_ia(ctx).make("multi_krum_cosine", f=1)(_normal_plus(s)))))


for _name, _params in (("sparsefed", {"k": 2}), ("weak_dp", {"noise_std": 0.0})):

    @case("core: extreme values", f"{_name} clipping a row at 1e200 (clipped: [2/3, 2/3])", "works")
    def _(ctx, name=_name, params=_params):
        x = np.array([[1e200, 0.0], [0.0, 1.0], [0.0, 1.0]])
        return bool(np.allclose(_ia(ctx).make(name, clip_norm=2.0, **params)(x), [2 / 3, 2 / 3], rtol=1e-12))


for _name in ("fedavg", "weak_dp", "rfa"):

    @case("core: extreme values", f"{_name} with every weight 1e308 (= unweighted)", "works")
    def _(ctx, name=_name):
        ia = _ia(ctx)
        x = np.random.default_rng(1).normal(size=(6, 3))
        rule = ia.make(name, **({"noise_std": 0.0} if name == "weak_dp" else {}))
        return bool(np.allclose(rule(x, weights=np.full(6, 1e308)), rule(x), rtol=1e-9))


@case("core: extreme values", "median of float64 values near 1e308", "works")
def _(ctx):
    return float(_ia(ctx).make("median")(np.array([[1.5e308], [1.6e308], [1.7e308], [-1.0]]))[0]) == 1.55e308


@case("core: exactness", "fedavg of 1, 4, 7 is exactly 4", "works")
def _(ctx):
    return float(_ia(ctx).make("fedavg")(np.array([[1.0], [4.0], [7.0]]))[0]) == 4.0


@case("core: exactness", "weighted fedavg of equal rows is the row", "works")
def _(ctx):
    row = np.array([0.1, 1 / 3, 2 / 7])
    return bool(np.array_equal(_ia(ctx).make("fedavg")(np.tile(row, (7, 1)), weights=np.arange(1.0, 8.0)), row))


@case("core: exactness", "bulyan with repeated values (definition: 0)", "works")
def _(ctx):
    x = np.array([0, 1, 0, -2, 1, 1, -2, -2, -2], dtype=float)[:, None]
    return float(_ia(ctx).make("bulyan", f=1)(x)[0]) == 0.0


# --------------------------------------------------------------------------- core: inputs
_X = np.random.default_rng(0).normal(size=(7, 4))
for _label, _make in (
    ("reversed rows x[::-1]", lambda: _X[::-1]),
    ("reversed columns x[:, ::-1]", lambda: _X[:, ::-1]),
    ("big-endian float64", lambda: _X.astype(">f8")),
    ("big-endian float32", lambda: _X.astype(">f4")),
):

    @case("core: legitimate arrays", f"median of {_label}", "works")
    def _(ctx, make=_make):
        given = make()
        return bool(np.allclose(_ia(ctx).make("median")(given), np.median(np.asarray(given, dtype=np.float64), axis=0)))


for _label, _weights in (
    ("string weights", ["a"] * 7),
    ("string digits as weights", ["1"] * 7),
    ("a dict as weights", {"a": 1}),
    ("a string as weights", "abcdefg"),
    ("masked weights", np.ma.masked_array(np.ones(7), mask=[0, 1, 0, 0, 0, 0, 0])),
):

    @case("core: bad inputs", f"fedavg with {_label}")
    def _(ctx, w=_weights):
        return _ia(ctx).make("fedavg")(_X, weights=w)


for _label, _ids in (("list ids [[0], [1], ...]", [[i] for i in range(7)]), ("dict ids", [{"i": i} for i in range(7)])):

    @case("core: bad inputs", f"foolsgold with unhashable {_label}")
    def _(ctx, ids=_ids):
        return _ia(ctx).make("foolsgold")(_X, client_ids=ids)


@case("core: bad inputs", "weak_dp(seed=2**70)")
def _(ctx):
    return _ia(ctx).make("weak_dp", seed=2**70)(_X)


for _name, _params, _state in (
    ("weak_dp", {}, {"seed": 1, "generators": {"cpu": "junk"}}),
    ("weak_dp", {}, {"wrong": 1}),
    ("foolsgold", {}, {"history": {0: "abc"}}),
    ("foolsgold", {}, None),
    ("sparsefed", {"k": 1}, {"error": [[1.0]]}),
    ("sparsefed", {"k": 1}, {"err": None}),
):

    @case("core: bad inputs", f"{_name}.load_state_dict({_state!r})")
    def _(ctx, name=_name, params=_params, state=_state):
        return _ia(ctx).make(name, **params).load_state_dict(state)


@case("core: bad inputs", "a meta tensor")
def _(ctx):
    import torch

    return _ia(ctx).make("median")(torch.empty(7, 4, device="meta"))


@case("core: bad inputs", "a masked array (mask must not be ignored)")
def _(ctx):
    return _ia(ctx).make("median")(np.ma.masked_array(_X, mask=np.eye(7, 4, dtype=bool)))


# --------------------------------------------------------------------------- runs, tables, folders
@case("runs: lost or mixed", "two runs at once in one --out", "custom")
def _(ctx):
    out = ctx.folder("same")
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "deep_experiments",
                "run",
                "phishing",
                "--defence",
                d,
                "--out",
                str(out),
                "--no-progress",
            ],
            cwd=ctx.work,
            env=ctx.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for d in ("invariant", "fedavg")
    ]
    texts = [p.communicate(timeout=600)[0] for p in procs]
    codes = [p.returncode for p in procs]
    if all(c == 0 for c in codes):
        return "lost", "both exited 0: one result overwrote the other"
    if any("Traceback" in t for t in texts):
        return "traceback", "a traceback"
    return "clear", [t.strip().splitlines()[-1] for t, c in zip(texts, codes, strict=True) if c][0][:160]


@case("runs: lost or mixed", "table1 again with another configuration in the same --out", "custom")
def _(ctx):
    out = ctx.folder("t1")
    first = ctx.cli(
        "table1",
        "phishing",
        "--seeds",
        "0",
        "--defences",
        "fedavg",
        "--set",
        "federation.rounds=2",
        "--out",
        out,
        "--no-progress",
    )
    if first.returncode:
        return "traceback", "the first table1 failed"
    second = ctx.cli(
        "table1", "phishing", "--seeds", "0", "--defences", "fedavg", "--set", "federation.rounds=3",
        "--set", "train.lr=0.5", "--out", out, "--no-progress",
    )  # fmt: skip
    if second.returncode:
        return cli_outcome(second, "error"), (second.stdout + second.stderr).strip().splitlines()[-1][:160]
    summary = json.loads((out / "fedavg" / "seed0" / "summary.json").read_text())
    if summary["rounds"] == 3:
        return "correct", "retrained for the new configuration"
    return "lost", "reported the 2-round run as the new configuration's table"


@case("runs: lost or mixed", "table over runs of different configurations", "custom")
def _(ctx):
    a, b = ctx.folder("mix/a"), ctx.folder("mix/b")
    ctx.run("phishing", "--seed", "0", out=a, rounds=2)
    ctx.run("phishing", "--seed", "1", out=b, rounds=3)
    proc = ctx.cli("table", a, b, "--out", ctx.work / "mix" / "t")
    if proc.returncode:
        return cli_outcome(proc, "error"), "table failed"
    rows = json.loads((ctx.work / "mix" / "t.json").read_text())
    if len(rows) == 1:
        return "lost", "one mean ± SE row over a 2-round and a 3-round run"
    return "correct", f"{len(rows)} rows, one per configuration"


@case("runs: lost or mixed", "leftover .checkpoint.pt.*.tmp of a killed write", "custom")
def _(ctx):
    out = ctx.folder("debris")
    ctx.run("phishing", out=out)
    debris = out / ".checkpoint.pt.x1y2z3.tmp"
    debris.write_bytes(b"\0" * 4096)
    ctx.run("phishing", "--restart", out=out)
    return ("lost", "left behind") if debris.exists() else ("correct", "removed when the run started")


for _label, _content in (
    ("corrupt", b"not a checkpoint at all"),
    ("truncated", None),
    ("foreign (a tensor)", "tensor"),
):

    @case("runs: lost or mixed", f"{_label} checkpoint.pt in the run folder")
    def _(ctx, content=_content):
        out = ctx.folder(f"ckpt-{time.monotonic_ns()}")
        ctx.run("phishing", out=out, rounds=2)
        ckpt = out / "checkpoint.pt"
        if content is None:
            ckpt.write_bytes(ckpt.read_bytes()[:100])
        elif content == "tensor":
            import torch

            torch.save(torch.zeros(3), ckpt)
        else:
            ckpt.write_bytes(content)
        (out / "summary.json").unlink(missing_ok=True)
        return ctx.run("phishing", out=out, rounds=3)


@case("runs: silently wrong", "run phishing --defence rfa --set attack.scale=1e9 (Acc_B stays low)", "custom")
def _(ctx):
    out = ctx.folder("rfa-scaled")
    proc = ctx.run("phishing", "--set", "attack.scale=1e9", out=out, defence="rfa", rounds=0)
    if proc.returncode:
        return cli_outcome(proc, "works"), (proc.stdout + proc.stderr).strip().splitlines()[-1][:160]
    acc_b = json.loads((out / "summary.json").read_text())["acc_b"]
    return ("correct" if acc_b < 0.5 else "silent"), f"Acc_B = {acc_b:.3f} (FedAvg without attack: ~0.1)"


@case("runs: bad names", "table1 --defences invariant bogus (must fail before training)", "custom")
def _(ctx):
    out = ctx.folder("names")
    proc = ctx.cli(
        "table1", "phishing", "--seeds", "0", "--defences", "invariant", "bogus", "--out", out, "--no-progress"
    )
    trained = (out / "invariant").exists()
    outcome = cli_outcome(proc, "error")
    if outcome == "clear" and trained:
        return "silent", "trained invariant before refusing bogus"
    return outcome, (proc.stdout + proc.stderr).strip().splitlines()[-1][:160]


for _param, _check in (("tau_sum=12", "tau_sum"), ("trim=authors", "authors")):

    @case("runs: parameters", f"--param {_param} replaces the packaged convention", "custom")
    def _(ctx, param=_param, check=_check):
        out = ctx.folder(f"param-{check}")
        proc = ctx.run("phishing", "--param", param, out=out, defence="invariant")
        if proc.returncode:
            return cli_outcome(proc, "works"), (proc.stdout + proc.stderr).strip().splitlines()[-1][:160]
        params = json.loads((out / "summary.json").read_text())["config"]["defence"]["params"]
        ok = check in json.dumps(params) and ("tau" not in params if check == "tau_sum" else "alpha" not in params)
        return ("correct" if ok else "silent"), json.dumps(params)


# --------------------------------------------------------------------------- configuration ranges
for _setting in (
    "federation.rounds=0",
    "federation.eval_every=0",
    "runtime.checkpoint_every=0",
    "federation.malicious_fraction=1.5",
    "federation.n_clients=0",
    "train.batch_size=0",
    "train.lr=-1.0",
    "train.local_epochs=-1",
    "model.hidden=[0]",
    "attack.backdoor_per_batch=-1",
    "attack.target_label=5",
    "data.samples_per_client=0",
    "data.n_test=0",
    "data.test_fraction=0.0",
    "federation.clients_per_round=0",
    "data.dirichlet_alpha=-1.0",
):

    @case("config: ranges", f"--set {_setting}")
    def _(ctx, setting=_setting):
        return ctx.run("phishing", "--set", setting, rounds=0 if "rounds" in setting else 1)


@case("config: ranges", "--set federation.server_lr=nan (must name server_lr)", "custom")
def _(ctx):
    proc = ctx.run("phishing", "--set", "federation.server_lr=nan")
    text = proc.stdout + proc.stderr
    outcome = cli_outcome(proc, "error")
    if outcome == "clear" and "server_lr" not in text:
        return "silent", "blamed on another setting: " + text.strip().splitlines()[-1][:120]
    return outcome, text.strip().splitlines()[-1][:160]


@case("config: ranges", "--seed -1")
def _(ctx):
    return ctx.cli(
        "run", "phishing", "--defence", "fedavg", "--seed", "-1", "--out", ctx.folder("seed"), "--no-progress"
    )


@case("config: ranges", "--out /dev/null/x")
def _(ctx):
    return ctx.cli("run", "phishing", "--defence", "fedavg", "--out", "/dev/null/x", "--no-progress")


# --------------------------------------------------------------------------- loaders
def _fixtures(ctx):
    sys.path.insert(0, str(ctx.repo))
    from deep_experiments import fixtures

    return fixtures


def _twitter(ctx, *, glove_text=None, glove_zip=None, leaf_blob=None):
    fx = _fixtures(ctx)
    root = ctx.folder(f"tw-{time.monotonic_ns()}")
    fx.write_sent140(root / "leaf")
    fx.write_lanthimos(root / "edge")
    glove = root / "glove.txt"
    fx.write_glove(glove)
    if glove_text is not None:
        glove.write_text(glove_text)
    if glove_zip is not None:
        glove = root / "glove.zip"
        glove.write_bytes(glove_zip)
    if leaf_blob is not None:
        for split in ("train", "test"):
            for path in (root / "leaf" / split).glob("*.json"):
                path.write_text(leaf_blob)
    return ctx.run(
        "twitter", "--data", root / "leaf", "--set", f"data.glove='{glove}'",
        "--set", f"attack.edge_case_dir='{root / 'edge'}'", "--set", "federation.n_clients=6",
        "--set", "federation.clients_per_round=3", "--set", "data.min_samples_per_user=1",
        "--set", "model.hidden=8", "--set", "model.layers=1", "--set", "attack.verify_edge_case=false",
    )  # fmt: skip


def _glove_lines(dim, words=("love", "hate", "the", "a", "day", "new"), first_value=None):
    rng = np.random.default_rng(0)
    rows = [[f"{v:.4f}" for v in rng.normal(size=dim)] for _ in words]
    if first_value is not None:
        rows[1][0] = first_value  # the second word's first number
    return "\n".join(f"{w} " + " ".join(r) for w, r in zip(words, rows, strict=True)) + "\n"


@case("loaders: GloVe", "vectors 320 wide, data.embedding_dim 300")
def _(ctx):
    return _twitter(ctx, glove_text=_glove_lines(320))


@case("loaders: GloVe", "an empty GloVe file")
def _(ctx):
    return _twitter(ctx, glove_text="")


@case("loaders: GloVe", "a GloVe vector with nan")
def _(ctx):
    return _twitter(ctx, glove_text=_glove_lines(300, first_value="nan"))


@case("loaders: GloVe", "a .zip GloVe that is not a zip")
def _(ctx):
    return _twitter(ctx, glove_zip=b"this is not a zip archive")


@case("loaders: GloVe", "a GloVe file of another language (no token matches)")
def _(ctx):
    return _twitter(ctx, glove_text=_glove_lines(300, words=("amour", "haine", "jour", "le", "la", "un")))


@case("loaders: LEAF", "LEAF user_data as a list")
def _(ctx):
    return _twitter(ctx, leaf_blob=json.dumps({"users": ["u"], "num_samples": [1], "user_data": [["u", {}]]}))


@case("loaders: LEAF", "deeply nested LEAF JSON")
def _(ctx):
    return _twitter(ctx, leaf_blob="[" * 100_000 + "]" * 100_000)


def _cifar(ctx, batch_labels):
    fx = _fixtures(ctx)
    root = ctx.folder(f"cifar-{time.monotonic_ns()}")
    folder = fx.write_cifar10(root)
    fx.write_southwest(root / "edge")
    batch = folder / "data_batch_3" if (folder / "data_batch_3").exists() else next(folder.glob("data_batch_*"))
    data = np.zeros((len(np.asarray(batch_labels).reshape(-1)), 3072), np.uint8)
    batch.write_bytes(pickle.dumps({b"data": data, b"labels": batch_labels}))
    return ctx.run(
        "cifar10", "--data", root, "--set", f"attack.edge_case_dir='{root / 'edge'}'", "--set", "model.width=4",
        "--set", "data.max_train=0", "--set", "data.max_test=0", "--set", "federation.n_clients=4",
        "--set", "federation.clients_per_round=2", "--set", "attack.verify_edge_case=false",
    )  # fmt: skip


@case("loaders: CIFAR-10", "a batch with string labels", "custom")
def _(ctx):
    proc = _cifar(ctx, ["cat"] * 20)
    outcome, text = cli_outcome(proc, "error"), (proc.stdout + proc.stderr)
    if outcome == "clear" and "data_batch" not in text:
        return "silent", "the error does not name the file"
    return outcome, text.strip().splitlines()[-1][:160]


@case("loaders: CIFAR-10", "a batch with 2-D labels", "custom")
def _(ctx):
    proc = _cifar(ctx, np.zeros((20, 1), np.int64))
    outcome, text = cli_outcome(proc, "error"), (proc.stdout + proc.stderr)
    if outcome == "clear" and "data_batch" not in text:
        return "silent", "the error does not name the file"
    return outcome, text.strip().splitlines()[-1][:160]


def _table(ctx, text: bytes | str, name="t.csv"):
    path = ctx.folder(f"tab-{time.monotonic_ns()}") / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return ctx.run(
        "phishing",
        "--data",
        path,
        "--set",
        "federation.n_clients=4",
        "--set",
        "federation.clients_per_round=2",
        "--set",
        "data.dirichlet_alpha=0.0",
    )


def _rows(labels, n_features=45, extra=""):
    header = ",".join([f"f{i}" for i in range(n_features)] + ["label"]) + extra
    rng = np.random.default_rng(0)
    lines = [",".join([*(f"{v:.3f}" for v in rng.normal(size=n_features)), str(lab)]) for lab in labels]
    return header + "\n" + "\n".join(lines) + "\n"


for _label, _labels in (
    ("labels 1.5", [0, 1, 1.5, 0] * 5),
    ("labels 0.7", [0, 1, 0.7, 1] * 5),
    ("a label inf", [0, 1, "inf", 0] * 5),
):

    @case("loaders: tables", f"phishing CSV with {_label}")
    def _(ctx, labels=_labels):
        return _table(ctx, _rows(labels))


@case("loaders: tables", "phishing CSV with two columns named label")
def _(ctx):
    text = _rows([0, 1] * 10, n_features=44, extra=",label")
    lines = text.splitlines()
    return _table(ctx, "\n".join([lines[0]] + [ln + "," + ln.rsplit(",", 1)[1] for ln in lines[1:]]) + "\n")


@case("loaders: tables", "phishing CSV of one class only")
def _(ctx):
    return _table(ctx, _rows([1] * 20))


@case("loaders: tables", "a Latin-1 CSV")
def _(ctx):
    return _table(ctx, _rows([0, 1] * 10).replace("f0", "café").encode("latin-1"))


@case("loaders: tables", "a binary file as the CSV")
def _(ctx):
    return _table(ctx, bytes(range(256)) * 8)


@case("loaders: tables", "a small table on the default 100-client Dirichlet split (must name the settings)", "custom")
def _(ctx):
    path = ctx.folder("small-table") / "t.csv"
    path.write_text(_rows([0, 1] * 30))
    proc = ctx.run("phishing", "--data", path)
    text = proc.stdout + proc.stderr
    outcome = cli_outcome(proc, "error")
    if outcome == "clear" and not ("n_clients" in text or "dirichlet_alpha" in text):
        return "silent", "the error does not name the settings to change: " + text.strip().splitlines()[-1][:100]
    return outcome, text.strip().splitlines()[-1][:160]


@case("loaders: tables", "UCI's official spambase.data (no header, 0/1 label last)", "works")
def _(ctx):
    rng = np.random.default_rng(0)
    x = np.round(rng.random((400, 57)) * 3, 2)
    y = rng.integers(0, 2, 400)
    path = ctx.folder("uci") / "spambase.data"
    path.write_text("\n".join(",".join([*(f"{v:g}" for v in r), str(lab)]) for r, lab in zip(x, y, strict=True)) + "\n")
    return ctx.run(
        "spambase", "--data", path, "--set", "federation.n_clients=10", "--set", "federation.clients_per_round=5"
    )


@case("fresh machine", "runs/ is git-ignored", "works")
def _(ctx):
    proc = subprocess.run(["git", "check-ignore", "-q", "runs/x/summary.json"], cwd=ctx.repo, capture_output=True)
    return proc.returncode == 0


# --------------------------------------------------------------------------- report
def run_all(repo: Path, only: str | None, workers: int) -> list[dict]:
    chosen = [c for c in CASES if only is None or only in c[1] or only in c[0]]
    with tempfile.TemporaryDirectory(prefix="fuzz-") as tmp:
        ctx = Context(repo, Path(tmp))

        def one(item):
            group, name, expect, fn = item
            start = time.perf_counter()
            outcome, detail = classify(expect, fn, ctx)
            return {
                "group": group,
                "case": name,
                "outcome": outcome,
                "detail": detail,
                "s": round(time.perf_counter() - start, 1),
            }

        # in-process cases one after another (numba's thread pool must not be entered from two
        # threads at once), the command-line ones side by side
        local = [one(c) for c in chosen if c[0].startswith("core:")]
        with ThreadPoolExecutor(max_workers=workers) as pool:
            return local + list(pool.map(one, [c for c in chosen if not c[0].startswith("core:")]))


def summary_table(results: list[dict]) -> str:
    counts = Counter(r["outcome"] for r in results)
    return (
        "| inputs tried | clear error | correct result | silently wrong | traceback | lost / mixed |\n"
        "|---:|---:|---:|---:|---:|---:|\n"
        f"| {len(results)} | " + " | ".join(str(counts[o]) for o in OUTCOMES) + " |"
    )


def compare(before: list[dict], after: list[dict]) -> str:
    by_case = {r["case"]: r for r in before}
    lines = [
        "| | inputs tried | clear error | correct result | silently wrong | traceback | lost / mixed |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for label, results in (("before", before), ("after", after)):
        c = Counter(r["outcome"] for r in results)
        lines.append(f"| {label} | {len(results)} | " + " | ".join(str(c[o]) for o in OUTCOMES) + " |")
    changed = [
        f"- {r['case']}: {by_case[r['case']]['outcome']} -> {r['outcome']}"
        for r in after
        if r["case"] in by_case and by_case[r["case"]]["outcome"] != r["outcome"]
    ]
    still = [
        f"- {r['case']}: {r['outcome']} ({r['detail']})"
        for r in after
        if r["outcome"] in ("silent", "traceback", "lost")
    ]
    return "\n".join(
        lines + ["", f"changed ({len(changed)}):", *changed, "", f"still wrong after ({len(still)}):", *still]
    )


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repo", type=Path, default=Path(__file__).resolve().parents[1], help="the checkout to test")
    p.add_argument("--json", type=Path, help="write every case's outcome here")
    p.add_argument("--only", help="run the cases whose name or group contains this text")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--compare", nargs=2, type=Path, metavar=("BEFORE", "AFTER"), help="compare two --json files")
    args = p.parse_args(argv)
    if args.compare:
        print(compare(*(json.loads(path.read_text()) for path in args.compare)))
        return 0
    results = run_all(args.repo.resolve(), args.only, args.workers)
    for r in results:
        print(f"{r['outcome']:>9}  {r['group']}: {r['case']}  [{r['detail']}]")
    print()
    print(summary_table(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
