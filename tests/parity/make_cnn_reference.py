#!/usr/bin/env python3
"""Reference data for SegScope's CNN models (U-Net/FPN/DeepLabV3+/FCN on ResNet encoders).

For each model that gets a logits check it writes, under OUT/cnn/<id>/:
  weights.safetensors  the reference state_dict (seeded random weights, BN statistics randomised)
  io.safetensors       `input` and the eval-mode `logits`
and for every model, OUT/cnn/models.json: parameter count at 21 classes, and the state_dict
names with their shapes (at 21 classes), computed from the reference without running it.
OUT/cnn/stamp.json records the script's hash and the package versions; a later run with the same
stamp and complete files returns at once (--force rewrites).

References: segmentation_models_pytorch 0.5.0 (Unet, FPN, DeepLabV3Plus with torchvision ResNet
encoders), torchvision 0.23 (fcn_resnet50), and the seed U-Net of a SegFormer-vs-U-Net VOC
comparison, written here from its description on top of torchvision's resnet50.
"""
import argparse
import hashlib
import importlib.metadata
import json
import os
import sys
import time

# id -> (classes, batch, H, W) for the logits check; None: names, shapes and counts only.
# unet runs at a size that is not a multiple of 32 (smp's Unet accepts any size); FPN needs
# multiples of 32 and DeepLabV3+ multiples of 16; torchvision's FCN takes any size.
MODELS = {
    "unet-resnet18": (5, 2, 70, 90),
    "unet-resnet34": None,
    "unet-resnet50": (5, 1, 64, 96),
    "unet-resnet101": None,
    "fpn-resnet50": (5, 1, 64, 96),
    "deeplabv3plus-resnet50": (5, 1, 64, 96),
    "fcn-resnet50": (5, 1, 70, 90),
    "unet-seed-resnet50": (5, 1, 64, 96),
}


def stamp_text():
    """What the data depends on: this script and the reference packages' versions."""
    with open(__file__, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    versions = {p: importlib.metadata.version(p)
                for p in ("torch", "torchvision", "segmentation-models-pytorch", "safetensors")}
    return json.dumps({"script": digest, "versions": versions}, sort_keys=True)


def up_to_date(out):
    """The data is ~800 MB: skip rewriting it when an identical run already wrote it."""
    stamp = os.path.join(out, "stamp.json")
    if not os.path.exists(stamp) or not os.path.exists(os.path.join(out, "models.json")):
        return False
    for model_id, run in MODELS.items():
        if run is not None and not all(os.path.exists(os.path.join(out, model_id, name))
                                       for name in ("weights.safetensors", "io.safetensors")):
            return False
    with open(stamp) as f:
        return f.read() == stamp_text()


def parse_args():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--force", action="store_true", help="rewrite even when up to date")
    return parser.parse_args()


# Checked before importing torch (seconds on a loaded machine): ctest runs this on every run.
if __name__ == "__main__":
    _args = parse_args()
    if not _args.force and up_to_date(os.path.join(_args.out, "cnn")):
        print(os.path.join(_args.out, "cnn") + ": up to date")
        sys.exit(0)

import torch
import torch.nn as nn
import torch.nn.functional as F
import segmentation_models_pytorch as smp
import torchvision
from safetensors.torch import save_file

NUM_CLASSES = 21


class DoubleConv(nn.Module):
    def __init__(self, in_channels, out_channels):
        super().__init__()
        self.double_conv = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )

    def forward(self, x):
        return self.double_conv(x)


class SeedUNetResNet50(nn.Module):
    """U-Net with a torchvision ResNet-50 encoder, transposed-conv decoders and DoubleConv fusions."""

    def __init__(self, num_classes):
        super().__init__()
        r = torchvision.models.resnet50(weights=None)
        self.encoder1 = nn.Sequential(r.conv1, r.bn1, r.relu)
        self.encoder2 = nn.Sequential(r.maxpool, r.layer1)
        self.encoder3 = r.layer2
        self.encoder4 = r.layer3
        self.encoder5 = r.layer4

        def decoder(cin, cout):
            return nn.Sequential(nn.ConvTranspose2d(cin, cout, 2, stride=2), DoubleConv(2 * cout, cout))

        self.decoder4 = decoder(2048, 1024)
        self.decoder3 = decoder(1024, 512)
        self.decoder2 = decoder(512, 256)
        self.decoder1 = decoder(256, 64)
        self.final_conv = nn.Conv2d(64, num_classes, 1)

    def forward(self, x):
        e1 = self.encoder1(x)
        e2 = self.encoder2(e1)
        e3 = self.encoder3(e2)
        e4 = self.encoder4(e3)
        e5 = self.encoder5(e4)
        d = self.decoder4[1](torch.cat([self.decoder4[0](e5), e4], dim=1))
        d = self.decoder3[1](torch.cat([self.decoder3[0](d), e3], dim=1))
        d = self.decoder2[1](torch.cat([self.decoder2[0](d), e2], dim=1))
        d = self.decoder1[1](torch.cat([self.decoder1[0](d), e1], dim=1))
        d = F.interpolate(d, scale_factor=2, mode="bilinear", align_corners=False)
        return self.final_conv(d)


