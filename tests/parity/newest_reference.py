#!/usr/bin/env python3
"""Reference data from the newest releases of the Python references (scripts/requirements-newest.txt,
run with ~/.cache/segscope/venv-newest/bin/python), for test_newest_interop.cpp. Under OUT/newest/:

  versions.json                      the package versions that wrote the files
  <id>/io.safetensors                `input` (B, 3, H, W) and the eval-mode `logits` at the input size
  <id>/weights.safetensors           safetensors.torch.save_file(model.state_dict()): for SegFormer
                                     under transformers 5 that is the 5.x naming
  segformer-bN/hub/                  save_pretrained() of the same model: config.json and
                                     model.safetensors in the 4.x names the hub's checkpoints carry
                                     (transformers 5 converts back when it saves)
  segformer-b0/backbone.safetensors  model.segformer.state_dict(): a bare SegformerModel (5.x names,
                                     no "segformer." prefix)
  segformer-b0/backbone-hub/         model.segformer.save_pretrained(): the same in 4.x names, as
                                     nvidia/mit-b* are laid out (without their classifier)

SegFormer B0 and B2 use their real configs at an odd input size (65 x 97); the other families
(smp Unet/FPN/DeepLabV3+, torchvision FCN, timm ViT in Segmenter and SETR) reuse the builders of
make_cnn_reference.py and make_transformer_reference.py, so their parity is checked against the
newest smp and timm too. OUT/newest/stamp.json records the script's hash and the versions; a later
run with the same stamp returns at once (--force rewrites).
"""
import argparse
import hashlib
import importlib.metadata
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

PACKAGES = ("torch", "torchvision", "transformers", "timm", "segmentation-models-pytorch", "safetensors")
CLASSES = 5
SEGFORMER = {"segformer-b0": (1, 3, 65, 97), "segformer-b2": (1, 3, 65, 97)}
OTHERS = {
    "unet-resnet18": (1, 3, 64, 96),
    "fpn-resnet50": (1, 3, 64, 64),
    "deeplabv3plus-resnet50": (1, 3, 64, 64),
    "fcn-resnet50": (1, 3, 65, 97),
    "segmenter-linear-vit-tiny-p16": (1, 3, 70, 90),
    "setr-naive-vit-tiny-p16": (1, 3, 70, 90),
}


def versions():
    return {p: importlib.metadata.version(p) for p in PACKAGES}


def stamp_text():
    with open(__file__, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    return json.dumps({"script": digest, "versions": versions()}, sort_keys=True)


def save(tensors, path):
    from safetensors.torch import save_file
    save_file({k: v.contiguous() for k, v in tensors.items()}, path)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--force", action="store_true")
    args = parser.parse_args()
    out = os.path.join(args.out, "newest")
    stamp = os.path.join(out, "stamp.json")
    if not args.force and os.path.exists(stamp):
        with open(stamp) as f:
            if f.read() == stamp_text():
                print(out + ": up to date")
                return 0
    os.makedirs(out, exist_ok=True)
    if os.path.exists(stamp):
        os.remove(stamp)

    import torch
    import make_cnn_reference as cnn
    import make_transformer_reference as tr

    torch.set_num_threads(max(1, int(os.environ.get("OMP_NUM_THREADS", "1"))))
    with open(os.path.join(out, "versions.json"), "w") as f:
        json.dump(versions(), f, indent=1, sort_keys=True)

    for model_id, shape in {**SEGFORMER, **OTHERS}.items():
        generator = torch.Generator().manual_seed(4321)
        model = (tr if model_id.startswith(("segformer", "segmenter", "setr")) else cnn).build(model_id, CLASSES)
        if model_id in OTHERS and not model_id.startswith(("segmenter", "setr")):
            cnn.randomize(model, generator)
        else:
            tr.randomise(model, generator)
        model.eval()
        x = torch.randn(shape, generator=generator)
        with torch.no_grad():
            logits = model(x)
        assert logits.shape == (shape[0], CLASSES, shape[2], shape[3]), logits.shape
        folder = os.path.join(out, model_id)
        os.makedirs(folder, exist_ok=True)
        target = model.state_dict_model() if hasattr(model, "state_dict_model") else model
        save(target.state_dict(), os.path.join(folder, "weights.safetensors"))
        save({"input": x, "logits": logits}, os.path.join(folder, "io.safetensors"))
        if model_id in SEGFORMER:
            target.save_pretrained(os.path.join(folder, "hub"))
        if model_id == "segformer-b0":
            save(target.segformer.state_dict(), os.path.join(folder, "backbone.safetensors"))
            target.segformer.save_pretrained(os.path.join(folder, "backbone-hub"))
        print(f"{model_id}: logits {tuple(logits.shape)} |max| {float(logits.abs().max()):.3f}")

    with open(stamp, "w") as f:
        f.write(stamp_text())
    print("newest reference fixtures written to " + out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
