#!/usr/bin/env python3
"""Round trip of a SegScope export through the reference package (run by test_weights_io.cpp).

  check_roundtrip.py --model ID --classes K --weights W.safetensors --io IO.safetensors

builds the reference model for ID (the builders of make_cnn_reference.py and
make_transformer_reference.py), loads W with load_state_dict(strict=True), runs an eval forward
on IO's `input` and compares with IO's `logits` (what SegScope computed). Exit 0 when the largest
absolute difference is at most 1e-4 × max(1, max |logits|); 1 otherwise; 2 for a load failure.
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


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True)
    parser.add_argument("--classes", type=int, required=True)
    parser.add_argument("--weights", required=True)
    parser.add_argument("--io", required=True)
    args = parser.parse_args()
    torch.set_num_threads(1)

    model, target = build(args.model, args.classes)
    try:
        target.load_state_dict(load_file(args.weights), strict=True)
    except Exception as e:  # a naming or shape difference: report it, distinctly
        print(f"{args.model}: load_state_dict(strict=True) failed: {e}")
        return 2
    model.eval()
    io = load_file(args.io)
    with torch.no_grad():
        logits = model(io["input"])
    expected = io["logits"]
    if logits.shape != expected.shape:
        print(f"{args.model}: reference logits {tuple(logits.shape)}, SegScope's {tuple(expected.shape)}")
        return 1
    diff = (logits - expected).abs().max().item()
    scale = expected.abs().max().item()
    tolerance = 1e-4 * max(1.0, scale)
    print(f"{args.model}: max |diff| {diff:.3g}, max |logits| {scale:.3g}, tolerance {tolerance:.3g}")
    return 0 if diff <= tolerance else 1


if __name__ == "__main__":
    sys.exit(main())
