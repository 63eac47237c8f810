"""Official tags and checkpoint files, exercised offline: the tests serve files
they make themselves through the same download path (file:// URLs and plain
paths), with hash checks, the cache, conversion and the failure cases."""

from __future__ import annotations

import hashlib
import os
import pickle

import pytest
import torch

from mobilenet import create_model, list_models
from mobilenet.images import Preprocess
from mobilenet.weights import WeightsError, save_weights, to_timm, to_torchvision
from mobilenet.weights import hub


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    """A private torch hub folder: nothing touches the user's cache."""
    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path / "hub"))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield tmp_path / "hub" / "checkpoints"
    torch.set_num_threads(threads)


def sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def cache_files(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


@pytest.fixture(scope="module")
def v3_small():
    torch.manual_seed(0)
    model = create_model("mobilenet_v3_small_100").eval()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    return model


def fake_tag(monkeypatch, url: str, sha: str, *, model="mobilenet_v3_small_100", tag="test_in1k",
             source="torchvision", tf_ported=False) -> hub.WeightTag:
    entry = hub.WeightTag(model, tag, source, url, sha, "test licence", 12.5,
                          Preprocess(resolution=200, crop_pct=0.9, interpolation="bicubic"), f"test.{tag}",
                          tf_ported)
    monkeypatch.setitem(hub.TAGS, entry.name, entry)
    return entry


def same_output(a, b) -> bool:
    x = torch.randn(1, 3, 96, 96)
    with torch.no_grad():
        return torch.allclose(a(x), b(x), atol=1e-5, rtol=1e-5)


# -- the tag table --------------------------------------------------------------------
def test_every_tag_names_a_registered_model_with_a_verifiable_or_flagged_source():
    assert hub.TAGS, "no official tags"
    for tag in hub.TAGS.values():
        assert tag.model in list_models(), tag.name
        assert tag.source in ("torchvision", "timm")
        assert tag.url.startswith("https://")
        assert tag.licence and tag.preprocess.resolution in ((224, 256, 384) if "_v4_" in tag.model else (224,))
        assert tag.sha256 == "" or (len(tag.sha256) >= 8 and int(tag.sha256, 16) >= 0)
    names = {t.name for t in hub.TAGS.values()}
    for expected in ("mobilenet_v2_100.tv_in1k", "mobilenet_v2_100.tv2_in1k", "mobilenet_v3_large_100.tv2_in1k",
                     "mobilenet_v3_small_100.tv_in1k", "mobilenet_v1_100.ra4_e3600_r224_in1k",
                     "mobilenet_v3_large_minimal_100.tf_in1k"):
        assert expected in names
    assert hub.TAGS["mobilenet_v3_small_100.tf_in1k"].arch_options() == {"padding": "same", "bn_eps": 1e-3}
    assert hub.TAGS["mobilenet_v2_100.ra_in1k"].arch_options() == {"bn_eps": 1e-5}
    assert hub.TAGS["mobilenet_v2_100.tv2_in1k"].preprocess.transform  # 232 -> 224 crop
    assert int(224 / hub.TAGS["mobilenet_v2_100.tv2_in1k"].preprocess.crop_pct) == 232


def test_unknown_tag_and_model_without_weights_are_clear_errors():
    with pytest.raises(WeightsError, match="no weights tagged 'nope'.*tv_in1k"):
        create_model("mobilenet_v2_100", pretrained="nope")
    with pytest.raises(WeightsError, match="no official weights for mobilenet_v1_025"):
        create_model("mobilenet_v1_025", pretrained=True)
    with pytest.raises(TypeError, match="unexpected option 'widht'"):
        create_model("mobilenet_v2_100", pretrained=True, widht=2)


# -- downloading through the real path -----------------------------------------------
def test_download_by_tag_checks_hash_caches_and_converts(tmp_path, monkeypatch, v3_small, _cache):
    served = tmp_path / "served" / "mnv3s.pth"
    served.parent.mkdir()
    torch.save(to_torchvision(v3_small), served)
    fake_tag(monkeypatch, served.as_uri(), sha256(served)[:8])
    model = create_model("mobilenet_v3_small_100", pretrained="test_in1k")
    assert cache_files(_cache) == ["mnv3s.pth"]
    assert same_output(model, v3_small)
    cfg = model.pretrained_cfg
    assert cfg["source"] == "mobilenet_v3_small_100.test_in1k" and cfg["licence"] == "test licence"
    assert cfg["preprocess"]["resolution"] == 200 and cfg["preprocess"]["interpolation"] == "bicubic"
    assert len(cfg["labels"]) == 1000 and cfg["labels"][1] == "goldfish"
    # second time from the cache: the served file may go away
    served.unlink()
    again = create_model("mobilenet_v3_small_100", pretrained="mobilenet_v3_small_100.test_in1k")
    assert same_output(again, v3_small)


def test_full_sha256_and_timm_layout_through_a_plain_path(tmp_path, monkeypatch, v3_small, _cache):
    from safetensors.torch import save_file

    served = tmp_path / "model.safetensors"
    save_file({k: v.contiguous() for k, v in to_timm(v3_small).items()}, str(served))
    tag = fake_tag(monkeypatch, str(served), sha256(served), source="timm")
    model = create_model("mobilenet_v3_small_100", pretrained="test_in1k")
    assert cache_files(_cache) == [tag.filename] == ["test.test_in1k.safetensors"]
    assert model.stem.bn.eps == 1e-5  # timm's eps, not our V3 default


@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_corrupted_download_is_rejected_and_leaves_nothing(tmp_path, monkeypatch, v3_small, _cache, damage):
    good = tmp_path / "good.pth"
    torch.save(to_torchvision(v3_small), good)
    data = bytearray(good.read_bytes())
    if damage == "flip":
        data[len(data) // 2] ^= 0xFF
    else:
        data = data[: len(data) // 2]
    bad = tmp_path / "bad.pth"
    bad.write_bytes(bytes(data))
    fake_tag(monkeypatch, bad.as_uri(), sha256(good))
    with pytest.raises(WeightsError, match=r"sha256 .* expected .*corrupted"):
        create_model("mobilenet_v3_small_100", pretrained="test_in1k")
    assert cache_files(_cache) == []


def test_truncated_file_without_a_published_hash_is_still_rejected(tmp_path, _cache):
    torch.save({"stem.conv.weight": torch.zeros(16, 3, 3, 3)}, tmp_path / "w.pth")
    (tmp_path / "short.pth").write_bytes((tmp_path / "w.pth").read_bytes()[:300])
    with pytest.raises(WeightsError, match="short.pth: not a readable checkpoint"):
        hub.download((tmp_path / "short.pth").as_uri(), "", "short.pth")
    assert cache_files(_cache) == []


def test_offline_error_says_what_to_download_and_where(monkeypatch, _cache):
    tag = fake_tag(monkeypatch, "http://127.0.0.1:9/mobilenet_v3_small-00000000.pth", "00000000")
    with pytest.raises(WeightsError) as err:
        create_model("mobilenet_v3_small_100", pretrained="test_in1k")
    message = str(err.value)
    assert "cannot download http://127.0.0.1:9/mobilenet_v3_small-00000000.pth" in message
    assert f"save it as {_cache / tag.filename}" in message and "sha256 starts with 00000000" in message
    assert cache_files(_cache) == []


def test_corrupted_cached_file_is_reported(tmp_path, monkeypatch, v3_small, _cache):
    served = tmp_path / "mnv3s.pth"
    torch.save(to_torchvision(v3_small), served)
    fake_tag(monkeypatch, served.as_uri(), sha256(served))
    _cache.mkdir(parents=True)
    (_cache / "mnv3s.pth").write_bytes(b"not it")
    with pytest.raises(WeightsError, match=r"cached file .*mnv3s.pth has sha256"):
        create_model("mobilenet_v3_small_100", pretrained="test_in1k")


def test_no_published_hash_downloads_with_a_warning(tmp_path, v3_small, _cache):
    served = tmp_path / "w.pth"
    torch.save(v3_small.state_dict(), served)
    with pytest.warns(UserWarning, match="no published sha256.*" + sha256(served)):
        path = hub.download(served.as_uri(), "", "w.pth")
    assert path == _cache / "w.pth" and sha256(path) == sha256(served)


# -- local files in every layout ------------------------------------------------------------
@pytest.mark.parametrize("layout", ["ours", "torchvision", "timm"])
@pytest.mark.parametrize("suffix", [".pth", ".bin", ".safetensors"])
def test_local_checkpoint_in_any_layout(tmp_path, v3_small, layout, suffix):
    from safetensors.torch import save_file

    state = {"ours": v3_small.state_dict(), "torchvision": to_torchvision(v3_small), "timm": to_timm(v3_small)}[layout]
    path = tmp_path / f"weights{suffix}"
    if suffix == ".safetensors":
        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    else:
        torch.save(state, path)
    # timm checkpoints mean timm's BN eps (1e-5); ours and torchvision's V3 use 1e-3
    model = create_model("mobilenet_v3_small_100", pretrained=path, bn_eps=1e-3)
    assert same_output(model, v3_small)
    assert model.pretrained_cfg["source"] == str(path)


def test_our_own_file_keeps_its_options_preprocessing_and_labels(tmp_path):
    model = create_model("mobilenet_v2_050", num_classes=5, padding="same").eval()
    path = save_weights(model, tmp_path / "ours.safetensors", preprocess=Preprocess(resolution=160),
                        labels=list("abcde"))
    loaded = create_model("mobilenet_v2_050", pretrained=path)
    assert loaded.arch_args["padding"] == "same" and loaded.num_classes == 5
    assert loaded.pretrained_cfg["labels"] == list("abcde")
    assert loaded.pretrained_cfg["preprocess"]["resolution"] == 160
    assert same_output(loaded, model)


def test_new_head_and_features_only_from_pretrained(tmp_path, v3_small):
    path = tmp_path / "w.pth"
    torch.save(v3_small.state_dict(), path)
    ten = create_model("mobilenet_v3_small_100", pretrained=path, num_classes=10)
    assert ten.classifier.out_features == 10 and ten.pretrained_cfg["labels"] is None
    assert torch.equal(ten.blocks[3].dw.conv.weight, v3_small.blocks[3].dw.conv.weight)
    backbone = create_model("mobilenet_v3_small_100", pretrained=path, features_only=True, out_indices=(4,))
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(backbone(x)[0], v3_small.forward_features(x), atol=1e-6)
    with pytest.raises(WeightsError, match="in_chans=1"):
        create_model("mobilenet_v3_small_100", pretrained=path, in_chans=1)


def test_pickle_with_code_is_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    path = tmp_path / "evil.pth"
    with open(path, "wb") as f:
        pickle.dump({"stem.conv.weight": Evil()}, f, protocol=2)
    with pytest.raises(WeightsError, match="refused to unpickle"):
        create_model("mobilenet_v3_small_100", pretrained=path)


def test_not_a_checkpoint_and_wrong_model(tmp_path, v3_small):
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"hello world, not weights")
    with pytest.raises(WeightsError, match="junk.safetensors: not a readable checkpoint"):
        create_model("mobilenet_v3_small_100", pretrained=junk)
    path = tmp_path / "w.pth"
    torch.save(v3_small.state_dict(), path)
    with pytest.raises(WeightsError, match="does not fit|shape"):
        create_model("mobilenet_v3_small_075", pretrained=path)
    with pytest.raises(WeightsError, match="no such checkpoint file"):
        create_model("mobilenet_v3_small_100", pretrained=tmp_path / "missing.pth")


def test_docs_list_every_tag():
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[1] / "docs" / "weights.md").read_text(encoding="utf-8")
    for tag in hub.TAGS.values():
        assert f"| `{tag.model}` | `{tag.tag}` |" in doc, f"docs/weights.md does not list {tag.name}"
