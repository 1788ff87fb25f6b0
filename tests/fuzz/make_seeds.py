#!/usr/bin/env python3
"""Writes the fuzz targets' seed corpus, tests/fuzz/corpus/<target>/, and the experiment dictionary.

Run with the reference environment (~/.cache/segscope/venv/bin/python); the output is committed,
so CI never runs this. Seeds come from:
  - tests/fixtures/make_format_fixtures.py (PNG/JPEG images and masks, broken ones included),
  - tests/parity/make_weights_fixtures.py (.safetensors and torch.save files, small ones only),
  - resources/presets/*.json,
plus a few small files written here for formats and layouts those do not cover (BMP, TIFF, WebP,
interlaced, 1/2/16-bit and grey+alpha PNGs, safetensors metadata and empty tensors, torch.save of
views, nested wrappers and protocol 4, --set overrides). Files above MAX_BYTES are skipped, so the
corpus stays small. Existing seeds are kept; only these names are rewritten.
"""
import glob
import io
import json
import os
import subprocess
import sys
import tempfile
import zipfile

import numpy as np
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
CORPUS = os.path.join(HERE, "corpus")
MAX_BYTES = 12 * 1024


def put(target, name, data):
    if len(data) > MAX_BYTES:
        return
    folder = os.path.join(CORPUS, target)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, name), "wb") as f:
        f.write(data)


def encoded(image, fmt, **options):
    out = io.BytesIO()
    image.save(out, format=fmt, **options)
    return out.getvalue()


