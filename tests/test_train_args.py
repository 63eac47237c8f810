"""Bad train arguments are one line naming the option, before anything is written;
data a classifier cannot learn from is refused; help shows the defaults that run;
config.yaml records what ran."""

from __future__ import annotations

import pytest
import torch
import yaml

import mobilenet
from mobilenet.cli import COMMANDS, build_parser, main
from mobilenet.train import DataError, Interrupted, Trainer, resolve_config

from train_helpers import make_folder, tiny_config

BAD = [
    (["--label-smoothing", "5"], "--label-smoothing"),
    (["--resolution", "100000"], "--resolution"),
    (["--hflip", "7"], "--hflip"),
    (["--threads", "-3"], "--threads"),
    (["--save-every", "-1"], "--save-every"),
    (["--save-minutes", "-1"], "--save-minutes"),
    (["--clip-grad", "-1"], "--clip-grad"),
    (["--warmup-epochs", "-5"], "--warmup-epochs"),
    (["--warmup-epochs", "nan"], "--warmup-epochs"),
    (["--step-epochs", "0"], "--step-epochs"),
    (["--crop-pct", "5"], "--crop-pct"),
    (["--random-erase", "2"], "--random-erase"),
    (["--workers", "-1"], "--workers"),
    (["--workers", "100000"], "--workers"),  # forked until the machine stopped answering
    (["--threads", "100000"], "--threads"),
    (["--weight-decay", "nan"], "--weight-decay"),
    (["--lr", "inf"], "--lr"),
    (["--optimizer", "rmsprop", "--rmsprop-eps", "0"], "--rmsprop-eps"),
    (["--momentum", "1.5"], "--momentum"),
    (["--dropout", "1"], "--dropout"),
]


def _cli(capsys, *args) -> tuple[int, str, str]:
    rc = main([str(a) for a in args])
    out = capsys.readouterr()
    return rc, out.out, out.err