class FcnLogits(nn.Module):
    """torchvision's FCN returns a dict; its state_dict is the wrapped model's (no prefix added)."""

    def __init__(self, num_classes):
        super().__init__()
        self.model = torchvision.models.segmentation.fcn_resnet50(
            weights=None, weights_backbone=None, num_classes=num_classes, aux_loss=False)

    def state_dict(self, *args, **kwargs):
        return self.model.state_dict(*args, **kwargs)

    def load_state_dict(self, *args, **kwargs):
        return self.model.load_state_dict(*args, **kwargs)

    def forward(self, x):
        return self.model(x)["out"]


def build(model_id, num_classes):
    if model_id.startswith("unet-seed-"):
        return SeedUNetResNet50(num_classes)
    if model_id == "fcn-resnet50":
        return FcnLogits(num_classes)
    family, encoder = model_id.split("-", 1)
    cls = {"unet": smp.Unet, "fpn": smp.FPN, "deeplabv3plus": smp.DeepLabV3Plus}[family]
    return cls(encoder_name=encoder, encoder_weights=None, classes=num_classes)


def randomize(model, generator):
    """Weights with a spread that keeps activations O(1) through deep stacks; non-trivial BN."""
    with torch.no_grad():
        for name, p in model.state_dict().items():
            if name.endswith("num_batches_tracked"):
                continue
            if name.endswith("running_mean"):
                p.copy_(0.1 * torch.randn(p.shape, generator=generator))
            elif name.endswith("running_var"):
                p.copy_(0.5 + torch.rand(p.shape, generator=generator))
            elif p.dim() >= 2:
                fan_in = p[0].numel()
                p.copy_(torch.randn(p.shape, generator=generator) * (1.0 / fan_in) ** 0.5)
            elif name.endswith("bias"):
                p.copy_(0.1 * torch.randn(p.shape, generator=generator))
            else:  # BN/GN weight
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=generator))


def main():
    args = parse_args()
    out = os.path.join(args.out, "cnn")
    os.makedirs(out, exist_ok=True)
    stamp = os.path.join(out, "stamp.json")
    if os.path.exists(stamp):
        os.remove(stamp)
    torch.set_num_threads(max(1, int(os.environ.get("OMP_NUM_THREADS", "1"))))

    summary = {}
    for model_id, run in MODELS.items():
        start = time.time()
        model = build(model_id, NUM_CLASSES)
        sd = model.state_dict()
        summary[model_id] = {
            "parameters": sum(p.numel() for p in model.parameters()),
            "state_dict": {k: list(v.shape) for k, v in sd.items()},
        }
        if model_id == "unet-resnet50":
            # The smp encoder is torchvision's ResNet without fc: the names a pretrained
            # torchvision checkpoint maps onto.
            tv = torchvision.models.resnet50(weights=None).state_dict()
            enc = {k[len("encoder."):]: list(v.shape) for k, v in sd.items() if k.startswith("encoder.")}
            tv_no_fc = {k: list(v.shape) for k, v in tv.items() if not k.startswith("fc.")}
            assert enc == tv_no_fc, "smp resnet50 encoder differs from torchvision resnet50"
            summary["torchvision-resnet50"] = {"state_dict": {k: list(v.shape) for k, v in tv.items()}}
        if run is None:
            print(f"{model_id}: {summary[model_id]['parameters']} parameters ({time.time() - start:.1f}s)")
            continue

        classes, batch, height, width = run
        generator = torch.Generator().manual_seed(1234)
        model = build(model_id, classes)
        randomize(model, generator)
        model.eval()
        x = torch.randn(batch, 3, height, width, generator=generator)
        with torch.no_grad():
            logits = model(x)
        assert logits.shape == (batch, classes, height, width), logits.shape
        folder = os.path.join(out, model_id)
        os.makedirs(folder, exist_ok=True)
        save_file({k: v.contiguous() for k, v in model.state_dict().items()},
                  os.path.join(folder, "weights.safetensors"))
        save_file({"input": x.contiguous(), "logits": logits.contiguous()}, os.path.join(folder, "io.safetensors"))
        summary[model_id]["logits_check"] = {"classes": classes, "shape": [batch, 3, height, width],
                                             "logits_abs_max": float(logits.abs().max())}
        print(f"{model_id}: {summary[model_id]['parameters']} parameters, logits {tuple(logits.shape)} "
              f"|max| {float(logits.abs().max()):.3f} ({time.time() - start:.1f}s)")

    seed = summary["unet-seed-resnet50"]["parameters"]
    assert seed == 71_863_765, f"seed U-Net has {seed} parameters, the published model 71,863,765"
    unet50 = summary["unet-resnet50"]["parameters"]
    assert unet50 == 32_524_005, f"smp Unet resnet50 has {unet50} parameters, expected 32,524,005"
    with open(os.path.join(out, "models.json"), "w") as f:
        json.dump(summary, f, indent=1)
    with open(stamp, "w") as f:
        f.write(stamp_text())


if __name__ == "__main__":
    main()