def gradient(w, h):
    yy, xx = np.mgrid[0:h, 0:w]
    return np.stack([(xx * 255 // max(1, w - 1)), (yy * 255 // max(1, h - 1)), (xx ^ yy) & 255],
                    axis=-1).astype(np.uint8)


def image_seeds():
    rgb = Image.fromarray(gradient(12, 9))
    put("image", "gen_rgb.bmp", encoded(rgb, "BMP"))
    put("image", "gen_rgb.tiff", encoded(rgb, "TIFF"))
    try:
        put("image", "gen_rgb.webp", encoded(rgb, "WEBP", quality=80))
    except (KeyError, OSError):
        pass
    put("image", "gen_progressive.jpg", encoded(rgb, "JPEG", quality=80, progressive=True))
    put("image", "gen_cmyk.jpg", encoded(rgb.convert("CMYK"), "JPEG", quality=80))
    put("image", "gen_gray.jpg", encoded(rgb.convert("L"), "JPEG", quality=80))
    put("image", "gen_rgba.png", encoded(rgb.convert("RGBA"), "PNG"))
    put("image", "gen_interlaced.png", encoded(rgb, "PNG", interlace=1))
    put("image", "gen_gray16.png", encoded(Image.fromarray((gradient(12, 9)[:, :, 0].astype(np.uint16) * 257)), "PNG"))


def mask_seeds():
    labels = (np.arange(12 * 9).reshape(9, 12) % 5).astype(np.uint8)
    labels[0, :] = 255
    pal = Image.fromarray(labels).convert("P")
    put("mask", "gen_palette.png", encoded(Image.fromarray(labels).convert("P"), "PNG"))
    put("mask", "gen_gray.png", encoded(Image.fromarray(labels), "PNG"))
    put("mask", "gen_interlaced.png", encoded(Image.fromarray(labels), "PNG", interlace=1))
    for bits in (1, 2, 4):
        p = Image.fromarray(labels % (1 << bits)).convert("P")
        put("mask", f"gen_palette_{bits}bit.png", encoded(p, "PNG", bits=bits))
    put("mask", "gen_1bit.png", encoded(Image.fromarray(labels > 2), "PNG"))
    put("mask", "gen_gray_alpha.png", encoded(Image.fromarray(labels).convert("LA"), "PNG"))
    put("mask", "gen_rgba.png", encoded(pal.convert("RGBA"), "PNG"))
    put("mask", "gen_trimap.png", encoded(Image.fromarray((labels % 3 + 1).astype(np.uint8)), "PNG"))
    put("mask", "gen_16bit.png", encoded(Image.fromarray(labels.astype(np.uint16) * 300), "PNG"))
    trns = Image.fromarray(labels).convert("P")
    put("mask", "gen_palette_trns.png", encoded(trns, "PNG", transparency=0))


def format_fixture_seeds(tmp):
    out = os.path.join(tmp, "formats")
    subprocess.run([sys.executable, os.path.join(ROOT, "tests", "fixtures", "make_format_fixtures.py"), "--out", out],
                   check=True, stdout=subprocess.DEVNULL)
    for path in sorted(glob.glob(os.path.join(out, "**", "*"), recursive=True)):
        if not os.path.isfile(path) or os.sep + "expected" + os.sep in path:
            continue
        with open(path, "rb") as f:
            data = f.read()
        name = "fixture_" + os.path.relpath(path, out).replace(os.sep, "_")
        if data[:3] == b"\xff\xd8\xff" or data[:8] == b"\x89PNG\r\n\x1a\n":
            put("image", name, data)
        if data[:8] == b"\x89PNG\r\n\x1a\n" and ("Segmentation" in path or "trimaps" in path or "masks" in path):
            put("mask", name, data)


def weights_seeds(tmp):
    import torch
    from collections import OrderedDict
    from safetensors.torch import save

    subprocess.run([sys.executable, os.path.join(ROOT, "tests", "parity", "make_weights_fixtures.py"), "--out", tmp],
                   check=True, stdout=subprocess.DEVNULL)
    for path in sorted(glob.glob(os.path.join(tmp, "weights", "*"))):
        with open(path, "rb") as f:
            data = f.read()
        name = "fixture_" + os.path.basename(path)
        if path.endswith(".safetensors"):
            put("safetensors", name, data)
        elif path.endswith(".pth"):
            put("pth", name, data)

    put("safetensors", "gen_metadata.safetensors",
        save({"a": torch.arange(6, dtype=torch.int16).reshape(2, 3)}, metadata={"format": "pt", "note": "x"}))
    put("safetensors", "gen_empty_and_scalar.safetensors",
        save({"empty": torch.zeros(0, 3), "scalar": torch.tensor(2.5, dtype=torch.float64)}))
    put("safetensors", "gen_no_tensors.safetensors", save({}))

    base = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    torch.manual_seed(0)
    pth = {
        "gen_views.pth": OrderedDict([("t", base.t()), ("row", base[1]), ("whole", base)]),
        "gen_nested.pth": {"model": {"state_dict": OrderedDict([("w", torch.ones(2, dtype=torch.bfloat16))])},
                           "optimizer": {"lr": 0.1}},
        "gen_model_state_dict.pth": {"model_state_dict": {"w": torch.tensor([1, 2], dtype=torch.int8)}, "epoch": 1},
        "gen_scalar_bool.pth": {"flag": torch.tensor(True), "n": torch.tensor(3, dtype=torch.int64)},
        "gen_offset.pth": {"tail": base.flatten()[5:9]},
    }
    for name, obj in pth.items():
        out = io.BytesIO()
        torch.save(obj, out)
        put("pth", name, out.getvalue())
    out = io.BytesIO()
    torch.save({"w": torch.ones(3)}, out, pickle_protocol=4)
    put("pth", "gen_protocol4.pth", out.getvalue())

    # The pickles alone, for the target that wraps them in an archive (records data/0..15).
    for path in sorted(glob.glob(os.path.join(CORPUS, "pth", "*.pth"))):
        try:
            with zipfile.ZipFile(path) as z:
                pickle = next(n for n in z.namelist() if n.endswith("/data.pkl"))
                put("pth_pickle", os.path.basename(path)[:-4] + ".pkl", z.read(pickle))
        except (zipfile.BadZipFile, StopIteration):
            pass


def experiment_seeds():
    keys, values = set(), set()

    def walk(node):
        if isinstance(node, dict):
            for k, v in node.items():
                keys.add(k)
                walk(v)
        elif isinstance(node, str):
            values.add(node)

    for path in sorted(glob.glob(os.path.join(ROOT, "resources", "presets", "*.json"))):
        with open(path, "rb") as f:
            data = f.read()
        put("experiment", "preset_" + os.path.basename(path), data)
        walk(json.loads(data))
    for i, assignment in enumerate(["training.epochs=4", "training.iterations=70", "optimizer.betas=[0.9, 0.99]",
                                    "optimizer.betas=0.9,0.99", "model.classes=null", "dataset.root=/tmp/x",
                                    "training.class_weights=1,2,3", "runtime.threads=2", "schedule.gamma=1e400"]):
        put("experiment", f"set_{i}.txt", ("--set " + assignment).encode())
    # A deeply nested value in a known field (issue 20: nlohmann's serializer recursing on it).
    put("experiment", "nested_description.json",
        b'{"version": 1, "name": "x", "description": ' + b"[" * 3000 + b"]" * 3000 + b"}")
    # The dictionary: every key and string value the presets use, plus the enum names.
    values |= {"voc", "pets", "folder", "demo", "sgd", "adam", "adamw", "constant", "step", "poly", "cosine",
               "epoch", "iteration", "ce", "ce+dice", "train", "original", "off", "bf16", "fp16", "trimap",
               "binary", "binary-border-fg", "auto", "cpu", "cuda", "cuda:0"}
    with open(os.path.join(HERE, "experiment.dict"), "w") as f:
        f.write("# Keys and values of the presets and the enum names (written by make_seeds.py).\n")
        for word in sorted(keys):
            f.write(json.dumps('"' + word + '":') + "\n")
        for word in sorted(values):
            if len(word) <= 40:
                f.write(json.dumps('"' + word + '"') + "\n")
        for word in ["null", "true", "false", "1e400", "-0", "18446744073709551616", "{", "}", "[", "]", "--set "]:
            f.write(json.dumps(word) + "\n")


def main():
    image_seeds()
    mask_seeds()
    experiment_seeds()
    with tempfile.TemporaryDirectory() as tmp:
        format_fixture_seeds(tmp)
        weights_seeds(tmp)
    total = sum(os.path.getsize(p) for p in glob.glob(os.path.join(CORPUS, "*", "*")))
    print(f"corpus: {total // 1024} KB in {CORPUS}")


if __name__ == "__main__":
    main()
