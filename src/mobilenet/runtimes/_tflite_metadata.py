"""TFLite Support metadata: the ``TFLITE_METADATA`` flatbuffer Android's Task Library
(``ImageClassifier``) reads, and the zip of associated files (``labels.txt``) appended to
the model. Google's MobileNet files carry both.

Written and read with the ``flatbuffers`` runtime alone (the ``tflite-support`` package
does not install beside our stack), from the tables below: each lists its fields in the
order of ``tensorflow_lite_support/metadata/metadata_schema.fbs`` (schema 1.1.0,
file identifier ``M001``), which fixes each field's vtable slot. A union field takes two
slots, its ``_type`` first. Only the tables an image classifier uses are spelled out.
"""

from __future__ import annotations

import io
import zipfile
from typing import Any

import flatbuffers
from flatbuffers import number_types as N
from flatbuffers.table import Table

NAME = "TFLITE_METADATA"
IDENTIFIER = b"M001"
LABELS_FILE = "labels.txt"

# enum name -> value, as in the schema
ASSOCIATED_FILE_TYPE = {"UNKNOWN": 0, "DESCRIPTIONS": 1, "TENSOR_AXIS_LABELS": 2, "TENSOR_VALUE_LABELS": 3,
                        "TENSOR_AXIS_SCORE_CALIBRATION": 4, "VOCABULARY": 5}
COLOR_SPACE_TYPE = {"UNKNOWN": 0, "RGB": 1, "GRAYSCALE": 2}
CONTENT_PROPERTIES = {"FeatureProperties": 1, "ImageProperties": 2, "BoundingBoxProperties": 3}
PROCESS_UNIT_OPTIONS = {"NormalizationOptions": 1, "ScoreCalibrationOptions": 2, "ScoreThresholdingOptions": 3,
                        "BertTokenizerOptions": 4, "SentencePieceTokenizerOptions": 5}

# table -> [(field, kind)] in schema order. kind: "string", "uint", "int", "float", an enum
# dict (a byte), a table name, [kind] for a vector, ("union", members) for a union.
TABLES: dict[str, list[tuple[str, Any]]] = {
    "AssociatedFile": [("name", "string"), ("description", "string"), ("type", ASSOCIATED_FILE_TYPE),
                       ("locale", "string")],
    "FeatureProperties": [],
    "ImageSize": [("width", "uint"), ("height", "uint")],
    "ImageProperties": [("color_space", COLOR_SPACE_TYPE), ("default_size", "ImageSize")],
    "BoundingBoxProperties": [("index", ["uint"]), ("type", "byte"), ("coordinate_type", "byte")],
    "ValueRange": [("min", "int"), ("max", "int")],
    "Content": [("content_properties", ("union", CONTENT_PROPERTIES)), ("range", "ValueRange")],
    "NormalizationOptions": [("mean", ["float"]), ("std", ["float"])],
    "ScoreCalibrationOptions": [("score_transformation", "byte"), ("default_score", "float")],
    "ScoreThresholdingOptions": [("global_score_threshold", "float")],
    "BertTokenizerOptions": [("vocab_file", ["AssociatedFile"])],
    "SentencePieceTokenizerOptions": [("sentencePiece_model", ["AssociatedFile"]), ("vocab_file", ["AssociatedFile"])],
    "ProcessUnit": [("options", ("union", PROCESS_UNIT_OPTIONS))],
    "Stats": [("max", ["float"]), ("min", ["float"])],
    "TensorMetadata": [("name", "string"), ("description", "string"), ("dimension_names", ["string"]),
                       ("content", "Content"), ("process_units", ["ProcessUnit"]), ("stats", "Stats"),
                       ("associated_files", ["AssociatedFile"])],
    "SubGraphMetadata": [("name", "string"), ("description", "string"),
                         ("input_tensor_metadata", ["TensorMetadata"]), ("output_tensor_metadata", ["TensorMetadata"]),
                         ("associated_files", ["AssociatedFile"]), ("input_process_units", ["ProcessUnit"]),
                         ("output_process_units", ["ProcessUnit"])],
    "ModelMetadata": [("name", "string"), ("description", "string"), ("version", "string"),
                      ("subgraph_metadata", ["SubGraphMetadata"]), ("author", "string"), ("license", "string"),
                      ("associated_files", ["AssociatedFile"]), ("min_parser_version", "string")],
}
SCALARS = {"uint": (N.Uint32Flags, 4), "int": (N.Int32Flags, 4), "float": (N.Float32Flags, 4), "byte": (N.Int8Flags, 1)}


