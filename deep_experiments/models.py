"""The three tasks' networks: ResNet-18 (ImageNet layout or the 32x32 variant), an LSTM over
frozen GloVe embeddings, and an MLP.

Parameter names of the ImageNet layout match torchvision's ``resnet18`` state dict, so its
published ImageNet weights (``resnet18-f37072fd.pth``) load with :func:`load_pretrained`
without torchvision.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from .errors import ExperimentError


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + (x if self.downsample is None else self.downsample(x)))


class ResNet18(nn.Module):
    """ResNet-18. ``layout="imagenet"``: 7x7 stride-2 stem and max-pool (torchvision's layout,
    the one the authors fine-tuned from ImageNet); ``layout="cifar"``: 3x3 stride-1 stem, no
    pool (the usual 32x32 variant). ``width`` is the first stage's channels (64 in both papers;
    smaller for CPU runs)."""

    def __init__(self, num_classes: int = 10, layout: str = "cifar", width: int = 64):
        super().__init__()
        if layout not in ("imagenet", "cifar"):
            raise ExperimentError(f"ResNet-18 layout must be 'imagenet' or 'cifar', got {layout!r}")
        if width < 1:
            raise ExperimentError(f"ResNet-18 width must be >= 1, got {width}")
        self.layout = layout
        if layout == "imagenet":
            self.conv1 = nn.Conv2d(3, width, 7, 2, 3, bias=False)
            self.maxpool = nn.MaxPool2d(3, 2, 1)
        else:
            self.conv1 = nn.Conv2d(3, width, 3, 1, 1, bias=False)
            self.maxpool = nn.Identity()
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        chans = [width, 2 * width, 4 * width, 8 * width]
        cin = width
        for i, c in enumerate(chans, 1):
            stride = 1 if i == 1 else 2
            setattr(self, f"layer{i}", nn.Sequential(BasicBlock(cin, c, stride), BasicBlock(c, c, 1)))
            cin = c
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def load_pretrained(model: nn.Module, path, skip=("fc.",)) -> list[str]:
    """Load a torchvision-format state dict (``torch.load(weights_only=True)``: tensors only,
    never arbitrary pickles), keeping the classifier head (``skip``) freshly initialised.
    Returns the loaded names; raises when a name or shape does not match."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise ExperimentError(
            f"pretrained weights {path} not found; give the torchvision ResNet-18 file "
            f"(resnet18-f37072fd.pth) with --set model.pretrained=PATH, or leave it empty"
        )
    state = torch.load(path, map_location="cpu", weights_only=True)
    state = state.get("state_dict", state) if isinstance(state, dict) else state
    own = model.state_dict()
    wanted = {k: v for k, v in state.items() if not k.startswith(tuple(skip))}
    missing = [k for k in own if k not in wanted and not k.startswith(tuple(skip))]
    unknown = [k for k in wanted if k not in own]
    badshape = [k for k in wanted if k in own and own[k].shape != wanted[k].shape]
    if missing or unknown or badshape:
        raise ExperimentError(
            f"{path} does not fit ResNet-18 ({model.layout} layout): missing {missing[:3]}, "
            f"unknown {unknown[:3]}, wrong shape {badshape[:3]}; the ImageNet weights need "
            f"model.layout='imagenet' and model.width=64"
        )
    model.load_state_dict(wanted, strict=False)
    return sorted(wanted)


class LSTMClassifier(nn.Module):
    """Frozen embeddings -> ``layers``-layer LSTM -> linear head on the last real token's state."""

    def __init__(self, embeddings: torch.Tensor, hidden: int = 200, layers: int = 2, num_classes: int = 2):
        super().__init__()
        self.embedding = nn.Embedding.from_pretrained(embeddings, freeze=True, padding_idx=0)
        self.lstm = nn.LSTM(embeddings.shape[1], hidden, num_layers=layers, batch_first=True)
        self.fc = nn.Linear(hidden, num_classes)

    def forward(self, batch):
        ids, lengths = batch
        out, _ = self.lstm(self.embedding(ids))
        last = out[torch.arange(len(ids), device=ids.device), lengths - 1]
        return self.fc(last)


class MLP(nn.Module):
    def __init__(self, n_features: int, hidden=(64, 32), num_classes: int = 2):
        super().__init__()
        layers, cin = [], n_features
        for h in hidden:
            layers += [nn.Linear(cin, h), nn.ReLU()]
            cin = h
        layers.append(nn.Linear(cin, num_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x)
