#!/usr/bin/env python3
"""Reads a .safetensors file SegScope wrote (test_weights_io.cpp) with safetensors.torch.load_file
and checks every tensor and the metadata against what the C++ test put in. Exit 0 when all match."""
import sys

import torch
from safetensors import safe_open
from safetensors.torch import load_file

EXPECTED = {
    "f32": torch.tensor([[0.5, -1.25, 3.0], [1024.0, -0.0078125, 7.0]], dtype=torch.float32),
    "f16": torch.tensor([0.5, -1.25, 3.0], dtype=torch.float16),
    "bf16": torch.tensor([1024.0, -0.0078125], dtype=torch.bfloat16),
    "f64": torch.tensor([0.1, -1e300], dtype=torch.float64),
    "i64": torch.tensor([-(2 ** 40), 2 ** 62], dtype=torch.int64),
    "i32": torch.tensor([[-(2 ** 31)], [2 ** 31 - 1]], dtype=torch.int32),
    "i8": torch.tensor([-128, 127], dtype=torch.int8),
    "u8": torch.tensor([0, 255, 7], dtype=torch.uint8),
    "bool": torch.tensor([True, False, True], dtype=torch.bool),
    "scalar": torch.tensor(2.5, dtype=torch.float32),
    "transposed": torch.arange(6, dtype=torch.float32).reshape(2, 3).t().contiguous(),
}


def main(path):
    tensors = load_file(path)
    ok = True
    if set(tensors) != set(EXPECTED):
        print(f"names differ: {sorted(tensors)} vs {sorted(EXPECTED)}")
        ok = False
    for name, want in EXPECTED.items():
        got = tensors.get(name)
        if got is None:
            continue
        if got.dtype != want.dtype or got.shape != want.shape or not torch.equal(got, want):
            print(f"{name}: got {got.dtype} {tuple(got.shape)} {got.tolist()}, want {want.dtype} "
                  f"{tuple(want.shape)} {want.tolist()}")
            ok = False
    with safe_open(path, framework="pt") as f:
        metadata = f.metadata()
    if metadata != {"model": "segformer-b0", "note": "round trip"}:
        print(f"metadata {metadata}")
        ok = False
    print("ok" if ok else "mismatch")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
