"""Dense models through the CLI: `info --weights` lists their tags; exported detector and
segmentation files in eval/predict; segmentation preprocessing as torchvision's."""

from __future__ import annotations

import json

from mobilenet.cli import main


def test_info_weights_lists_dense_tags(capsys):
    assert main(["info", "--weights", "--json", "lraspp_mobilenet_v3_large", "deeplabv3_mobilenet_v3_large",
                 "ssdlite320_mobilenet_v3_large"]) == 0
    rows = {r["model"]: r for r in json.loads(capsys.readouterr().out)}
    assert set(rows) == {"lraspp_mobilenet_v3_large", "deeplabv3_mobilenet_v3_large", "ssdlite320_mobilenet_v3_large"}
    assert rows["lraspp_mobilenet_v3_large"]["tag"] == "tv_coco_voc"
    assert "57.9" in rows["lraspp_mobilenet_v3_large"]["metric"]
    assert "no crop" in rows["lraspp_mobilenet_v3_large"]["preprocess"]
    assert rows["ssdlite320_mobilenet_v3_large"]["tag"] == "tv_coco"
    assert "21.3" in rows["ssdlite320_mobilenet_v3_large"]["metric"]
    assert rows["ssdlite320_mobilenet_v3_large"]["url"].endswith("a79551df.pth")
    # the whole listing has them too, and the table shows the metric column
    assert main(["info", "--weights"]) == 0
    table = capsys.readouterr().out
    assert "tv_coco_voc" in table and "ssdlite320_mobilenet_v3_large" in table and "metric" in table
