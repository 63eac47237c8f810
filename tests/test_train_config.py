"""Recipes cite and set the papers' values; defaults < recipe < config file < flags;
no weight decay on depthwise and BatchNorm parameters unless asked."""

from __future__ import annotations

import pytest

import mobilenet
from mobilenet.train import RECIPES, read_config_file, resolve_config
from mobilenet.train.optim import lr_factor, param_groups


def test_paper_recipes_follow_each_paper():
    v2 = resolve_config({"recipe": "paper", "model": "mobilenet_v2_100", "batch_size": 96})
    assert (v2.optimizer, v2.rmsprop_decay, v2.momentum, v2.lr, v2.step_gamma, v2.weight_decay) == \
        ("rmsprop", 0.9, 0.9, 0.045, 0.98, 4e-5)
    v3 = resolve_config({"recipe": "paper", "model": "mobilenet_v3_large_100", "batch_size": 512})
    assert v3.peak_lr() == pytest.approx(0.1 * 512 / 4096)
    assert (v3.step_epochs, v3.step_gamma, v3.weight_decay, v3.dropout, v3.ema_decay, v3.bn_momentum) == \
        (3.0, 0.01, 1e-5, 0.2, 0.9999, 0.01)
    tv3 = resolve_config({"recipe": "torchvision", "model": "mobilenet_v3_small_100"})
    assert (tv3.lr, tv3.lr_batch, tv3.auto_augment, tv3.random_erase, tv3.epochs) == (0.064, 1024, "imagenet", 0.2, 600)
    for recipe in RECIPES.values():
        assert recipe.__doc__ and len(recipe.__doc__) > 40  # each cites its source


def test_precedence_defaults_recipe_file_flags(tmp_path):
    toml = tmp_path / "c.toml"
    toml.write_text('recipe = "finetune"\nepochs = 3\nlabel-smoothing = 0.2\n')
    cfg = resolve_config({"epochs": 5}, read_config_file(toml))
    assert cfg.recipe == "finetune" and cfg.optimizer == "adamw" and cfg.freeze_bn  # from the recipe
    assert cfg.label_smoothing == 0.2 and cfg.epochs == 5  # file, then flag
    yml = tmp_path / "c.yaml"
    yml.write_text("lr: 0.5\n")
    assert resolve_config({}, read_config_file(yml)).peak_lr() == 0.5  # explicit lr is taken as it stands
    yml.write_text("lerning_rate: 0.5\n")
    with pytest.raises(ValueError, match="unknown option 'lerning_rate'"):
        read_config_file(yml)
    with pytest.raises(ValueError, match="optimizer must be one of"):
        resolve_config({"optimizer": "adam"})


def test_no_decay_on_depthwise_and_batchnorm_unless_asked():
    model = mobilenet.create_model("mobilenet_v2_035", num_classes=3)
    groups = param_groups(model, resolve_config({}))
    no_decay = {id(p) for p in groups[1]["params"]}
    named = dict(model.named_parameters())
    assert id(named["blocks.1.dw.conv.weight"]) in no_decay and id(named["blocks.1.dw.bn.weight"]) in no_decay
    assert id(named["blocks.1.expand.conv.weight"]) not in no_decay and id(named["classifier.weight"]) not in no_decay
    everything = param_groups(model, resolve_config({"decay_depthwise": True, "decay_norm": True}))
    assert len(everything) == 1


def test_schedules():
    cfg = resolve_config({"warmup_epochs": 1, "epochs": 4, "schedule": "cosine"})
    assert lr_factor(cfg, 0, 10) == pytest.approx(0.1) and lr_factor(cfg, 9, 10) == 1.0
    assert lr_factor(cfg, 39, 10) < 0.01
    step = resolve_config({"recipe": "paper", "model": "mobilenet_v2_100"})
    assert lr_factor(step, 25, 10) == pytest.approx(0.98**2)


def test_cli_flags_cover_every_field():
    from mobilenet.cli import build_parser

    args = build_parser().parse_args(["train", "--no-channels-last", "--crop-scale", "0.3", "1", "--ema-decay", "0.99"])
    assert args.channels_last is False and args.crop_scale == [0.3, 1.0] and args.ema_decay == 0.99


def test_train_config_applies_its_recipe_as_the_command_line_does():
    """TrainConfig(recipe=...) in Python is `mobilenet train --recipe ...`: explicit > recipe > defaults."""
    import dataclasses

    from mobilenet.train import TrainConfig

    paper = TrainConfig(recipe="paper", model="mobilenet_v2_100", epochs=3)
    assert paper == resolve_config({"recipe": "paper", "model": "mobilenet_v2_100", "epochs": 3})
    assert (paper.optimizer, paper.lr, paper.lr_batch, paper.step_gamma, paper.epochs) == ("rmsprop", 0.045, 96, 0.98, 3)
    quick = TrainConfig()  # the default recipe, quick, as `mobilenet train` with no flags
    assert quick == resolve_config({}) and (quick.warmup_epochs, quick.bn_momentum, quick.crop_scale) == \
        (0.5, 0.1, (0.5, 1.0))
    assert TrainConfig(bn_momentum=None).bn_momentum is None  # an explicit None is explicit
    seg = TrainConfig(task="segmentation")
    assert (seg.model, seg.resolution, seg.epochs) == ("lraspp_mobilenet_v3_small", 192, 30)
    assert TrainConfig(recipe="finetune", lr=0.5).peak_lr() == 0.5  # explicit lr is taken as it stands
    # what config.yaml holds gives back the same config (resume); replace changes only what it names
    assert TrainConfig(**paper.to_dict()) == paper
    assert dataclasses.replace(paper, epochs=5) == TrainConfig(recipe="paper", model="mobilenet_v2_100", epochs=5)
    with pytest.raises(ValueError, match=r"TrainConfig: unknown option 'epoch' \(did you mean epochs\?\)"):
        TrainConfig(epoch=3)
    with pytest.raises(ValueError, match="recipe 'paper' has no detection version"):
        TrainConfig(task="detection", recipe="paper")
    with pytest.raises(TypeError):
        TrainConfig("classification")  # keyword arguments only
