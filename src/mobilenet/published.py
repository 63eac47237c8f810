"""Published reference figures for every MobileNet variant, each with its source.

Pure data (no torch import). ``mobilenet info`` prints these beside our own
counts; tests compare against them. Only numbers found in the cited source are
recorded; a missing figure is ``None``, never a guess.

Conventions (``Published.convention``):

* ``"paper"``   -- as printed in the paper; the counting rules are not stated.
* ``"tf-slim"`` -- the TF-slim checkpoint tables (1001-class head with a
  background class). The rule for BatchNorm is not stated; our arithmetic
  (not a published fact): the V2 params match conv+FC weights with no BN terms
  (3.47M for 1.0), while the V1 params are ~0.03M higher than that, which
  fits BN beta + moving mean/var being counted.
* ``"pytorch"`` -- a PyTorch checkpoint's own count (BN weight+bias, 1000 classes).

Where the sources disagree (every case is kept as its own row):

* V1 paper Tables 6/7 vs TF-slim mobilenet_v1.md: 1.0-224 top-1 70.6 vs 70.9,
  params 4.2 vs 4.24; 0.75-224 MAdds 325 vs 317; 0.5-224 top-1 63.7 vs 63.3;
  0.25-224 top-1 50.6 vs 49.8; 1.0-192/160/128 top-1 69.1/67.2/64.4 vs
  70.0/68.0/65.2; 1.0-160 MAdds 290 vs 291. Table 9's 0.5-160 (60.2, 76M, 1.32M)
  vs TF-slim (59.1, 77M, 1.34M). The V2 paper (Table 4) lists V1 at 575M MAdds,
  not the 569M of the V1 paper.
* V2 paper Table 4 vs TF-slim README: 1.0 72.0 / 3.4M vs 71.8 / 3.47M;
  1.4 74.7 / 585M / 6.9M vs 75.0 / 582M / 6.06M. The V3 paper's Table 3 gives
  V2 0.35 as 60.8 / 59.2M / 1.6M vs TF-slim 0.35-224 60.3 / 59M / 1.66M.
* V3 final arXiv (v5): Table 3 and Table 9 disagree with each other
  (Large 1.0 219 vs 217 MAdds; Small 1.0 67.4 vs 67.5 top-1, 56 vs 57 MAdds).
  An early arXiv revision's Table 3 gave Small 1.0 66M MAdds / 2.9M params and
  Small 0.75 2.4M params (final: 56M / 2.5M and 2.0M); the TF-slim README keeps
  the early 66M / 2.9M and 2.4M, with Table 9's 217M and 67.5.
* The width-multiplier / resolution table of the V3 paper is **Table 9**
  (Appendix A of arXiv 1905.02244v5); the main text shows the same sweep only as
  Figure 7. Its transcription has no ``small 192/1.0`` row.
* The minimalistic V3 models appear only in the TF-slim README, not the paper.
* V4 (arXiv 2404.10518v2, Table 6, the ImageNet-1k table; its five rows checked
  against a transcription of v2, the stored paper pages giving only the abstract;
  TF Model Garden's top-1 from the first line of each imagenet_mobilenetv4_*_tpu.yaml):
  the paper's params for M, L and the hybrids are lower than what its own reference
  code (TF Model Garden) and timm build from the same block lists, which we build
  too: M 9.2 vs 9.72M, Hybrid-M 10.5 vs 11.07M, L 31.0 vs 32.59M, Hybrid-L 35.9 vs
  37.76M (S: 3.8 vs 3.77M, consistent); the MACs differ the same way (L 6.38G vs
  5.9G at 384). benchmarks/v4_param_gap.py recounts the built models under each
  hypothesis: BatchNorm, the classifier, the 1x1 convs to 960 or 1280, 1001 classes,
  layer scale, millions of 2^20, any set of up to 5 parameter groups left out (the
  same in every model): none gives all five figures. One 1024-wide last-stage block
  fewer gives M and Hybrid-M (9.19M and 1.05G; 10.55M and 1.24G) but no set of up to
  3 blocks gives L or Hybrid-L, so it is no general rule. The cause is not
  established; ``V4_PARAM_GAP`` keeps the numbers and each row's note says it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Published:
    model: str  # our registry name, e.g. "mobilenet_v2_100"
    resolution: int
    top1: float | None  # percent
    madds_m: float | None  # millions of multiply-adds, as published
    params_m: float | None  # millions, as published
    source: str
    convention: str  # "paper" | "tf-slim" | "pytorch"
    note: str = ""
    top5: float | None = None  # percent, where the source gives it
    pixel1_ms: float | None = None  # latency on one big core of a Pixel 1, where given


REGISTRY_NAMES: tuple[str, ...] = (
    *(f"mobilenet_v1_{w}" for w in ("025", "050", "075", "100")),
    *(f"mobilenet_v2_{w}" for w in ("035", "050", "075", "100", "130", "140")),
    *(f"mobilenet_v3_{c}_{w}" for c in ("large", "small") for w in ("035", "050", "075", "100", "125")),
    "mobilenet_v3_large_minimal_100",
    "mobilenet_v3_small_minimal_100",
    *(f"mobilenet_v4_{c}" for c in ("conv_small", "conv_small_050", "conv_small_035", "conv_medium", "conv_large",
                                    "hybrid_medium", "hybrid_medium_075", "hybrid_large", "hybrid_large_075")),
)
# V4 widths that neither the paper nor TF Model Garden publish a figure for (timm's own variants).
UNPUBLISHED: tuple[str, ...] = ("mobilenet_v4_conv_small_050", "mobilenet_v4_conv_small_035",
                                "mobilenet_v4_hybrid_medium_075", "mobilenet_v4_hybrid_large_075")

V1_PAPER = "MobileNetV1 paper (arXiv 1704.04861), Table {}"
V1_SLIM = "TF-slim tensorflow/models research/slim/nets/mobilenet_v1.md, Pre-trained Models table"
V2_PAPER_T4 = "MobileNetV2 paper (arXiv 1801.04381), Table 4"
V2_SLIM = "TF-slim tensorflow/models research/slim/nets/mobilenet/README.md, Mobilenet V2 Imagenet Checkpoints"
V3_PAPER_T3 = "MobileNetV3 paper (arXiv 1905.02244v5), Table 3"
V3_PAPER_T3_EARLY = "MobileNetV3 paper, early arXiv revision (v1 abstract), Table 3"
V3_PAPER_T9 = "MobileNetV3 paper (arXiv 1905.02244v5), Appendix A, Table 9"
V4_PAPER = "MobileNetV4 paper (arXiv 2404.10518v2), Table 6 (ImageNet-1k classification)"
V3_SLIM = "TF-slim tensorflow/models research/slim/nets/mobilenet/README.md, Mobilenet V3 Imagenet Checkpoints"

# Google's TF checkpoints behind the TF-slim rows (TensorFlow format, not PyTorch), as linked from
# the two READMEs. w is written as in the file names: v1 1.0 0.75 0.5 0.25; v2 1.4 1.3 1.0 0.75
# 0.5 0.35; v3 1.0 0.75 with config large/small (8-bit files end _uint8 instead of _float).
TF_CHECKPOINT_URLS = {
    "v1": "http://download.tensorflow.org/models/mobilenet_v1_2018_02_22/mobilenet_v1_{w}_{r}.tgz",
    "v2": "https://storage.googleapis.com/mobilenet_v2/checkpoints/mobilenet_v2_{w}_{r}.tgz",
    "v3": "https://storage.googleapis.com/mobilenet_v3/checkpoints/v3-{config}_224_{w}_float.tgz",
    "v3_minimal": "https://storage.googleapis.com/mobilenet_v3/checkpoints/v3-{config}-minimalistic_224_1.0_float.tgz",
}


def _p(model: str, res: int, top1, madds, params, source: str, conv: str, note: str = "", top5=None, ms=None):
    return Published(model, res, top1, madds, params, source, conv, note, top5, ms)


_V1 = "mobilenet_v1_{}".format
_V2 = "mobilenet_v2_{}".format
_L = "mobilenet_v3_large_{}".format
_S = "mobilenet_v3_small_{}".format

# -- MobileNetV1 --------------------------------------------------------------
# TF-slim mobilenet_v1.md, float checkpoints: (width, res, MACs M, params M, top-1, top-5)
_V1_SLIM_ROWS = (
    ("100", 224, 569, 4.24, 70.9, 89.9), ("100", 192, 418, 4.24, 70.0, 89.2),
    ("100", 160, 291, 4.24, 68.0, 87.7), ("100", 128, 186, 4.24, 65.2, 85.8),
    ("075", 224, 317, 2.59, 68.4, 88.2), ("075", 192, 233, 2.59, 67.2, 87.3),
    ("075", 160, 162, 2.59, 65.3, 86.0), ("075", 128, 104, 2.59, 62.1, 83.9),
    ("050", 224, 150, 1.34, 63.3, 84.9), ("050", 192, 110, 1.34, 61.7, 83.6),
    ("050", 160, 77, 1.34, 59.1, 81.9), ("050", 128, 49, 1.34, 56.3, 79.4),
    ("025", 224, 41, 0.47, 49.8, 74.2), ("025", 192, 34, 0.47, 47.7, 72.3),
    ("025", 160, 21, 0.47, 45.5, 70.3), ("025", 128, 14, 0.47, 41.5, 66.3),
)
_V1_ROWS = (
    # Table 6, width multiplier at 224; Table 7, resolution at width 1.0.
    _p(_V1("100"), 224, 70.6, 569, 4.2, V1_PAPER.format(6), "paper"),
    _p(_V1("075"), 224, 68.4, 325, 2.6, V1_PAPER.format(6), "paper"),
    _p(_V1("050"), 224, 63.7, 149, 1.3, V1_PAPER.format(6), "paper"),
    _p(_V1("025"), 224, 50.6, 41, 0.5, V1_PAPER.format(6), "paper"),
    _p(_V1("100"), 224, 70.6, 569, 4.2, V1_PAPER.format(7), "paper"),
    _p(_V1("100"), 192, 69.1, 418, 4.2, V1_PAPER.format(7), "paper"),
    _p(_V1("100"), 160, 67.2, 290, 4.2, V1_PAPER.format(7), "paper"),
    _p(_V1("100"), 128, 64.4, 186, 4.2, V1_PAPER.format(7), "paper"),
    _p(_V1("050"), 160, 60.2, 76, 1.32, V1_PAPER.format(9), "paper", "0.50 MobileNet-160 vs AlexNet/SqueezeNet"),
    _p(_V1("100"), 224, 70.6, 575, 4.2, V2_PAPER_T4, "paper",
       "V1 as quoted by the V2 paper: 575M MAdds vs 569M in the V1 paper; Pixel-1 CPU 113 ms", ms=113),
    *(_p(_V1(w), r, t1, macs, par, V1_SLIM, "tf-slim", top5=t5) for w, r, macs, par, t1, t5 in _V1_SLIM_ROWS),
)

# -- MobileNetV2 --------------------------------------------------------------
# TF-slim README: (width, res, MACs M, params M, top-1, top-5, Pixel-1 ms). 1.4 and 1.3 only at 224.
_V2_SLIM_ROWS = (
    ("140", 224, 582, 6.06, 75.0, 92.5, 138.0), ("130", 224, 509, 5.34, 74.4, 92.1, 123.0),
    ("100", 224, 300, 3.47, 71.8, 91.0, 73.8), ("100", 192, 221, 3.47, 70.7, 90.1, 55.1),
    ("100", 160, 154, 3.47, 68.8, 89.0, 40.2), ("100", 128, 99, 3.47, 65.3, 86.9, 27.6),
    ("100", 96, 56, 3.47, 60.3, 83.2, 17.6),
    ("075", 224, 209, 2.61, 69.8, 89.6, 55.8), ("075", 192, 153, 2.61, 68.7, 88.9, 41.6),
    ("075", 160, 107, 2.61, 66.4, 87.3, 30.4), ("075", 128, 69, 2.61, 63.2, 85.3, 21.9),
    ("075", 96, 39, 2.61, 58.8, 81.6, 14.2),
    ("050", 224, 97, 1.95, 65.4, 86.4, 28.7), ("050", 192, 71, 1.95, 63.9, 85.4, 21.1),
    ("050", 160, 50, 1.95, 61.0, 83.2, 14.9), ("050", 128, 32, 1.95, 57.7, 80.8, 9.9),
    ("050", 96, 18, 1.95, 51.2, 75.8, 6.4),
    ("035", 224, 59, 1.66, 60.3, 82.9, 19.7), ("035", 192, 43, 1.66, 58.2, 81.2, 14.6),
    ("035", 160, 30, 1.66, 55.7, 79.1, 10.5), ("035", 128, 20, 1.66, 50.8, 75.0, 6.9),
    ("035", 96, 11, 1.66, 45.5, 70.4, 4.5),
)
_V2_ROWS = (
    _p(_V2("100"), 224, 72.0, 300, 3.4, V2_PAPER_T4, "paper", "Pixel-1 CPU 75 ms", ms=75),
    _p(_V2("140"), 224, 74.7, 585, 6.9, V2_PAPER_T4, "paper",
       "TF-slim lists 1.4-224 as 75.0 / 582M / 6.06M; Pixel-1 CPU 143 ms", ms=143),
    _p(_V2("100"), 224, 72.0, 300, 3.4, V3_PAPER_T3, "paper", "'V2 1.0' baseline in the V3 paper", ms=64),
    _p(_V2("035"), 224, 60.8, 59.2, 1.6, V3_PAPER_T3, "paper",
       "'V2 0.35' baseline in the V3 paper; TF-slim says 60.3 top-1", ms=16.6),
    *(_p(_V2(w), r, t1, macs, par, V2_SLIM, "tf-slim", top5=t5, ms=ms)
      for w, r, macs, par, t1, t5, ms in _V2_SLIM_ROWS),
)

# -- MobileNetV3 --------------------------------------------------------------
# Table 9 (Appendix A, arXiv v5): (config, width, res, top-1, MAdds M, params M, Pixel-1 ms)
_V3_T9_ROWS = (
    ("large", "125", 224, 76.6, 356, 7.5, 77.0), ("large", "100", 224, 75.2, 217, 5.4, 51.2),
    ("large", "075", 224, 73.3, 155, 4.0, 39.8), ("large", "050", 224, 68.8, 69, 2.6, 21.7),
    ("large", "035", 224, 64.2, 40, 2.2, 15.1), ("large", "100", 256, 76.0, 282, 5.4, 65.6),
    ("large", "100", 192, 73.7, 160, 5.4, 38.0), ("large", "100", 160, 71.7, 112, 5.4, 27.8),
    ("large", "100", 128, 68.4, 73, 5.4, 17.8), ("large", "100", 96, 63.3, 43, 5.4, 12.5),
    ("small", "125", 224, 70.4, 91, 3.6, 23.6), ("small", "100", 224, 67.5, 57, 2.5, 15.8),
    ("small", "075", 224, 65.4, 44, 2.0, 12.8), ("small", "050", 224, 58.0, 21, 1.6, 7.7),
    ("small", "035", 224, 49.8, 12, 1.4, 5.7), ("small", "100", 256, 68.5, 74, 2.5, 20.0),
    ("small", "100", 160, 62.8, 30, 2.5, 8.6), ("small", "100", 128, 57.3, 20, 2.5, 5.8),
    ("small", "100", 96, 51.7, 12, 2.5, 4.4),
)
_V3_ROWS = (
    *(_p(f"mobilenet_v3_{c}_{w}", r, t1, madds, par, V3_PAPER_T9, "paper", ms=ms)
      for c, w, r, t1, madds, par, ms in _V3_T9_ROWS),
    _p(_L("100"), 224, 75.2, 219, 5.4, V3_PAPER_T3, "paper", "Table 9 says 217M MAdds", ms=51),
    _p(_L("075"), 224, 73.3, 155, 4.0, V3_PAPER_T3, "paper", ms=39),
    _p(_S("100"), 224, 67.4, 56, 2.5, V3_PAPER_T3, "paper", "Table 9 says 67.5 / 57M", ms=15.8),
    _p(_S("075"), 224, 65.4, 44, 2.0, V3_PAPER_T3, "paper", ms=12.8),
    _p(_L("100"), 224, 75.2, 219, 5.4, V3_PAPER_T3_EARLY, "paper", "superseded; latencies differ (P-1 66 ms)", ms=66),
    _p(_L("075"), 224, 73.3, 155, 4.0, V3_PAPER_T3_EARLY, "paper", "superseded", ms=50),
    _p(_S("100"), 224, 67.4, 66, 2.9, V3_PAPER_T3_EARLY, "paper", "superseded; final v5 says 56M / 2.5M", ms=21.3),
    _p(_S("075"), 224, 65.4, 44, 2.4, V3_PAPER_T3_EARLY, "paper", "superseded; final v5 says 2.0M", ms=18),
    _p(_L("100"), 224, 75.2, 217, 5.4, V3_SLIM, "tf-slim", "float; 8-bit: 73.9", ms=51.2),
    _p(_L("075"), 224, 73.3, 155, 4.0, V3_SLIM, "tf-slim", "float", ms=39.8),
    _p(_S("100"), 224, 67.5, 66, 2.9, V3_SLIM, "tf-slim", "float; 8-bit: 64.9; paper v5 says 56-57M / 2.5M", ms=15.8),
    _p(_S("075"), 224, 65.4, 44, 2.4, V3_SLIM, "tf-slim", "float; paper v5 says 2.0M params", ms=12.8),
    _p(_L("minimal_100"), 224, 72.3, 209, 3.9, V3_SLIM, "tf-slim", "minimalistic, float; 8-bit: 71.3", ms=44.1),
    _p(_S("minimal_100"), 224, 61.9, 65, 2.0, V3_SLIM, "tf-slim", "minimalistic, float", ms=12.2),
)

# -- MobileNetV4 --------------------------------------------------------------
# (config, res, top-1, MACs M, params M) as Table 6 prints them (0.2G, 1.0G, ...); and the top-1 on
# the first line of TF Model Garden's training config ("# Top-1 Acc: 82.92% @ 500 epoches").
_V4_PAPER_ROWS = (
    ("conv_small", 224, 73.8, 200, 3.8), ("conv_medium", 256, 79.9, 1000, 9.2),
    ("conv_large", 384, 82.9, 5900, 31.0), ("hybrid_medium", 256, 80.7, 1200, 10.5),
    ("hybrid_large", 384, 83.4, 7200, 35.9),
)
_V4_TFMG_TOP1 = {"conv_small": 73.8, "conv_medium": 79.9, "conv_large": 82.92, "hybrid_medium": 80.7,
                 "hybrid_large": 83.7}
# What timm and TF Model Garden build (1000 classes, BN counted), beside the paper's figure: see the docstring.
V4_PARAM_GAP = {"conv_small": (3_774_024, 3.8), "conv_medium": (9_715_512, 9.2), "conv_large": (32_590_864, 31.0),
                "hybrid_medium": (11_074_648, 10.5), "hybrid_large": (37_764_624, 35.9)}
_V4_GAP_NOTE = ("timm and TF Model Garden build {built:.2f}M from the released block list; not BN, head, "
                "classifier, 1001 classes or layer scale: cause unknown (benchmarks/v4_param_gap.py)")
_V4_ROWS = tuple(
    _p(f"mobilenet_v4_{c}", r, t1, madds, par, V4_PAPER, "paper",
       f"TF Model Garden's imagenet_mobilenetv4_{c}_tpu.yaml reports {_V4_TFMG_TOP1[c]}; "
       + ("params as built" if c == "conv_small" else _V4_GAP_NOTE.format(built=V4_PARAM_GAP[c][0] / 1e6)))
    for c, r, t1, madds, par in _V4_PAPER_ROWS
)

PUBLISHED: tuple[Published, ...] = (*_V1_ROWS, *_V2_ROWS, *_V3_ROWS, *_V4_ROWS)


def published_for(model: str, resolution: int | None = None) -> list[Published]:
    """Every published row for ``model`` (at ``resolution`` if given); [] if none."""
    return [p for p in PUBLISHED if p.model == model and (resolution is None or p.resolution == resolution)]


# -- Official PyTorch checkpoints ---------------------------------------------
@dataclass(frozen=True)
class WeightSource:
    model: str  # our registry name
    tag: str  # torchvision enum member or timm pretrained tag
    source: str  # "torchvision" | "timm"
    url: str  # the file the library actually downloads
    sha256_or_prefix: str  # of ``url``; 8 hex chars = prefix only, "" = not found
    top1: float | None  # ImageNet-1k val, percent, at ``crop``
    top5: float | None
    licence: str
    resize: int  # shorter side before the centre crop
    crop: int
    interpolation: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    original_name: str  # the builder's own name, e.g. "mobilenetv2_100.ra_in1k"
    num_params: int | None = None
    gflops: float | None = None
    recipe: str = ""
    legacy_url: str = ""  # timm's older GitHub-release .pth; its -xxxxxxxx suffix is a sha256 prefix
    note: str = ""


_TV = "https://download.pytorch.org/models/"
_TV_LIC = "BSD-3-Clause (torchvision; no separate weights licence stated)"
_TV_MEAN, _TV_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
_TV_RECIPE_V2 = "https://github.com/pytorch/vision/issues/3995#new-recipe-with-reg-tuning"
_TV_V3_RECIPE = "https://github.com/pytorch/vision/tree/main/references/classification#mobilenetv3-large--small"
_INC = (0.5, 0.5, 0.5)  # timm IMAGENET_INCEPTION_MEAN / _STD
_GH = "https://github.com/rwightman/pytorch-image-models/releases/download/v0.1-weights/"
_HF = "https://huggingface.co/timm/{}/resolve/main/model.safetensors"
_TIMM_CSV = "timm results/results-imagenet.csv"
_TIMM_README = "timm README 'What's New'"


def _timm(model, name, top1, top5, legacy, sha="", mean=_TV_MEAN, std=_TV_STD, interp="bicubic",
          crop_pct=0.875, note=""):
    """A timm entry at 224; resize = floor(224 / crop_pct), as timm's eval transform does."""
    if legacy and not legacy.startswith("http"):
        legacy = _GH + legacy
    return WeightSource(model, name.split(".", 1)[1], "timm", _HF.format(name), sha, top1, top5, "apache-2.0",
                        int(224 / crop_pct), 224, interp, mean, std, name, legacy_url=legacy, note=note)


