"""Our counts against every row of the papers' tables and TF-slim's grids.

Each published figure is compared within its own rounding. Where a source
contradicts itself or another source, the expected outcome is written here with the
reason, so the reading we follow is explicit.
"""

from __future__ import annotations

import functools
import math

import pytest

from mobilenet import create_model, profile
from mobilenet.published import PUBLISHED, V1_PAPER, V1_SLIM, V2_SLIM, V3_PAPER_T9


@functools.cache
def counts(model: str, resolution: int):
    return profile(create_model(model), resolution)


def rows(source: str):
    return [p for p in PUBLISHED if p.source == source]


def row_id(p) -> str:
    return f"{p.model}@{p.resolution}"


# -- MobileNetV1, Tables 6 and 7: MAdds in whole millions, params to 0.1M ------------------
# The V1 tables neither round nor truncate consistently (568.7M prints as 569, 290.7M as
# 290; TF-slim prints 149.5M as 150), so a whole-million figure is matched within 1M.
@pytest.mark.parametrize("ref", rows(V1_PAPER.format(6)) + rows(V1_PAPER.format(7)), ids=row_id)
def test_v1_paper_tables_6_and_7(ref):
    stats = counts(ref.model, ref.resolution)
    assert abs(stats.tf_slim_macs / 1e6 - ref.madds_m) <= 1.0
    assert abs(stats.params / 1e6 - ref.params_m) <= 0.05


# TF-slim's V1 grid prints 0.75's MACs about 2.5% below both the paper's Table 6 (325M at
# 224, which we match) and the count of the network it ships, and 0.25-192 as 34M where
# the same network at 224 has 41M (41 x (192/224)^2 = 30). Those rows are the table's slips.
V1_SLIM_SLIPS = {"mobilenet_v1_075@224", "mobilenet_v1_075@192", "mobilenet_v1_075@160",
                 "mobilenet_v1_075@128", "mobilenet_v1_025@192"}


@pytest.mark.parametrize("ref", rows(V1_SLIM), ids=row_id)
def test_v1_tf_slim_grid(ref):
    stats = counts(ref.model, ref.resolution)
    matches = abs(stats.tf_slim_macs / 1e6 - ref.madds_m) <= 1.0
    assert matches is (row_id(ref) not in V1_SLIM_SLIPS)
    # TF-slim's V1 params count BatchNorm's beta and moving mean/variance (no gamma):
    # 3 numbers per channel on top of the folded count.
    bn_channels = stats.bn_params // 2
    assert round((stats.tf_slim_params + 3 * bn_channels) / 1e6, 2) == ref.params_m


# -- MobileNetV2, TF-slim's width x resolution grid: every row exactly ---------------------
@pytest.mark.parametrize("ref", rows(V2_SLIM), ids=row_id)
def test_v2_tf_slim_grid(ref):
    stats = counts(ref.model, ref.resolution)
    # The grid truncates MACs to whole millions (300.78M prints as 300, 11.94M as 11).
    assert math.floor(stats.tf_slim_macs / 1e6) == ref.madds_m
    # Params: BatchNorm folded away, 1001 classes, to 0.01M.
    assert round(stats.tf_slim_params / 1e6, 2) == ref.params_m


# -- MobileNetV3, Table 9 (width multipliers and resolutions) ------------------------------
# Table 9 gives Large-1.25 7.5M params but 356M MAdds. We scale the 1280 head above
# width 1 as Google's reference does (finegrain_classification_mode), which gives 356M
# MAdds and 8.2M params; a head kept at 1280 would give 7.5M params but 355M MAdds, and
# Small-1.25 (3.6M, 91M) only fits the scaled head. We follow the code and the MAdds.
V3_HEAD_READING = {"mobilenet_v3_large_125@224"}


@pytest.mark.parametrize("ref", rows(V3_PAPER_T9), ids=row_id)
def test_v3_paper_table_9(ref):
    stats = counts(ref.model, ref.resolution)
    # Table 9's whole millions are off by one against an exact count in four rows
    # (e.g. Small-0.75: 44 printed, 43.4M counted, and 43.4M is also what the network
    # that loads Google's released checkpoint has), so the tolerance is 1M.
    assert abs(stats.tf_slim_macs / 1e6 - ref.madds_m) <= 1.0
    matches = abs(stats.tf_slim_params / 1e6 - ref.params_m) <= 0.1
    assert matches is (row_id(ref) not in V3_HEAD_READING)


def test_v3_small_madds_sources_disagree():
    """V3-Small: 56M in the final paper (Table 3), 66M in the first revision and TF-slim.
    We count 56.5M for the network whose parameters equal the released checkpoint's."""
    small = [p for p in PUBLISHED if p.model == "mobilenet_v3_small_100" and p.resolution == 224]
    assert {p.madds_m for p in small} >= {56, 66}
    assert round(counts("mobilenet_v3_small_100", 224).macs / 1e6) == 57  # 56.5M
