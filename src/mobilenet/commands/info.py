"""``mobilenet info``: our params and MACs beside the published figures."""

from __future__ import annotations

import argparse

from . import CommandError, format_table, print_json


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "info",
        help="params and MACs of each model beside the published figures",
        description="For each model and resolution: params and MACs counted from a real forward pass "
        "(PyTorch convention: BatchNorm parameters counted, 1000 classes), the same in TF-slim's "
        "convention (BN folded away, 1001 classes), and every published figure with its source.",
    )
    p.add_argument("names", nargs="*", metavar="NAME", help="model names or patterns (default: the whole zoo)")
    p.add_argument("--resolution", type=int, nargs="+", metavar="R",
                   help="input sizes (default: each model's own: 224; V4 medium 256, large 384)")
    p.add_argument("--weights", action="store_true",
                   help="list the official weights instead: every tag with its source, licence, top-1 and "
                   "preprocessing (`create_model(NAME, pretrained=TAG)`)")
    p.add_argument("--layers", action="store_true",
                   help="print each model as its paper's architecture table instead: one row per block, with "
                   "the input size it sees, read from the live model")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    p.set_defaults(func=run)


def model_info(name: str, resolution: int, stats: dict | None = None) -> dict:
    """The row `mobilenet info` prints for one model at one resolution (``stats``: its
    counts from :func:`mobilenet.counts.model_counts` if already known)."""
    from ..published import published_for

    if stats is None:
        from ..counts import model_counts

        stats = model_counts([(name, resolution)])[0]
    return {
        "model": name,
        "resolution": resolution,
        "params": stats["params"],
        "macs": stats["macs"],
        "tf_slim_params": stats["tf_slim_params"],
        "tf_slim_macs": stats["tf_slim_macs"],
        "published": [
            {
                "top1": ref.top1,
                "params_m": ref.params_m,
                "madds_m": ref.madds_m,
                "convention": ref.convention,
                "source": ref.source,
                "note": ref.note,
            }
            for ref in published_for(name, resolution)
        ] + dense_references(name) + detection_references(name, resolution),
    }


def dense_references(name: str) -> list[dict]:
    """A segmentation model's published figures; each says the configuration and input it was counted at."""
    from ..published import dense_published_for

    return [{"top1": None, "miou": ref.miou, "params_m": ref.params_m, "madds_m": round(ref.madds_b * 1000),
             "convention": "paper", "source": ref.source,
             "note": f"{ref.height}x{ref.width}, {ref.classes} classes"
                     + "".join(f", {k}={v}" for k, v in ref.options) + f"; mIoU {ref.miou}; {ref.note}"}
            for ref in dense_published_for(name)]


def detection_references(name: str, resolution: int) -> list[dict]:
    """A detector's published figures (COCO box AP)."""
    from ..published import published_detection_for

    return [{"coco_map": ref.coco_map, "top1": None, "params_m": ref.params_m, "madds_m": ref.madds_m,
             "convention": ref.convention, "source": ref.source, "note": ref.note}
            for ref in published_detection_for(name, resolution)]


def resolve_names(patterns: list[str], listing: dict[str, int] | None = None) -> list[str]:
    """Model names from names and patterns. ``listing``: the registry's names as
    :func:`mobilenet.counts.cached_registry` has them (no torch import), used when every
    name given is in it; otherwise the registry itself, which also explains unknown names."""
    if listing is not None:
        import fnmatch

        found = []
        for pattern in patterns or ["*"]:
            matches = [n for n in listing if fnmatch.fnmatchcase(n, pattern)]
            if not matches:
                break  # the registry says why
            found += [n for n in matches if n not in found]
        else:
            return found
    from ..registry import MODELS, create_model, list_models

    names: list[str] = []
    for pattern in patterns or ["*"]:
        found = list_models(pattern) if any(ch in pattern for ch in "*?[") else [pattern]
        if not found:
            raise CommandError(f"no model matches {pattern!r}; `mobilenet info` lists them all")
        for name in found:
            if name not in MODELS:
                try:
                    create_model(name)
                except ValueError as exc:
                    raise CommandError(str(exc)) from None
            if name not in names:
                names.append(name)
    return names