WEIGHT_SOURCES: tuple[WeightSource, ...] = (
    # torchvision 0.29 torchvision/models/mobilenetv2.py, mobilenetv3.py (Weights meta). "_ops" is GFLOPS.
    # The -xxxxxxxx in each URL is the sha256 prefix torch.hub checks; the full digests were not found.
    WeightSource(_V2("100"), "IMAGENET1K_V1", "torchvision", _TV + "mobilenet_v2-b0353104.pth", "b0353104",
                 71.878, 90.286, _TV_LIC, 256, 224, "bilinear", _TV_MEAN, _TV_STD, "mobilenet_v2",
                 3504872, 0.301, "https://github.com/pytorch/vision/tree/main/references/classification#mobilenetv2"),
    WeightSource(_V2("100"), "IMAGENET1K_V2", "torchvision", _TV + "mobilenet_v2-7ebf99e0.pth", "7ebf99e0",
                 72.154, 90.822, _TV_LIC, 232, 224, "bilinear", _TV_MEAN, _TV_STD, "mobilenet_v2",
                 3504872, 0.301, _TV_RECIPE_V2, note="torchvision DEFAULT"),
    WeightSource(_L("100"), "IMAGENET1K_V1", "torchvision", _TV + "mobilenet_v3_large-8738ca79.pth", "8738ca79",
                 74.042, 91.340, _TV_LIC, 256, 224, "bilinear", _TV_MEAN, _TV_STD, "mobilenet_v3_large",
                 5483032, 0.217, _TV_V3_RECIPE),
    WeightSource(_L("100"), "IMAGENET1K_V2", "torchvision", _TV + "mobilenet_v3_large-5c1a4163.pth", "5c1a4163",
                 75.274, 92.566, _TV_LIC, 232, 224, "bilinear", _TV_MEAN, _TV_STD, "mobilenet_v3_large",
                 5483032, 0.217, _TV_RECIPE_V2, note="torchvision DEFAULT"),
    WeightSource(_S("100"), "IMAGENET1K_V1", "torchvision", _TV + "mobilenet_v3_small-047dcff4.pth", "047dcff4",
                 67.668, 87.402, _TV_LIC, 256, 224, "bilinear", _TV_MEAN, _TV_STD, "mobilenet_v3_small",
                 2542856, 0.057, _TV_V3_RECIPE, note="torchvision DEFAULT"),
    # timm 1.0.31 pretrained_cfg (mobilenetv3.py, efficientnet.py); timm downloads model.safetensors from
    # the HF hub before the legacy URL. Full sha256 = Git-LFS digest shown on the hub page; "" = not found.
    # top-1/top-5 from timm's results csv at 224 unless the note says otherwise.
    _timm(_V1("100"), "mobilenetv1_100.ra4_e3600_r224_in1k", 75.382, 92.312, "", mean=_INC, std=_INC,
          note=f"{_TIMM_README} (July 2024); 76.094 / 93.004 at 256 (test_crop_pct 0.95); "
          "4.23M params; ReLU6 (as TF-slim; the paper says ReLU); "
          "mobilenetv1_100h (extra head conv) is not paper-exact, skipped"),
    _timm(_V2("050"), "mobilenetv2_050.lamb_in1k", 65.950, 86.088, "mobilenetv2_050-3d30d450.pth",
          note=f"{_TIMM_CSV}; 1.97M params"),
    _timm(_V2("100"), "mobilenetv2_100.ra_in1k", 72.976, 91.010, "mobilenetv2_100_ra-b33bc2c4.pth",
          sha="55ea4fb3a96010b933710ebf44fc965b070d5cd054d3f35e44f2d1320b4a714e", note=f"{_TIMM_CSV}; 3.50M params"),
    _timm(_V2("140"), "mobilenetv2_140.ra_in1k", 76.520, 92.986, "mobilenetv2_140_ra-21a4e913.pth",
          note=f"{_TIMM_CSV}; 6.11M params"),
    _timm(_L("100"), "mobilenetv3_large_100.ra_in1k", 75.766, 92.538, "mobilenetv3_large_100_ra-f55367f5.pth",
          sha="f425af34cc1cead2b5d6211f789a1f30b94835dc32f9c0fcc5a916e4fd2dde85", note=f"{_TIMM_CSV}; 5.48M params"),
    _timm(_L("100"), "mobilenetv3_large_100.ra4_e3600_r224_in1k", 76.31, None, "", mean=_INC, std=_INC,
          crop_pct=0.95, note=f"{_TIMM_README} (Sept 2024); 77.16 at 256 (test_crop_pct 1.0)"),
    _timm(_L("100"), "mobilenetv3_large_100.miil_in21k_ft_in1k", 77.918, 92.914,
          "https://github.com/rwightman/pytorch-image-models/releases/download/v0.1-tresnet/"
          "mobilenetv3_large_100_1k_miil_78_0-66471c13.pth", mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0),
          interp="bilinear", note=f"{_TIMM_CSV}; ImageNet-21k pretrain (Alibaba MIIL) then 1k fine-tune"),
    _timm(_S("050"), "mobilenetv3_small_050.lamb_in1k", 57.910, 80.180, "mobilenetv3_small_050_lambc-4b7bbe87.pth",
          sha="2e3f6937afd4b3704450518a2710168775d6c70ebfb7a0e9aaf06200c6fbe0c4", note=f"{_TIMM_CSV}; 1.59M params"),
    _timm(_S("075"), "mobilenetv3_small_075.lamb_in1k", 65.234, 85.446, "mobilenetv3_small_075_lambc-384766db.pth",
          sha="c56c9ffc148d94301a477d5678e6802d0251b22ff23376c396eacd737edad0b7", note=f"{_TIMM_CSV}; 2.04M params"),
    _timm(_S("100"), "mobilenetv3_small_100.lamb_in1k", 67.656, 87.636, "mobilenetv3_small_100_lamb-266a294c.pth",
          note=f"{_TIMM_CSV}; 2.54M params; hub's pytorch_model.bin sha256 c66054da8dbd3453fecb5c3c842faef8"
          "e4e1fcdc71d68208cb577388ae191c5f (the .safetensors digest was not found)"),
    # tf_*: Google's TF-slim checkpoints ported by timm; need TF 'SAME' padding and BN eps 1e-3 to match.
    *(_timm(m, f"tf_mobilenetv3_{n}.in1k", t1, t5, f"tf_mobilenetv3_{n}-{h}.pth", mean=_INC, std=_INC,
            interp="bilinear", note=f"{_TIMM_CSV}; port of Google's TF checkpoint; {p}M params")
      for m, n, t1, t5, h, p in (
          (_L("075"), "large_075", 73.432, 91.352, "150ee8b0", 3.99),
          (_L("100"), "large_100", 75.516, 92.594, "427764d5", 5.48),
          (_L("minimal_100"), "large_minimal_100", 72.258, 90.638, "8596ae28", 3.92),
          (_S("075"), "small_075", 65.728, 86.126, "da427f52", 2.04),
          (_S("100"), "small_100", 67.918, 87.674, "37f49e2b", 2.54),
          (_S("minimal_100"), "small_minimal_100", 62.890, 84.240, "922a7843", 2.04),
      )),
)


