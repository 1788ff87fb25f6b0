#!/usr/bin/env python3
"""Round trip of SegScope exports through the reference packages (run by test_weights_io.cpp).

  check_roundtrip.py --classes K DIR

For every DIR/<id>.weights.safetensors (with its DIR/<id>.io.safetensors) it builds the reference
model for <id> at K classes (the builders of make_cnn_reference.py and make_transformer_reference.py),
loads the weights with load_state_dict(strict=True), runs an eval forward on io's `input` and
compares with io's `logits` (what SegScope computed). One process for all models: the imports
cost more than the checks. Prints one line per model ending in "ok" or "FAIL"; exits 0 when every
model loads and its largest absolute difference is at most 1e-4 × max(1, max |logits|).
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402
from safetensors.torch import load_file  # noqa: E402


def build(model_id, classes):
    if model_id.startswith(("segformer", "segmenter", "setr")):
        import make_transformer_reference as ref
        model = ref.build(model_id, classes)
        target = model.state_dict_model() if hasattr(model, "state_dict_model") else model
        return model, target
    import make_cnn_reference as ref
    model = ref.build(model_id, classes)
    return model, model


def check(model_id, classes, weights, io_path):
    model, target = build(model_id, classes)
    try:
        target.load_state_dict(load_file(weights), strict=True)
    except Exception as e:  # a naming or shape difference
        print(f"{model_id}: load_state_dict(strict=True) failed: {e} FAIL")
        return False
    model.eval()
    io = load_file(io_path)
    with torch.no_grad():
        logits = model(io["input"])
    expected = io["logits"]
    if logits.shape != expected.shape:
        print(f"{model_id}: reference logits {tuple(logits.shape)}, SegScope's {tuple(expected.shape)} FAIL")
        return False
    diff = (logits - expected).abs().max().item()
    scale = expected.abs().max().item()
    tolerance = 1e-4 * max(1.0, scale)
    ok = diff <= tolerance
    print(f"{model_id}: max |diff| {diff:.3g}, max |logits| {scale:.3g}, tolerance {tolerance:.3g} "
          + ("ok" if ok else "FAIL"))
    return ok


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--classes", type=int, required=True)
    parser.add_argument("dir")
    args = parser.parse_args()
    torch.set_num_threads(1)
    suffix = ".weights.safetensors"
    ids = sorted(f[:-len(suffix)] for f in os.listdir(args.dir) if f.endswith(suffix))
    if not ids:
        print(f"{args.dir}: no *{suffix}")
        return 1
    results = [check(i, args.classes, os.path.join(args.dir, i + suffix), os.path.join(args.dir, i + ".io.safetensors"))
               for i in ids]
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
