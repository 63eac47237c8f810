"""torchvision <-> ours and timm <-> ours: the same outputs from the same weights.

Weights are random and every BatchNorm gets random statistics and affine terms,
so a key sent to the wrong module, a missing eps difference or a wrong padding
shows up in the logits.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mobilenet import create_model
from mobilenet.weights import (
    WeightsError,
    detect_format,
    from_state_dict,
    from_timm,
    from_torchvision,
    key_table,
    to_timm,
    to_torchvision,
)

torchvision_models = pytest.importorskip("torchvision.models")

TORCHVISION = [
    ("mobilenet_v2", "mobilenet_v2_100"),
    ("mobilenet_v3_large", "mobilenet_v3_large_100"),
    ("mobilenet_v3_small", "mobilenet_v3_small_100"),
]
TIMM = [
    ("mobilenetv1_100", "mobilenet_v1_100"),
    ("mobilenetv2_035", "mobilenet_v2_035"),
    ("mobilenetv2_100", "mobilenet_v2_100"),
    ("mobilenetv2_140", "mobilenet_v2_140"),
    ("mobilenetv3_large_075", "mobilenet_v3_large_075"),
    ("mobilenetv3_large_100", "mobilenet_v3_large_100"),
    ("mobilenetv3_small_075", "mobilenet_v3_small_075"),
    ("mobilenetv3_small_100", "mobilenet_v3_small_100"),
    ("tf_mobilenetv3_large_minimal_100", "mobilenet_v3_large_minimal_100"),
]


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Small forward passes: one thread avoids oversubscribing a shared CI machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# An odd size makes TF SAME padding asymmetric at every stride-2 conv.
INPUT = (2, 3, 113, 113)


def randomize(model: nn.Module, seed: int = 0) -> nn.Module:
    """Random BatchNorm statistics and affine terms, and linear layers at a scale
    that gives logits of order 1 (peers initialise them near zero)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.2)
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.2)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
            elif isinstance(m, nn.Linear):
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) / m.in_features**0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
    return model.eval()