def weight_rows(names: list[str]) -> list[dict]:
    """One row per official weights tag of ``names``: what `mobilenet info --weights` prints."""
    from ..weights.hub import TAGS, default_tag

    rows = []
    for tag in TAGS.values():
        if tag.model not in names:
            continue
        p = tag.preprocess
        rows.append({
            "model": tag.model,
            "tag": tag.tag,
            "default": tag is default_tag(tag.model),
            "source": tag.source,
            "original_name": tag.original_name,
            "top1": tag.top1,
            "licence": tag.licence,
            "preprocess": f"{p.interpolation} {round(p.resolution / p.crop_pct)}->{p.resolution}, "
                          f"mean {list(p.mean)} std {list(p.std)}",
            "padding": tag.arch_options().get("padding", "symmetric"),
            "checked": tag.verified,
            "url": tag.url,
        })
    return rows + dense_weight_rows(names)


def dense_weight_rows(names: list[str]) -> list[dict]:
    """The segmentation and detection tags of ``names`` (torchvision's COCO weights), as
    :func:`weight_rows` has them; ``top1`` is None and ``metric`` says what was published."""
    from ..detection import weights as det
    from ..segmentation import weights as seg

    rows = []
    for tag in seg.TAGS.values():
        if tag.model in names:
            p = tag.preprocess
            rows.append({"model": tag.model, "tag": tag.tag, "default": True, "source": tag.source,
                         "original_name": tag.original_name, "top1": None, "metric": tag.note.split(";")[0],
                         "licence": tag.licence,
                         "preprocess": f"{p.interpolation} short side->{p.resolution}, no crop, "
                                       f"mean {list(p.mean)} std {list(p.std)}",
                         "padding": "symmetric", "checked": tag.verified, "url": tag.url})
    for tag in det.TAGS.values():
        if tag.model in names:
            from ..detection.ssdlite import IMAGE_MEAN, IMAGE_STD

            rows.append({"model": tag.model, "tag": tag.tag, "default": det.get_tag(tag.model, True) is tag,
                         "source": "torchvision", "original_name": tag.url.rsplit("/", 1)[-1].split("-")[0],
                         "top1": None, "metric": f"COCO val2017 box AP {tag.box_map}", "licence": tag.licence,
                         "preprocess": f"bilinear resize->320x320 (inside the model), mean {list(IMAGE_MEAN)} "
                                       f"std {list(IMAGE_STD)}",
                         "padding": "symmetric", "checked": f"sha256 prefix {tag.sha256}", "url": tag.url})
    return rows


def run_weights(args: argparse.Namespace) -> int:
    rows = weight_rows(resolve_names(args.names))
    if args.json:
        print_json(rows)
        return 0
    if not rows:
        raise CommandError("no official weights for these models; `mobilenet info --weights` lists them all")
    rows = sorted(rows, key=lambda r: (r["model"], r["source"], r["tag"]))
    table = [dict(r, licence=r["licence"].split(" (")[0]) for r in rows]  # the full text is in --json
    columns = ["model", "tag", "default", "source", "top1", "licence", "preprocess", "padding", "checked"]
    if any("metric" in r for r in rows):
        columns.insert(5, "metric")  # dense models: mIoU / box AP as published
    print(format_table(table, columns, {"top1": "top-1", "checked": "download check"}))
    print("\nmobilenet.create_model(MODEL, pretrained=TAG) (pretrained=True: the default). "
          "top-1: ImageNet-1k val as published by the source; licence as the source states it.")
    return 0


