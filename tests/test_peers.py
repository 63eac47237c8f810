"""Our parameter counts equal the peers' models of the same architecture."""

from __future__ import annotations

import pytest

from mobilenet import create_model

torchvision_models = pytest.importorskip("torchvision.models")


def n_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize(
    "ours, theirs",
    [
        ("mobilenet_v2_100", "mobilenet_v2"),
        ("mobilenet_v3_large_100", "mobilenet_v3_large"),
        ("mobilenet_v3_small_100", "mobilenet_v3_small"),
    ],
)
def test_params_equal_torchvision(ours, theirs):
    assert n_params(create_model(ours)) == n_params(getattr(torchvision_models, theirs)())


@pytest.mark.parametrize(
    "ours, theirs",
    [
        ("mobilenet_v1_100", "mobilenetv1_100"),
        ("mobilenet_v2_035", "mobilenetv2_035"),
        ("mobilenet_v2_050", "mobilenetv2_050"),
        ("mobilenet_v2_075", "mobilenetv2_075"),
        ("mobilenet_v2_100", "mobilenetv2_100"),
        ("mobilenet_v2_140", "mobilenetv2_140"),
        ("mobilenet_v3_large_075", "mobilenetv3_large_075"),
        ("mobilenet_v3_large_100", "mobilenetv3_large_100"),
        ("mobilenet_v3_small_075", "mobilenetv3_small_075"),
        ("mobilenet_v3_small_100", "mobilenetv3_small_100"),
        ("mobilenet_v3_large_minimal_100", "tf_mobilenetv3_large_minimal_100"),
        ("mobilenet_v3_small_minimal_100", "tf_mobilenetv3_small_minimal_100"),
    ],
)
def test_params_equal_timm(ours, theirs):
    timm = pytest.importorskip("timm")
    assert n_params(create_model(ours)) == n_params(timm.create_model(theirs, pretrained=False))