def _slots(table: str):
    """(field, kind, slot) with a union's value one slot after its ``_type``."""
    slot = 0
    for field, kind in TABLES[table]:
        if isinstance(kind, tuple):
            slot += 1
        yield field, kind, slot
        slot += 1


# -- reading ----------------------------------------------------------------------------
def _scalar(kind: Any) -> tuple[Any, int] | None:
    return SCALARS["byte"] if isinstance(kind, dict) else SCALARS.get(kind) if isinstance(kind, str) else None


def _read_table(buf: bytes, pos: int, table: str) -> dict[str, Any]:
    t = Table(buf, pos)
    out: dict[str, Any] = {}
    for field, kind, slot in _slots(table):
        o = t.Offset(4 + 2 * slot)
        if not o:
            continue
        if isinstance(kind, tuple):  # union: its type byte sits in the slot before
            members = {v: k for k, v in kind[1].items()}
            member = members.get(t.Get(N.Uint8Flags, t.Pos + t.Offset(4 + 2 * (slot - 1))))
            if member is not None:
                out[field] = (member, _read_table(buf, t.Indirect(o + t.Pos), member))
        elif isinstance(kind, list):
            start, count, item = t.Vector(o), t.VectorLen(o), kind[0]
            if item == "string":
                out[field] = [t.String(start + 4 * j).decode() for j in range(count)]
            elif item in TABLES:
                out[field] = [_read_table(buf, t.Indirect(start + 4 * j), item) for j in range(count)]
            else:
                flags, size = SCALARS[item]
                out[field] = [t.Get(flags, start + size * j) for j in range(count)]
        elif kind == "string":
            out[field] = t.String(o + t.Pos).decode()
        elif isinstance(kind, str) and kind in TABLES:
            out[field] = _read_table(buf, t.Indirect(o + t.Pos), kind)
        else:
            value = t.Get(_scalar(kind)[0], o + t.Pos)
            out[field] = {v: k for k, v in kind.items()}.get(value, value) if isinstance(kind, dict) else value
    return out


def parse(data: bytes) -> dict[str, Any]:
    """A ``TFLITE_METADATA`` buffer as nested dicts named as in the schema (fields left
    at their defaults are absent; a union is ``(member, fields)``)."""
    if data[4:8] != IDENTIFIER:
        raise ValueError(f"not TFLite metadata: file identifier {data[4:8]!r}, not {IDENTIFIER!r}")
    return _read_table(data, N.UOffsetTFlags.py_type(int.from_bytes(data[:4], "little")), "ModelMetadata")