def _timm_v4(model: str, tag: str, res: int, crop_pct: float, inception: bool = False, note: str = "") -> WeightSource:
    """A timm 1.0.31 ``mobilenetv4_*`` pretrained_cfg: bicubic, its own input size and crop; resize =
    floor(res / crop_pct) as timm's eval transform. No sha256 or top-1 is recorded for these here."""
    mean, std = (_INC, _INC) if inception else (_TV_MEAN, _TV_STD)
    theirs = model.replace("mobilenet_v4_", "mobilenetv4_")
    name = f"{theirs}.{tag}"
    return WeightSource(model, tag, "timm", _HF.format(name), "", None, None, "apache-2.0", int(res / crop_pct),
                        res, "bicubic", mean, std, name, note=note or "timm 1.0.31 default_cfgs")


_IN12K = "ImageNet-12k (11821 classes), timm 1.0.31 default_cfgs"
_FT12K = "ImageNet-12k pretrain, ImageNet-1k fine-tune, timm 1.0.31 default_cfgs"
V4_WEIGHT_SOURCES: tuple[WeightSource, ...] = (
    # timm's default tag of each model first: default_tag() keeps the first among equals.
    _timm_v4("mobilenet_v4_conv_small", "e2400_r224_in1k", 224, 0.875),
    _timm_v4("mobilenet_v4_conv_small", "e1200_r224_in1k", 224, 0.875),
    _timm_v4("mobilenet_v4_conv_small", "e3600_r256_in1k", 256, 0.95, inception=True),
    _timm_v4("mobilenet_v4_conv_small_050", "e3000_r224_in1k", 224, 0.875, inception=True),
    _timm_v4("mobilenet_v4_conv_medium", "e500_r256_in1k", 256, 0.95),
    _timm_v4("mobilenet_v4_conv_medium", "e500_r224_in1k", 224, 0.95),
    _timm_v4("mobilenet_v4_conv_medium", "e250_r384_in12k_ft_in1k", 384, 0.95, note=_FT12K),
    _timm_v4("mobilenet_v4_conv_medium", "e180_r384_in12k", 384, 1.0, note=_IN12K),
    _timm_v4("mobilenet_v4_conv_medium", "e180_ad_r384_in12k", 384, 1.0, note=_IN12K),
    _timm_v4("mobilenet_v4_conv_medium", "e250_r384_in12k", 384, 1.0, note=_IN12K),
    _timm_v4("mobilenet_v4_conv_large", "e600_r384_in1k", 384, 0.95),
    _timm_v4("mobilenet_v4_conv_large", "e500_r256_in1k", 256, 0.95),
    _timm_v4("mobilenet_v4_hybrid_medium", "ix_e550_r256_in1k", 256, 0.95),
    _timm_v4("mobilenet_v4_hybrid_medium", "e200_r256_in12k_ft_in1k", 256, 0.95, note=_FT12K),
    _timm_v4("mobilenet_v4_hybrid_medium", "ix_e550_r384_in1k", 384, 0.95),
    _timm_v4("mobilenet_v4_hybrid_medium", "e500_r224_in1k", 224, 0.95),
    _timm_v4("mobilenet_v4_hybrid_medium", "e200_r256_in12k", 256, 0.95, note=_IN12K),
    _timm_v4("mobilenet_v4_hybrid_large", "ix_e600_r384_in1k", 384, 0.95),
    _timm_v4("mobilenet_v4_hybrid_large", "e600_r384_in1k", 384, 0.95),
)
WEIGHT_SOURCES = (*WEIGHT_SOURCES, *V4_WEIGHT_SOURCES)


