"""torchvision's SSDLite320-MobileNetV3-Large with random weights that detect something,
and coco128 images, for the detection tests."""

from __future__ import annotations

from functools import partial

import torch
from conftest import shared_path
from torch import nn


def coco_images(n: int, split: str = "val2017") -> list[torch.Tensor]:
    """The first ``n`` coco128 photos as [3, H, W] floats in [0, 1] (skips without the data)."""
    from torchvision.io import ImageReadMode, decode_image

    files = sorted(shared_path("coco128", "images", split).glob("*.jpg"))[:n]
    return [decode_image(str(f), mode=ImageReadMode.RGB).float() / 255 for f in files]


def torchvision_ssdlite(reduced_tail: bool = True, num_classes: int = 91) -> nn.Module:
    """torchvision's ssdlite320_mobilenet_v3_large (its builder sets reduced_tail=True
    when no backbone weights are given; built here for either tail)."""
    from torchvision.models import mobilenet_v3_large
    from torchvision.models.detection import _utils as det_utils
    from torchvision.models.detection.anchor_utils import DefaultBoxGenerator
    from torchvision.models.detection.ssd import SSD
    from torchvision.models.detection.ssdlite import SSDLiteHead, _mobilenet_extractor

    norm = partial(nn.BatchNorm2d, eps=0.001, momentum=0.03)
    backbone = _mobilenet_extractor(mobilenet_v3_large(norm_layer=norm, reduced_tail=reduced_tail), 6, norm)
    anchors = DefaultBoxGenerator([[2, 3] for _ in range(6)], min_ratio=0.2, max_ratio=0.95)
    channels = det_utils.retrieve_out_channels(backbone, (320, 320))
    head = SSDLiteHead(channels, anchors.num_anchors_per_location(), num_classes, norm)
    return SSD(backbone, anchors, (320, 320), num_classes, head=head, score_thresh=0.001, nms_thresh=0.55,
               detections_per_img=300, topk_candidates=300, image_mean=[0.5] * 3, image_std=[0.5] * 3)


@torch.no_grad()
def randomize(model: nn.Module, seed: int = 0) -> nn.Module:
    """Random weights and BatchNorm statistics; class logits spread out (std ~2) so that a
    few classes stand clear of the score threshold and NMS has real work."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.weight.copy_(torch.rand(m.num_features, generator=g) * 0.5 + 0.75)
            m.bias.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) * 1.5 + 0.5)
        elif isinstance(m, nn.Conv2d):
            fan_in = m.weight[0].numel()
            m.weight.copy_(torch.randn(m.weight.shape, generator=g) * (2.0 / fan_in) ** 0.5)
            if m.bias is not None:
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.5)
    return model.eval()


@torch.no_grad()
def settle(model: nn.Module, images: list[torch.Tensor], seed: int = 0) -> nn.Module:
    """Random weights whose BatchNorm statistics come from ``images`` (as training would leave
    them), so activations keep a trained network's scale; class biases spread so that
    detections clear the score threshold."""
    randomize(model, seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None  # a plain average over the batches
    model.train()
    model.forward_raw(model.preprocess(images))
    return model.eval()


@torch.no_grad()
def starting_model(name: str, images: list[torch.Tensor]) -> nn.Module:
    """A detector as training starts (our init), BatchNorm statistics from ``images``,
    class biases spread so that detections stand out: activations at a trained
    network's scale, where float32 differences between runtimes stay small."""
    from mobilenet import create_model

    model = create_model(name)
    g = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None
    model.train()
    model.forward_raw(model.preprocess(images))
    for p in model.head.cls:
        p.pw.bias.copy_(torch.randn(p.pw.bias.shape, generator=g) * 2)
    return model.eval()
