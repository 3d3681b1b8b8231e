import pytest
import torch
from torch import nn

import invariant_aggregator as ia


def model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4 * 4 * 4, 10))


def test_flatten_unflatten_roundtrip_and_assign():
    m = model()
    layout = ia.ParameterLayout.of(m)
    assert layout.numel == sum(p.numel() for p in m.parameters())
    v = layout.flatten(m)
    parts = layout.unflatten(v)
    for name, p in m.named_parameters():
        assert torch.equal(parts[name], p.detach())
    other = model()
    with torch.no_grad():
        for p in other.parameters():
            p.zero_()
    layout.assign(other, v)
    assert torch.equal(layout.flatten(other), v)


def test_server_step_with_add():
    m = model()
    layout = ia.ParameterLayout.of(m)
    before = layout.flatten(m).clone()
    g = torch.randn(layout.numel)
    layout.add_(m, g, alpha=-1.0)
    torch.testing.assert_close(layout.flatten(m), before - g)


def test_last_layer_and_masks_for_freezing_layers():
    m = model()
    names = ia.last_layer_names(m)
    assert names == ["3.weight", "3.bias"]
    layout = ia.ParameterLayout.of(m)
    mask = layout.mask(names)
    assert int(mask.sum()) == 4 * 4 * 4 * 10 + 10
    assert mask[-1] and not mask[0]
    only_last = ia.ParameterLayout.of(m, only=names)
    assert only_last.numel == int(mask.sum())
    torch.testing.assert_close(only_last.flatten(m), layout.flatten(m)[mask])


def test_frozen_parameters_are_not_in_the_layout():
    m = model()
    for p in m[0].parameters():
        p.requires_grad_(False)
    assert "0.weight" not in ia.ParameterLayout.of(m).names


def test_layout_errors():
    m = model()
    layout = ia.ParameterLayout.of(m)
    with pytest.raises(ia.AggregatorError, match="shape"):
        layout.unflatten(torch.zeros(3))
    with pytest.raises(ia.AggregatorError, match="no trainable parameter named"):
        ia.ParameterLayout.of(m, only=["nope"])