def weights_for(model: str) -> list[WeightSource]:
    """Every official PyTorch checkpoint recorded for ``model``."""
    return [w for w in WEIGHT_SOURCES if w.model == model]


# -- Dense prediction (segmentation) --------------------------------------------
@dataclass(frozen=True)
class PublishedDense:
    """A published segmentation figure and the configuration of ours it describes:
    ``create_model(model, num_classes=classes, **options)`` on a ``height`` x ``width`` input."""

    model: str  # our registry name
    options: tuple[tuple[str, object], ...]  # create_model options, as (name, value) pairs
    classes: int
    height: int
    width: int
    miou: float | None
    madds_b: float | None  # billions of multiply-adds, as published
    params_m: float | None
    source: str
    note: str = ""


V3_PAPER_T7 = "MobileNetV3 paper (arXiv 1905.02244v5), Section 6.3, Table 7 (Cityscapes val, 19 classes)"
V2_PAPER_T7 = "MobileNetV2 paper (arXiv 1801.04381v4), Section 6.3, Table 7 (PASCAL VOC 2012 val, OS 16)"
TV_SEG = "torchvision 0.29 models/segmentation (COCO_WITH_VOC_LABELS_V1 meta; _ops is GFLOPS = GMACs here)"
_RF2_NOTE = ("the paper's RF2 also halves the C4 block's expansion (672->336, Small 288->144): with that our "
             "count gives {} (ours: torchvision's reduced_tail, C4 expansion kept)")
