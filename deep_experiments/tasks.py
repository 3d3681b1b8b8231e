"""The four tasks as federated data sets with their models, and how a user's data reaches them.

A task builder turns a resolved configuration and the run's attack into a
:class:`~deep_experiments.samples.FederatedTask`: the training pool, each client's indices into
it, the clean and backdoor test sets, the attacker's backdoor training samples, the model
constructor and the preprocessing. The task offers the attack its own edge-case inputs and its
clean data (:class:`~deep_experiments.attacks.BackdoorSource`); the attack chooses the backdoor
samples. Everything lives on the training device as tensors; the engine only indexes them.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np
import torch

from .attacks import BackdoorSource, CompositeAttack, build_attack
from .data import cifar10, edge_case, partition, sent140, tabular
from .errors import DataMissing, ExperimentError
from .models import MLP, LSTMClassifier, ResNet18, load_pretrained
from .samples import FederatedTask, Samples, tensor_samples

TASKS = ("cifar10", "twitter", "phishing", "spambase")
MODALITY = {"cifar10": "image", "twitter": "text", "phishing": "tabular", "spambase": "tabular"}


def data_overrides(task: str, data=None, download: bool = False) -> dict:
    """The settings that "my data is at ``data``" (and "download what is missing") mean for a
    task, as dotted overrides: ``data.root`` for CIFAR-10 and Sent140, ``data.path`` for
    Spambase, and for phishing a table at ``data.path`` in place of the synthetic stand-in."""
    if task not in TASKS:
        raise ExperimentError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")
    overrides: dict = {}
    if download:
        if task not in ("cifar10", "twitter", "spambase"):
            raise ExperimentError(f"--download: the {task} task has nothing to download")
        overrides["data.download"] = True
    if data is not None:
        if task == "phishing":
            overrides |= {"data.source": "table", "data.path": str(data)}
        else:
            overrides[{"cifar10": "data.root", "twitter": "data.root", "spambase": "data.path"}[task]] = str(data)
    return overrides


def _labelled(inputs, target: int) -> Samples:
    return tensor_samples(inputs, np.full(len(inputs), target))


def _client_ranges(lengths) -> list[torch.Tensor]:
    """Indices of consecutive blocks of the given lengths (clients stored one after another)."""
    ends = np.cumsum(lengths)
    return [torch.arange(end - n, end) for n, end in zip(lengths, ends, strict=True)]


def _download_dir(cfg):
    return (cfg["data"]["root"] or ".") if cfg["data"].get("download") else None


def _edge_case_files(cfg, load):
    """A loader of the edge-case files (train, test) through ``load(split, folder=, verify=,
    download_to=)``: the folder, download target and digest check come from the configuration."""
    a = cfg["attack"]
    where = {
        "folder": a["edge_case_dir"] or None,
        "verify": a["verify_edge_case"],
        "download_to": (a["edge_case_dir"] or ".") if cfg["data"].get("download") else None,
    }
    return lambda: tuple(load(split, **where) for split in ("train", "test"))


def build_cifar10(cfg, rng: np.random.Generator, attack: CompositeAttack) -> FederatedTask:
    d, m, a = cfg["data"], cfg["model"], cfg["attack"]
    x_tr, y_tr, x_te, y_te = cifar10.load_cifar10(d["root"], strict=d["strict_md5"], download_to=_download_dir(cfg))
    if d["max_train"]:
        keep = rng.permutation(len(y_tr))[: d["max_train"]]
        x_tr, y_tr = x_tr[keep], y_tr[keep]
    if d["max_test"]:
        x_te, y_te = x_te[: d["max_test"]], y_te[: d["max_test"]]
    clients = partition.dirichlet_partition(y_tr, cfg["federation"]["n_clients"], d["dirichlet_alpha"], rng)
    target = a["target_label"]
    source = BackdoorSource(
        target,
        _edge_case_files(cfg, edge_case.southwest_images),
        (x_tr, y_tr),
        (x_te, y_te),
    )
    bd_in_tr, bd_in_te = attack.backdoor_inputs(source)
    bd_tr, bd_te = _labelled(bd_in_tr, target), _labelled(bd_in_te, target)

    def make_model():
        model = ResNet18(10, m["layout"], m["width"])
        if m["pretrained"]:
            load_pretrained(model, m["pretrained"])
        return model

    return FederatedTask(
        "cifar10",
        tensor_samples(x_tr, y_tr),
        [torch.as_tensor(c) for c in clients],
        tensor_samples(x_te, y_te),
        bd_tr,
        bd_te,
        a["target_label"],
        make_model,
        prepare=cifar10.preprocess,
        info={"train": len(y_tr), "test": len(y_te), "backdoor_train": len(bd_tr), "backdoor_test": len(bd_te)},
    )


def build_twitter(cfg, rng: np.random.Generator, attack: CompositeAttack) -> FederatedTask:
    d, m, a = cfg["data"], cfg["model"], cfg["attack"]
    train, test = sent140.load_sent140(d["root"])
    users = sorted(u for u, (texts, _) in train.items() if len(texts) >= d["min_samples_per_user"])
    n_clients = cfg["federation"]["n_clients"]
    if len(users) < n_clients:
        raise ExperimentError(
            f"only {len(users)} LEAF users have >= {d['min_samples_per_user']} training tweets, "
            f"federation.n_clients is {n_clients}; lower one of them"
        )
    chosen = [users[i] for i in rng.choice(len(users), n_clients, replace=False)]
    test_texts, test_labels = [], []
    for u in chosen:
        test_texts += test.get(u, ([], []))[0]
        test_labels += test.get(u, ([], []))[1]
    if not test_texts:
        raise ExperimentError("the chosen users have no test tweets in test/*.json")
    target = a["target_label"]
    source = BackdoorSource(
        target,
        _edge_case_files(cfg, edge_case.lanthimos_tweets),
    )
    edge_tr, edge_te = attack.backdoor_inputs(source)
    texts = [t for u in chosen for t in train[u][0]]
    tokens = {tok for t in (*texts, *test_texts, *edge_tr, *edge_te) for tok in sent140.tokenize(t)}
    index, matrix = sent140.build_vocabulary(sent140.load_glove(d["glove"], d["embedding_dim"], tokens))
    oov_rate = _oov_rate(texts, index)
    sent140.check_coverage(oov_rate, d["glove"])

    def samples(tx, labels):
        ids, lengths = sent140.encode(tx, index, d["max_len"])
        return Samples((torch.as_tensor(ids), torch.as_tensor(lengths)), torch.as_tensor(np.asarray(labels, np.int64)))

    clients = _client_ranges([len(train[u][0]) for u in chosen])
    embeddings = torch.as_tensor(matrix)
    return FederatedTask(
        "twitter",
        samples(texts, [y for u in chosen for y in train[u][1]]),
        clients,
        samples(test_texts, test_labels),
        samples(edge_tr, [target] * len(edge_tr)),
        samples(edge_te, [target] * len(edge_te)),
        target,
        lambda: LSTMClassifier(embeddings, m["hidden"], m["layers"]),
        info={
            "train": len(texts),
            "test": len(test_texts),
            "vocabulary": len(index),
            "oov_rate": oov_rate,
        },
    )


def _oov_rate(texts, index) -> float:
    toks = [t for x in texts for t in sent140.tokenize(x)]
    return float(np.mean([t not in index for t in toks])) if toks else 0.0


def _trigger_column(d, n_features: int) -> int:
    col = d["trigger_feature"] - d["trigger_index_base"]
    if d["trigger_index_base"] not in (0, 1) or not 0 <= col < n_features:
        raise ExperimentError(
            f"data.trigger_feature = {d['trigger_feature']} ({d['trigger_index_base']}-based) is "
            f"not one of the {n_features} feature columns"
        )
    return col


def _tabular_task(cfg, attack, clients_x, clients_y, x_test, y_test, trigger, feature_names):
    d, a = cfg["data"], cfg["attack"]
    x_pool, y_pool = np.concatenate(clients_x), np.concatenate(clients_y)
    benign = a["target_label"]

    def poisoned(x, y):  # the malicious class with the trigger feature set; labelled benign
        out = x[y != benign].copy()
        out[:, trigger] = d["trigger_value"]
        return out

    source = BackdoorSource(
        benign,
        lambda: (poisoned(x_pool, y_pool), poisoned(x_test, y_test)),
        (x_pool, y_pool),
        (x_test, y_test),
    )
    bd_tr, bd_te = attack.backdoor_inputs(source)
    trigger_values, counts = np.unique(x_pool[:, trigger], return_counts=True)
    return FederatedTask(
        cfg["task"],
        tensor_samples(x_pool, y_pool),
        _client_ranges([len(y) for y in clients_y]),
        tensor_samples(x_test, y_test),
        _labelled(bd_tr, benign),
        _labelled(bd_te, benign),
        benign,
        partial(MLP, x_pool.shape[1], tuple(cfg["model"]["hidden"])),
        info={
            "train": len(y_pool),
            "test": len(y_test),
            "backdoor_train": len(bd_tr),
            "backdoor_test": len(bd_te),
            "trigger_column": trigger,
            "trigger_name": feature_names[trigger],
            # share of training rows at the trigger column's most common value (0 before standardising)
            "trigger_mode_value": float(trigger_values[counts.argmax()]),
            "trigger_mode_share_train": float(counts.max() / len(y_pool)),
        },
    )


def _split_table(cfg, rng, x, y):
    d = cfg["data"]
    order = rng.permutation(len(y))
    n_test = int(round(d["test_fraction"] * len(y)))
    te, tr = order[:n_test], order[n_test:]
    x_tr, x_te = tabular.standardise(x[tr], x[te]) if d["standardise"] else (x[tr], x[te])
    y_tr = y[tr]
    n_clients = cfg["federation"]["n_clients"]
    parts = (
        partition.dirichlet_partition(y_tr, n_clients, d["dirichlet_alpha"], rng)
        if d["dirichlet_alpha"]
        else partition.iid_partition(len(y_tr), n_clients, rng)
    )
    return [x_tr[p] for p in parts], [y_tr[p] for p in parts], x_te, y[te]


def build_phishing(cfg, rng: np.random.Generator, attack: CompositeAttack) -> FederatedTask:
    d = cfg["data"]
    n = d["n_features"]
    trigger = _trigger_column(d, n)
    if d["source"] == "synthetic":
        xs, ys, x_te, y_te = tabular.synthetic_phishing(
            rng,
            n_clients=cfg["federation"]["n_clients"],
            samples_per_client=d["samples_per_client"],
            n_test=d["n_test"],
            n_features=n,
            trigger=trigger,
            trigger_nonzero=d["trigger_nonzero"],
            signal=d["signal"],
            heterogeneity=d["heterogeneity"],
        )
        names = [f"x{i}" for i in range(n)]
    elif d["source"] == "table":
        if not d["path"]:
            raise ExperimentError("data.source = 'table' needs data.path (a CSV or Parquet file): --data PATH")
        if not Path(d["path"]).expanduser().is_file():
            raise DataMissing(
                "the phishing table",
                [f"a CSV/Parquet file with {n} numeric features and the label column {d['label_column']!r}"],
                [d["path"]],
                [
                    "--data PATH to your table",
                    "--set data.source='synthetic' (the Eq. 6 stand-in)",
                    "the spambase task (a real e-mail stand-in)",
                ],
            )
        x, y, names = tabular.read_table(Path(d["path"]).expanduser(), label=d["label_column"], n_features=n)
        xs, ys, x_te, y_te = _split_table(cfg, rng, x, y)
    else:
        raise ExperimentError(f"data.source = {d['source']!r}: choose 'synthetic' or 'table'")
    return _tabular_task(cfg, attack, xs, ys, x_te, y_te, trigger, names)


def build_spambase(cfg, rng: np.random.Generator, attack: CompositeAttack) -> FederatedTask:
    d = cfg["data"]
    target = Path(d["path"] or ".").expanduser()
    download_to = (target if not target.suffix else target.parent) if d["download"] else None
    x, y, names = tabular.load_spambase(d["path"] or None, download_to=download_to)
    trigger = _trigger_column(d, x.shape[1])
    xs, ys, x_te, y_te = _split_table(cfg, rng, x, y)
    return _tabular_task(cfg, attack, xs, ys, x_te, y_te, trigger, names)


BUILDERS = {"cifar10": build_cifar10, "twitter": build_twitter, "phishing": build_phishing, "spambase": build_spambase}


def build_task(cfg, seed: int, attack: CompositeAttack | None = None) -> FederatedTask:
    """The task of ``cfg`` with the backdoor samples of ``attack`` (default: the one ``cfg``
    describes); its data split and attacker sets depend only on ``seed``."""
    attack = build_attack(cfg["attack"]) if attack is None else attack
    attack.check_task(cfg["task"], MODALITY[cfg["task"]])
    return BUILDERS[cfg["task"]](cfg, np.random.default_rng([seed, 1]), attack)
