#!/usr/bin/env python3
"""A SegScope --hf-folder export through transformers' from_pretrained (run by test_newest_interop.cpp
with the pinned and the newest environment).

  check_hf_folder.py FOLDER IO.safetensors

Loads SegformerForSemanticSegmentation.from_pretrained(FOLDER, output_loading_info=True), requires
no missing, unexpected or mismatched keys, runs an eval forward on io's `input`, upsamples the
logits bilinearly to the input size (as SegScope's forward does) and compares with io's `logits`.
Prints "transformers VERSION: ..." ending in "ok" or "FAIL"; exits 0 when loading is clean and the
largest absolute difference is at most 1e-4 x max(1, max |logits|).
"""
import sys

import torch
import torch.nn.functional as F
import transformers
from safetensors.torch import load_file
from transformers import SegformerForSemanticSegmentation


def main():
    folder, io_path = sys.argv[1], sys.argv[2]
    torch.set_num_threads(1)
    model, info = SegformerForSemanticSegmentation.from_pretrained(folder, output_loading_info=True)
    problems = {k: v for k, v in info.items() if k in ("missing_keys", "unexpected_keys", "mismatched_keys") and v}
    if problems:
        print(f"transformers {transformers.__version__}: from_pretrained reports {problems} FAIL")
        return 1
    model.eval()
    io = load_file(io_path)
    with torch.no_grad():
        logits = model(pixel_values=io["input"]).logits
        logits = F.interpolate(logits, size=io["input"].shape[-2:], mode="bilinear", align_corners=False)
    expected = io["logits"]
    diff = (logits - expected).abs().max().item()
    tolerance = 1e-4 * max(1.0, expected.abs().max().item())
    ok = diff <= tolerance
    print(f"transformers {transformers.__version__}: {len(model.state_dict())} tensors, "
          f"{model.config.num_labels} labels, max |diff| {diff:.3g} " + ("ok" if ok else "FAIL"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