_V2_MOBILE = (("aspp_rates", ()), ("head_conv", False), ("tap", "last_block"))
_V2_ASPP = (("aspp_rates", (6, 12, 18)), ("head_conv", False), ("tap", "last_block"))

DENSE_PUBLISHED: tuple[PublishedDense, ...] = (
    PublishedDense("lraspp_mobilenet_v3_large", (), 21, 520, 520, 57.9, 2.086, 3.221538, TV_SEG,
                   "on COCO val2017 (VOC labels); torchvision's weights"),
    PublishedDense("deeplabv3_mobilenet_v3_large", (("aux", True),), 21, 520, 520, 60.3, 10.452, 11.029328, TV_SEG,
                   "on COCO val2017 (VOC labels); params and GMACs with the auxiliary head"),
    PublishedDense("deeplabv3_mobilenet_v2_100", (), 21, 512, 512, 75.32, 2.75, 2.11, V2_PAPER_T7,
                   "MNet V2*, no ASPP (the on-device candidate); MAdds fit a 513x513 input (DeepLab's crop)"),
    PublishedDense("deeplabv3", (("backbone", "mobilenet_v2_100"), *_V2_ASPP), 21, 512, 512, 75.70, 5.8, 4.52,
                   V2_PAPER_T7, "MNet V2* with ASPP (rates 6/12/18 at OS 16, DeepLabv3's)"),
    PublishedDense("deeplabv3", (("backbone", "mobilenet_v1_100"), ("aspp_rates", (6, 12, 18)),
                                 ("head_conv", False)), 21, 512, 512, 75.29, 14.25, 11.15, V2_PAPER_T7,
                   "MNet V1 with ASPP"),
    PublishedDense("deeplabv3_mobilenet_v2_100", (), 19, 1024, 2048, 72.84, 21.29, 2.11, V3_PAPER_T7,
                   "row 1: V2, R-ASPP (the V2 paper's head), F 256"),
    PublishedDense("deeplabv3_mobilenet_v2_100", (("reduced_tail", True),), 19, 1024, 2048, 72.56, 13.68, 1.15,
                   V3_PAPER_T7, "row 2: V2, RF2, R-ASPP"),
    PublishedDense("lraspp", (("backbone", "mobilenet_v2_100"), ("reduced_tail", True), ("tap", "last_block")),
                   19, 1024, 2048, 72.74, 12.57, 0.98, V3_PAPER_T7,
                   "row 4: V2, RF2, LR-ASPP F 128 on the last block (160 channels; the V2 paper's tap): with the "
                   "1x1 conv to 640 tapped instead ours has 1.211M"),
    PublishedDense("deeplabv3", (("backbone", "mobilenet_v3_large_100"), ("aspp_rates", ()), ("head_conv", False)),
                   19, 1024, 2048, 72.64, 18.43, 3.60, V3_PAPER_T7, "row 5: V3, R-ASPP, F 256"),
    PublishedDense("deeplabv3", (("backbone", "mobilenet_v3_large_100"), ("aspp_rates", ()), ("head_conv", False),
                                 ("reduced_tail", True)), 19, 1024, 2048, 71.91, 11.24, 1.76, V3_PAPER_T7,
                   "row 6: V3, RF2, R-ASPP; " + _RF2_NOTE.format("1.762M")),
    PublishedDense("lraspp_mobilenet_v3_large", (("reduced_tail", True),), 19, 1024, 2048, 72.36, 9.74, 1.51,
                   V3_PAPER_T7, "row 8: V3, RF2, LR-ASPP F 128; " + _RF2_NOTE.format("1.506M")),
    PublishedDense("lraspp_mobilenet_v3_small", (("reduced_tail", True),), 19, 1024, 2048, 68.38, 2.90, 0.47,
                   V3_PAPER_T7, "row 11: V3-Small, RF2, LR-ASPP F 128; " + _RF2_NOTE.format("0.467M")),
)