# -- writing ----------------------------------------------------------------------------
def _write_table(b: flatbuffers.Builder, table: str, value: dict[str, Any]) -> int:
    unknown = set(value) - {f for f, _ in TABLES[table]}
    if unknown:
        raise ValueError(f"{table} has no field {sorted(unknown)}")
    offsets: dict[str, int] = {}
    for field, kind, _ in _slots(table):  # children first: flatbuffers builds bottom-up
        if field not in value:
            continue
        v = value[field]
        if isinstance(kind, tuple):
            offsets[field] = _write_table(b, v[0], v[1])
        elif isinstance(kind, list):
            item = kind[0]
            if item == "string" or item in TABLES:
                items = [b.CreateString(s) if item == "string" else _write_table(b, item, s) for s in v]
                b.StartVector(4, len(items), 4)
                for off in reversed(items):
                    b.PrependUOffsetTRelative(off)
            else:
                flags, size = SCALARS[item]
                b.StartVector(size, len(v), size)
                for x in reversed(v):
                    b.Prepend(flags, x)
            offsets[field] = b.EndVector()
        elif kind == "string":
            offsets[field] = b.CreateString(v)
        elif isinstance(kind, str) and kind in TABLES:
            offsets[field] = _write_table(b, kind, v)
    b.StartObject(sum(2 if isinstance(k, tuple) else 1 for _, k in TABLES[table]))
    for field, kind, slot in _slots(table):
        if field not in value:
            continue
        if isinstance(kind, tuple):
            b.PrependUint8Slot(slot - 1, kind[1][value[field][0]], 0)
            b.PrependUOffsetTRelativeSlot(slot, offsets[field], 0)
        elif field in offsets:
            b.PrependUOffsetTRelativeSlot(slot, offsets[field], 0)
        else:
            flags, _ = _scalar(kind)
            x = kind[value[field]] if isinstance(kind, dict) else value[field]
            b.PrependSlot(flags, slot, x, 0)
    return b.EndObject()


def build(metadata: dict[str, Any]) -> bytes:
    """``metadata`` (as :func:`parse` gives it) as a ``TFLITE_METADATA`` buffer."""
    b = flatbuffers.Builder(1024)
    b.Finish(_write_table(b, "ModelMetadata", metadata), file_identifier=IDENTIFIER)
    return bytes(b.Output())


def image_classifier(meta: dict[str, Any]) -> tuple[dict[str, Any], dict[str, bytes]]:
    """The Task Library's metadata for one of our classifiers (from our export metadata)
    and the files to pack with it: mean/std on 0-255 pixels, RGB at the export
    resolution, the labels (``labels.txt``, one per output) when the model has them."""
    pre = meta.get("preprocess") or {}
    size = int(meta.get("resolution") or pre.get("resolution") or 224)
    image = {"name": "image", "description": "RGB image, NHWC, normalized as process_units say",
             "content": {"content_properties": ("ImageProperties", {"color_space": "RGB",
                                                                    "default_size": {"width": size, "height": size}})},
             "process_units": [{"options": ("NormalizationOptions", {
                 "mean": [255.0 * m for m in pre.get("mean", (0.485, 0.456, 0.406))],
                 "std": [255.0 * s for s in pre.get("std", (0.229, 0.224, 0.225))]})}]}
    logits = {"name": "logits", "description": "class logits (no softmax)",
              "content": {"content_properties": ("FeatureProperties", {})}}
    files: dict[str, bytes] = {}
    if meta.get("labels"):
        files[LABELS_FILE] = ("\n".join(str(label) for label in meta["labels"]) + "\n").encode()
        logits["associated_files"] = [{"name": LABELS_FILE, "description": "one label per output",
                                       "type": "TENSOR_AXIS_LABELS"}]
    model = {"name": str(meta.get("model_name") or "mobilenet"),
             "description": "image classifier exported by mobilenet",
             "version": str(meta.get("mobilenet_version") or ""),
             "subgraph_metadata": [{"input_tensor_metadata": [image], "output_tensor_metadata": [logits]}],
             "min_parser_version": "1.0.0"}
    return model, files


def pack(files: dict[str, bytes]) -> bytes:
    """A zip of ``files``, stored uncompressed (how the Task Library reads them, and
    how Google's files carry theirs), to append to a ``.tflite``."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as z:
        for name, data in files.items():
            z.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), data)
    return out.getvalue()


def associated_files(data: bytes) -> dict[str, bytes]:
    """The files zipped onto a ``.tflite`` (none: ``{}``)."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            return {name: z.read(name) for name in z.namelist()}
    except zipfile.BadZipFile:
        return {}