def run_layers(args: argparse.Namespace) -> int:
    from ..describe import COLUMNS, layer_rows
    from ..model import MobileNet
    from ..registry import MODELS, create_model

    if not args.names:
        raise CommandError("--layers needs model names, e.g. `mobilenet info --layers mobilenet_v4_conv_small`")
    if args.weights:
        raise CommandError("--layers and --weights print different tables; pick one")
    names = resolve_names(args.names)
    for r in args.resolution or []:
        if r < 32:
            raise CommandError(f"--resolution {r} is too small; use 32 or more")
    for n in names:
        if not issubclass(MODELS[n].cls, MobileNet):
            raise CommandError(f"--layers prints the classifiers (V1-V4) as their papers' tables; {n} is not one")
    out = [{"model": n, "resolution": r or MODELS[n].resolution,
            "rows": layer_rows(create_model(n), r or MODELS[n].resolution)}
           for n in names for r in (args.resolution or [None])]
    if args.json:
        print_json(out)
        return 0
    for i, table in enumerate(out):
        rows = [{k: ("yes" if v is True else "no" if v is False else v) for k, v in row.items()} for row in table["rows"]]
        used = [c for c in COLUMNS if c in ("input", "operator", "out", "stride") or any(r[c] is not None for r in rows)]
        print(("\n" if i else "") + f"{table['model']} at {table['resolution']}x{table['resolution']}")
        print(format_table(rows, used, {"start_dw": "start dw", "mid_dw": "mid dw", "exp": "exp size",
                                        "out": "#out", "act": "NL", "stride": "s"}))
    return 0


def run(args: argparse.Namespace) -> int:
    if args.layers:
        return run_layers(args)
    if args.weights:
        return run_weights(args)
    from ..counts import cached_registry

    listing = cached_registry()  # from the last counting run: no torch import if all is cached
    names = resolve_names(args.names, listing)
    if listing is None or any(n not in listing for n in names):
        from ..registry import MODELS

        listing = {n: spec.resolution for n, spec in MODELS.items()}
    resolutions = args.resolution or [None]
    from ..limits import MAX_RESOLUTION

    for r in args.resolution or []:
        if r < 32:
            raise CommandError(f"--resolution {r} is too small; use 32 or more")
        if r > MAX_RESOLUTION:
            raise CommandError(f"--resolution {r} is too large; use at most {MAX_RESOLUTION}")
    from .. import progress
    from ..counts import model_counts

    requests = [(n, r or listing[n]) for n in names for r in resolutions]
    with progress.reporting(not (args.json or args.quiet)):  # counted once, then cached (mobilenet.counts)
        stats = model_counts(requests, on_count=lambda n, r: progress.step(f"counting params and MACs: {n} at {r} px"))
    rows = [model_info(n, r, s) for (n, r), s in zip(requests, stats)]
    if args.json:
        print_json(rows)
        return 0
    lines = []
    for row in rows:
        base = {
            "model": row["model"],
            "res": row["resolution"],
            "params": row["params"],
            "MACs (M)": round(row["macs"] / 1e6, 1),
            "TF-slim params": row["tf_slim_params"],
        }
        refs = row["published"] or [{}]
        for i, ref in enumerate(refs):
            line = dict(base) if i == 0 else {}
            line.update(
                {
                    "pub params (M)": ref.get("params_m"),
                    "pub MAdds (M)": ref.get("madds_m"),
                    "pub top-1": ref.get("top1"),
                    "pub mAP": ref.get("coco_map"),
                    "source": ref.get("source", "") + (f" ({ref['note']})" if ref.get("note") else ""),
                }
            )
            lines.append(line)
    columns = ["model", "res", "params", "MACs (M)", "TF-slim params", "pub params (M)", "pub MAdds (M)",
               "pub top-1", "source"]
    if any(ref.get("coco_map") is not None for row in rows for ref in row["published"]):
        columns.insert(-1, "pub mAP")  # detectors: COCO box AP
    print(format_table(lines, columns))
    print("\nparams/MACs: ours, PyTorch convention (BN counted, 1000 classes). "
          "TF-slim params: BN folded away, 1001 classes, as TF-slim's tables count.")
    return 0