def dense_published_for(model: str) -> list[PublishedDense]:
    return [p for p in DENSE_PUBLISHED if p.model == model]
# -- Detectors: SSDLite on COCO at 320x320 -------------------------------------
@dataclass(frozen=True)
class PublishedDetection:
    model: str  # our registry name, e.g. "ssdlite320_mobilenet_v3_large"
    resolution: int
    coco_map: float | None  # COCO box AP (0.5:0.95), percent
    madds_m: float | None
    params_m: float | None
    source: str
    convention: str  # "paper" | "pytorch"
    note: str = ""
    pixel1_ms: float | None = None


DETECTION_NAMES: tuple[str, ...] = (
    "ssdlite320_mobilenet_v3_large", "ssdlite320_mobilenet_v3_small", "ssdlite320_mobilenet_v2_100",
)
V2_PAPER_T6 = "MobileNetV2 paper (arXiv 1801.04381), Table 6"
V3_PAPER_T6 = "MobileNetV3 paper (arXiv 1905.02244v5), Table 6"
TV_SSDLITE = "torchvision SSDLite320_MobileNet_V3_Large_Weights.COCO_V1"
# The papers' SSDLite is TensorFlow's Object Detection API model (COCO test-dev, BN folded,
# 3 boxes on the first map); ours and torchvision's count BN and give every map 6 boxes.
# "reduced tail" (V3 paper's dagger) = channels between C4 and C5 halved, our default for V3.
DETECTION_PUBLISHED: tuple[PublishedDetection, ...] = (
    PublishedDetection("ssdlite320_mobilenet_v2_100", 320, 22.1, 800, 4.3, V2_PAPER_T6, "paper",
                       "COCO test-dev", 200),
    PublishedDetection("ssdlite320_mobilenet_v2_100", 320, 22.1, 800, 4.3, V3_PAPER_T6, "paper",
                       "COCO test; Pixel-1 latency re-measured", 162),
    PublishedDetection("ssdlite320_mobilenet_v3_large", 320, 22.0, 510, 3.22, V3_PAPER_T6, "paper",
                       "reduced tail (V3 dagger); full tail: 22.0 mAP, 620M, 4.97M, 137 ms", 119),
    PublishedDetection("ssdlite320_mobilenet_v3_small", 320, 16.1, 160, 1.77, V3_PAPER_T6, "paper",
                       "reduced tail (V3-Small dagger); full tail: 16.0 mAP, 210M, 2.49M, 52 ms", 43),
    PublishedDetection("ssdlite320_mobilenet_v3_large", 320, 21.3, None, 3.44006, TV_SSDLITE, "pytorch",
                       "COCO val2017 box mAP; 3,440,060 params; its '_ops' (GFLOPS column) 0.583"),
)


def published_detection_for(model: str, resolution: int | None = None) -> list[PublishedDetection]:
    """Every published detection row for ``model`` (at ``resolution`` if given); [] if none."""
    return [p for p in DETECTION_PUBLISHED
            if p.model == model and (resolution is None or p.resolution == resolution)]
