"""CIFAR-10 and Twitter end to end on fixture files in the real formats; the networks."""

import json

import numpy as np
import pytest
import torch

from deep_experiments import Run
from deep_experiments.models import LSTMClassifier, ResNet18, load_pretrained

from .conftest import SHARED, needs_shared
from .helpers import config

FED = [
    "federation.n_clients=6",
    "federation.clients_per_round=3",
    "federation.rounds=2",
    "federation.eval_every=1",
    "runtime.progress=false",
]


def _edge(data_root):
    return [f"attack.edge_case_dir='{data_root / 'edge'}'", "attack.verify_edge_case=false"]


@pytest.mark.parametrize("attack", ["edge_case", "pixel_pattern", "dba"])
def test_cifar10_pipeline(tmp_path, data_root, attack):
    cfg = config(
        "cifar10",
        "invariant",
        data=data_root,
        sets=[*FED, "model.width=8", f"attack.kind='{attack}'", "attack.pgd_eps=5.0", *_edge(data_root)],
    )
    summary = Run(cfg, tmp_path).run()
    records = json.loads((tmp_path / "records.json").read_text())
    assert [r["round"] for r in records] == [1, 2]
    assert all(0 <= r["acc_m"] <= 1 and 0 <= r["acc_b"] <= 1 and np.isfinite(r["loss"]) for r in records)
    assert summary["data"]["train"] == 100 and summary["data"]["test"] == 40
    # edge case: the 8 fixture Southwest test images; pixel pattern and DBA: the test images not of class 9,
    # stamped with the whole trigger
    if attack == "edge_case":
        assert summary["data"]["backdoor_test"] == 8
    else:
        from deep_experiments.data.cifar10 import load_cifar10

        assert summary["data"]["backdoor_test"] == int((load_cifar10(data_root)[3] != 9).sum())


@needs_shared
def test_cifar10_pipeline_with_the_real_southwest_images(tmp_path, data_root):
    cfg = config(
        "cifar10",
        "fedavg",
        data=data_root,
        sets=[*FED, "model.width=4", "federation.rounds=1", f"attack.edge_case_dir='{SHARED / 'edge_case'}'"],
    )
    summary = Run(cfg, tmp_path).run()
    assert summary["data"]["backdoor_train"] == 784 and summary["data"]["backdoor_test"] == 196


@pytest.mark.parametrize("glove", ["glove.txt", "glove.zip"])
def test_twitter_pipeline(tmp_path, data_root, glove):
    cfg = config(
        "twitter",
        "foolsgold",
        data=data_root / "leaf",
        sets=[*FED, f"data.glove='{data_root / glove}'", *_edge(data_root)],
    )
    run = Run(cfg, tmp_path)
    assert run.layout.numel == sum(p.numel() for n, p in run.model.named_parameters() if not n.startswith("embedding"))
    lstm = run.model.lstm
    assert (lstm.hidden_size, lstm.num_layers, lstm.input_size) == (200, 2, 300)
    embedding = run.model.embedding.weight.detach().clone()
    summary = run.run()
    assert torch.equal(run.model.embedding.weight, embedding)  # frozen: never trained, never aggregated
    assert summary["data"]["vocabulary"] > 10 and 0 <= summary["acc_b"] <= 1


def test_resnet18_layouts_and_parameter_count():
    # torchvision's resnet18 has 11,689,512 parameters with a 1000-class head
    assert sum(p.numel() for p in ResNet18(1000, "imagenet", 64).parameters()) == 11_689_512
    x = torch.randn(2, 3, 32, 32)
    assert ResNet18(10, "imagenet").eval()(x).shape == (2, 10)
    assert ResNet18(10, "cifar", 8).eval()(x).shape == (2, 10)


def test_pretrained_weights_load_except_the_head(tmp_path):
    source = ResNet18(1000, "imagenet", 64)
    torch.save(source.state_dict(), tmp_path / "r18.pth")
    target = ResNet18(10, "imagenet", 64)
    loaded = load_pretrained(target, tmp_path / "r18.pth")
    assert "conv1.weight" in loaded and not any(k.startswith("fc.") for k in loaded)
    assert torch.equal(target.layer3[1].conv2.weight, source.layer3[1].conv2.weight)
    assert target.fc.weight.shape == (10, 512)
    with pytest.raises(ValueError, match="layout='imagenet'"):
        load_pretrained(ResNet18(10, "cifar", 64), tmp_path / "r18.pth")


def test_lstm_ignores_padding_after_the_last_token():
    torch.manual_seed(0)
    model = LSTMClassifier(torch.randn(10, 6), hidden=5).eval()
    ids = torch.tensor([[3, 4, 5, 0, 0, 0]])
    padded_differently = torch.tensor([[3, 4, 5, 7, 8, 9]])
    lengths = torch.tensor([3])
    torch.testing.assert_close(model((ids, lengths)), model((padded_differently, lengths)))
    assert not torch.allclose(model((ids, lengths)), model((ids, torch.tensor([2]))))