@pytest.mark.parametrize("args,flag", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_train_argument_is_one_line_naming_it(tmp_path, capsys, args, flag):
    rc, _, err = _cli(capsys, "train", "--output", tmp_path / "runs", "--epochs", "1", "--quiet", *args)
    assert rc == 2 and flag in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert not (tmp_path / "runs").exists()


def test_bad_value_in_a_config_file_names_the_option(tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("label-smoothing: 5\n")
    rc, _, err = _cli(capsys, "train", "--config", cfg, "--output", tmp_path / "runs", "--quiet")
    assert rc == 2 and f"--config {cfg}: label_smoothing must be in [0.0, 1.0), got 5" in err, err
    cfg.write_text("epochs: many\n")
    rc, _, err = _cli(capsys, "train", "--config", cfg, "--output", tmp_path / "runs", "--quiet")
    assert rc == 2 and f"--config {cfg}: epochs must be a whole number, got 'many'" in err, err
    cfg.write_text("epochs: [unclosed\n")  # yaml's message spans five lines, with a caret
    rc, _, err = _cli(capsys, "train", "--config", cfg, "--output", tmp_path / "runs", "--quiet")
    assert rc == 2 and len(err.strip().splitlines()) == 1, err
    assert f"--config {cfg}: not valid yaml: expected ',' or ']', but got '<stream end>' at line 2" in err, err


EVAL_BAD = [
    (["--val-split", "inf"], "--val-split"),  # an OverflowError traceback
    (["--val-split", "nan"], "--val-split"),  # "cannot convert float NaN to integer"
    (["--val-split", "-1"], "--val-split"),
    (["--val-split", "1e30"], "--val-split"),  # "no readable training images"
    (["--workers", "100000"], "--workers"),  # forked until the machine stopped answering
    (["--batch-size", "0"], "--batch-size"),
    (["--resolution", "100000"], "--resolution"),
    (["--resolution", "0"], "--resolution"),
]


@pytest.mark.parametrize("args,flag", EVAL_BAD, ids=[" ".join(a) for a, _ in EVAL_BAD])
def test_bad_eval_argument_is_one_line_naming_it(tmp_path, capsys, args, flag):
    data = make_folder(tmp_path / "data", n=2)
    rc, out, err = _cli(capsys, "eval", "--model", "mobilenet_v2_035", "--pretrained", "--data", data, *args)
    assert rc == 2 and flag in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert out == ""  # refused before any weights were loaded or images read


OTHER_BAD = [
    (["bench", "mobilenet_v2_035", "--threads", "100000"], "--threads"),
    (["bench", "mobilenet_v2_035", "--resolution", "100000"], "--resolution"),  # a 120 GB allocation traceback
    (["bench", "mobilenet_v2_035", "--train", "1x100000"], "--train"),
    (["bench", "mobilenet_v2_035", "--min-time", "nan"], "--min-time"),  # accepted
    (["bench", "mobilenet_v2_035", "--max-time", "nan"], "--max-time"),  # accepted
    (["bench", "mobilenet_v2_035", "--max-time", "0.5", "--min-time", "2"], "--max-time"),  # named no option
    (["export", "--model", "mobilenet_v2_035", "--format", "onnx", "-o", "x.onnx", "--resolution", "100000"],
     "--resolution"),  # a 240 GB allocation traceback
    (["export", "--model", "mobilenet_v2_035", "--format", "onnx", "-o", "x.onnx", "--num-classes", "0"],
     "--num-classes"),  # accepted
    (["export", "--model", "mobilenet_v2_035", "--format", "onnx", "-o", "x.onnx", "--int8", "--calib", ".",
      "--calib-images", "0"], "--calib-images"),
]


@pytest.mark.parametrize("argv,flag", OTHER_BAD, ids=[" ".join(a[:1] + a[-2:]) for a, _ in OTHER_BAD])
def test_bad_bench_and_export_argument_is_one_line_naming_it(tmp_path, monkeypatch, capsys, argv, flag):
    monkeypatch.chdir(tmp_path)
    rc, out, err = _cli(capsys, *argv)
    assert rc == 2 and flag in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert out == "" and list(tmp_path.iterdir()) == []


def test_info_resolution_has_an_upper_bound(capsys):
    rc, _, err = _cli(capsys, "info", "mobilenet_v2_035", "--resolution", "30000")
    assert rc == 2 and "--resolution" in err and "30000" in err


def test_one_class_is_refused(tmp_path):
    data = make_folder(tmp_path / "data", n=4)
    for p in (data / "blue").iterdir():
        p.unlink()
    (data / "blue").rmdir()
    with pytest.raises(DataError, match="only one class.*at least 2"):
        Trainer(tiny_config(data, tmp_path / "runs", "one"), progress=False).run()


def test_too_few_images_for_a_val_split_says_so(tmp_path):
    data = make_folder(tmp_path / "data", n=1)  # one image per class: nothing to hold out
    with pytest.raises(DataError, match="validation"):
        Trainer(tiny_config(data, tmp_path / "runs", "few"), progress=False).run()


def test_eval_of_a_plain_checkpoint_suggests_no_flag_it_lacks(tmp_path, capsys):
    data = make_folder(tmp_path / "data", n=3)
    torch.save(mobilenet.create_model("mobilenet_v2_035", num_classes=2).state_dict(), tmp_path / "v2.pth")
    rc, out, err = _cli(capsys, "eval", "--weights", tmp_path / "v2.pth", "--data", data, "--json",
                        "--confusion", tmp_path / "c.png")
    assert rc == 0, err  # the architecture is found from the shapes
    torch.save({"layer.weight": torch.zeros(3, 3)}, tmp_path / "other.pth")
    rc, out, err = _cli(capsys, "eval", "--weights", tmp_path / "other.pth", "--data", data)
    assert rc == 2 and "other.pth" in err, err
    for flag in ("--model", "--pretrained", "weights_only"):
        assert flag not in err, err


# -- help and config.yaml say what runs ---------------------------------------------------------
def _train_parser():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    return sub.choices["train"]


def test_train_help_shows_the_defaults_that_run():
    ran = resolve_config({})
    shown = 0
    for action in _train_parser()._actions:
        value = getattr(ran, action.dest, None)
        if value is None or isinstance(value, bool) or action.dest in ("resume", "config"):
            continue
        text = " ".join(map(str, value)) if isinstance(value, tuple) else str(value)
        assert f"default {text}" in action.help, (action.dest, action.help)
        shown += 1
    assert shown > 30
    helps = {a.dest: a.help for a in _train_parser()._actions}
    assert "default 0.1, from --recipe quick" in helps["label_smoothing"]
    assert "default 0.5 1.0, from --recipe quick" in helps["crop_scale"]
    assert "digits" in helps["hflip"]


def test_no_help_shows_a_doubled_percent(capsys):
    for name, _ in COMMANDS:
        with pytest.raises(SystemExit):
            main([name, "--help"])
        out = capsys.readouterr().out
        assert "%%" not in out, name


def test_config_yaml_records_what_ran(tmp_path):
    def stop(trainer, pos):
        raise Interrupted

    cfg = resolve_config({"output": str(tmp_path), "name": "d", "threads": 1})  # digits, never flipped
    Trainer(cfg, callbacks=[stop], progress=False).run()
    saved = yaml.safe_load((tmp_path / "d" / "config.yaml").read_text())
    assert saved["hflip"] == 0.0 and saved["crop_pct"] == 1.0 and saved["name"] == "d"
    assert saved["label_smoothing"] == 0.1 and saved["warmup_epochs"] == 0.5  # the quick recipe's
