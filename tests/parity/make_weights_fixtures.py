#!/usr/bin/env python3
"""Fixtures for SegScope's weights I/O tests (test_weights_io.cpp), under OUT/weights/:

  dtypes.safetensors      one (2, 3) tensor per safetensors dtype, named by it (F32, F16, BF16, F64,
                          I64, I32, I8, U8, BOOL), holding the values of VALUES below (exactly
                          representable in each dtype; the C++ test repeats them)
  state.pth               torch.save(OrderedDict) of STATE below (zip format)
  wrapped.pth             torch.save({"state_dict": STATE, "epoch": 3})
  legacy.pth              torch.save(STATE, _use_new_zipfile_serialization=False): refused by C++
  module.pth              torch.save(nn.Sequential(Conv2d, BatchNorm2d).state_dict()), seeded: an
                          OrderedDict with `_metadata` as real checkpoints are; module.safetensors
                          holds the same tensors
  timm_vit.safetensors    state_dict of timm VisionTransformer(img_size=224, patch_size=16,
                          embed_dim=192, depth=12, num_heads=3), seeded (ViT-Tiny/16 at 224 with
                          its 1000-class head: a stand-in for an ImageNet checkpoint)
  timm_vit_expected.safetensors
                          `pos_embed_32`: its pos_embed resized to a 32×32 grid (512 / 16) by
                          F.interpolate(bilinear, align_corners=False), cls position kept

OUT/weights/stamp.json records the script's hash and the package versions; a later run with the
same stamp returns at once (--force rewrites).
"""
import argparse
import hashlib
import importlib.metadata
import os
import sys

FILES = ("dtypes.safetensors", "state.pth", "wrapped.pth", "legacy.pth", "module.pth", "module.safetensors", "timm_vit.safetensors",
         "timm_vit_expected.safetensors")


def stamp_text():
    with open(__file__, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    versions = {p: importlib.metadata.version(p) for p in ("torch", "timm", "safetensors")}
    return f'{{"script": "{digest}", "versions": {versions!r}}}'


def up_to_date(out):
    stamp = os.path.join(out, "stamp.json")
    if not os.path.exists(stamp) or not all(os.path.exists(os.path.join(out, f)) for f in FILES):
        return False
    with open(stamp) as f:
        return f.read() == stamp_text()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--force", action="store_true")
    ARGS = parser.parse_args()
    OUT = os.path.join(ARGS.out, "weights")
    if not ARGS.force and up_to_date(OUT):
        print(OUT + ": up to date")
        sys.exit(0)

from collections import OrderedDict  # noqa: E402

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

# Exactly representable in every float dtype (F16/BF16 included) and in range of every integer one.
VALUES = {
    "F32": ([0.5, -1.25, 3.0, 1024.0, -0.0078125, 7.0], torch.float32),
    "F16": ([0.5, -1.25, 3.0, 1024.0, -0.0078125, 7.0], torch.float16),
    "BF16": ([0.5, -1.25, 3.0, 1024.0, -0.0078125, 7.0], torch.bfloat16),
    "F64": ([0.1, -1e300, 3.0, 2.0 ** -1000, -0.0, 123456789.123456789], torch.float64),
    "I64": ([-(2 ** 40), 5, 0, 2 ** 40 + 3, -1, 2 ** 62], torch.int64),
    "I32": ([-(2 ** 31), 2 ** 31 - 1, 0, 5, -7, 100000], torch.int32),
    "I8": ([-128, 127, 0, 1, -1, 5], torch.int8),
    "U8": ([0, 255, 1, 128, 7, 64], torch.uint8),
    "BOOL": ([True, False, True, True, False, False], torch.bool),
}


def state():
    return OrderedDict([
        ("conv.weight", (torch.arange(24, dtype=torch.float32) / 8.0 - 1.0).reshape(2, 3, 2, 2)),
        ("conv.bias", torch.tensor([0.25, -0.5])),
        ("bn.running_var", torch.tensor([1.5, 2.5], dtype=torch.float64)),
        ("bn.num_batches_tracked", torch.tensor(7, dtype=torch.int64)),
        ("head.weight", torch.tensor([[1.0, 2.0], [3.0, 4.0]], dtype=torch.float16)),
    ])


def main():
    os.makedirs(OUT, exist_ok=True)
    stamp = os.path.join(OUT, "stamp.json")
    if os.path.exists(stamp):
        os.remove(stamp)
    torch.set_num_threads(1)

    save_file({name: torch.tensor(v, dtype=dt).reshape(2, 3) for name, (v, dt) in VALUES.items()},
              os.path.join(OUT, "dtypes.safetensors"))

    torch.save(state(), os.path.join(OUT, "state.pth"))
    torch.save({"state_dict": state(), "epoch": 3}, os.path.join(OUT, "wrapped.pth"))
    torch.save(state(), os.path.join(OUT, "legacy.pth"), _use_new_zipfile_serialization=False)

    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    with torch.no_grad():
        module[1].running_mean.normal_()
        module[1].num_batches_tracked += 5
    torch.save(module.state_dict(), os.path.join(OUT, "module.pth"))
    save_file({k: v.contiguous() for k, v in module.state_dict().items()}, os.path.join(OUT, "module.safetensors"))

    from timm.models.vision_transformer import VisionTransformer
    torch.manual_seed(0)
    vit = VisionTransformer(img_size=224, patch_size=16, embed_dim=192, depth=12, num_heads=3)
    sd = {k: v.contiguous() for k, v in vit.state_dict().items()}
    # timm initialises pos_embed with std 0.02; larger values make the resize check meaningful.
    sd["pos_embed"] = torch.randn(sd["pos_embed"].shape, generator=torch.Generator().manual_seed(1))
    save_file(sd, os.path.join(OUT, "timm_vit.safetensors"))
    pos = sd["pos_embed"]
    grid = pos[:, 1:].reshape(1, 14, 14, 192).permute(0, 3, 1, 2)
    grid = F.interpolate(grid, size=(32, 32), mode="bilinear", align_corners=False)
    expected = torch.cat([pos[:, :1], grid.permute(0, 2, 3, 1).reshape(1, 32 * 32, 192)], dim=1)
    save_file({"pos_embed_32": expected.contiguous()}, os.path.join(OUT, "timm_vit_expected.safetensors"))

    with open(stamp, "w") as f:
        f.write(stamp_text())
    print("weights fixtures written to " + OUT)


if __name__ == "__main__":
    main()