def assert_same_logits(peer: nn.Module, ours: nn.Module) -> float:
    x = torch.randn(*INPUT, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        theirs, mine = peer(x), ours(x)
    scale = theirs.abs().max().item()
    diff = (theirs - mine).abs().max().item()
    assert scale > 0.1, "logits too small for the comparison to mean anything"
    assert diff <= 1e-5 * scale, f"max |logit diff| {diff:.3g} > 1e-5 x scale {scale:.3g}"
    return diff


@pytest.mark.parametrize("peer_name, ours_name", TORCHVISION)
def test_from_torchvision_same_logits(peer_name, ours_name):
    peer = randomize(getattr(torchvision_models, peer_name)())
    state = peer.state_dict()
    ours = from_torchvision(state, ours_name)
    assert ours.model_name == ours_name
    assert_same_logits(peer, ours)
    back = to_torchvision(ours)
    assert back.keys() == state.keys()
    assert all(torch.equal(back[k], state[k]) for k in state)


@pytest.mark.parametrize("peer_name, ours_name", TORCHVISION)
def test_ours_to_torchvision_strict_and_exact_round_trip(peer_name, ours_name):
    ours = randomize(create_model(ours_name), seed=3)
    peer = getattr(torchvision_models, peer_name)()
    peer.load_state_dict(to_torchvision(ours), strict=True)
    assert_same_logits(peer.eval(), ours)
    again = from_torchvision(to_torchvision(ours), ours_name)
    mine, theirs = ours.state_dict(), again.state_dict()
    assert mine.keys() == theirs.keys()
    assert all(torch.equal(mine[k], theirs[k]) for k in mine)


@pytest.mark.parametrize("peer_name, ours_name", TIMM)
def test_from_timm_same_logits(peer_name, ours_name):
    timm = pytest.importorskip("timm")
    peer = randomize(timm.create_model(peer_name, pretrained=False))
    state = peer.state_dict()
    ours = from_timm(state, ours_name, tf_ported=peer_name.startswith("tf_"))
    assert_same_logits(peer, ours)
    back = to_timm(ours)
    assert back.keys() == state.keys()
    assert all(torch.equal(back[k], state[k]) for k in state)
    timm.create_model(peer_name, pretrained=False).load_state_dict(back, strict=True)


def test_tf_port_needs_same_padding():
    """The tf_ port with our default symmetric padding computes something else:
    the padding option is what makes it match."""
    timm = pytest.importorskip("timm")
    peer = randomize(timm.create_model("tf_mobilenetv3_large_minimal_100", pretrained=False))
    wrong = from_timm(peer.state_dict(), "mobilenet_v3_large_minimal_100", tf_ported=True, padding="symmetric")
    x = torch.randn(*INPUT)
    with torch.no_grad():
        diff = (peer(x) - wrong(x)).abs().max().item()
        scale = peer(x).abs().max().item()
    assert diff > 1e-3 * scale


def test_name_is_inferred_from_shapes():
    timm = pytest.importorskip("timm")
    state = timm.create_model("mobilenetv2_140", pretrained=False).state_dict()
    assert from_timm(state).model_name == "mobilenet_v2_140"
    tv = torchvision_models.mobilenet_v3_small(num_classes=10).state_dict()
    model = from_torchvision(tv)
    assert model.model_name == "mobilenet_v3_small_100" and model.num_classes == 10


def test_detect_format_by_keys():
    ours = create_model("mobilenet_v2_100")
    assert detect_format(ours.state_dict()) == "mobilenet"
    assert detect_format(to_torchvision(ours)) == "torchvision"
    assert detect_format(to_timm(ours)) == "timm"
    with pytest.raises(WeightsError, match="not a MobileNet state dict"):
        detect_format({"fc.weight": torch.zeros(2, 2)})


def test_key_table_covers_every_tensor_once():
    for name in ("mobilenet_v1_050", "mobilenet_v2_075", "mobilenet_v3_large_100", "mobilenet_v3_small_minimal_100"):
        model = create_model(name)
        table = key_table(model, "timm")
        assert table.keys() == model.state_dict().keys()
        assert len(set(table.values())) == len(table)


def test_torchvision_has_no_v1():
    with pytest.raises(ValueError, match="torchvision has no MobileNetV1"):
        to_torchvision(create_model("mobilenet_v1_100"))


def test_wrong_model_for_the_weights_is_a_clear_error():
    state = to_timm(create_model("mobilenet_v2_100"))
    with pytest.raises(WeightsError, match="shape"):
        from_state_dict(state, "mobilenet_v2_050", bn_eps=1e-5)
    with pytest.raises(WeightsError, match="missing"):
        from_state_dict(state, "mobilenet_v3_large_100")


def test_old_checkpoint_without_num_batches_tracked_loads():
    ours = randomize(create_model("mobilenet_v2_100"))
    state = {k: v for k, v in to_torchvision(ours).items() if not k.endswith("num_batches_tracked")}
    again = from_torchvision(state, "mobilenet_v2_100")
    assert torch.equal(again.classifier.weight, ours.classifier.weight)


def test_timm_bn_eps_matters():
    """timm's non-tf models use BN eps 1e-5: building ours with our V3 default
    1e-3 instead gives measurably different logits, which from_timm avoids."""
    timm = pytest.importorskip("timm")
    peer = randomize(timm.create_model("mobilenetv3_small_100", pretrained=False))
    wrong = from_timm(peer.state_dict(), "mobilenet_v3_small_100", bn_eps=1e-3)
    x = torch.randn(*INPUT)
    with torch.no_grad():
        theirs = peer(x)
        diff = (theirs - wrong(x)).abs().max().item()
    assert diff > 1e-4 * theirs.abs().max().item()
