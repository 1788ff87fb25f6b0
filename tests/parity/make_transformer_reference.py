#!/usr/bin/env python3
"""Reference data for SegScope's transformer models (SegFormer, Segmenter, SETR).

For each model that gets a logits check it writes, under OUT/transformer/<id>/:
  weights.safetensors  the reference state_dict (seeded random weights; LayerNorm/BatchNorm affine
                       parameters, biases and BN statistics randomised so wiring errors show)
  io.safetensors       `input`, the eval-mode `logits` at the input size, and for the ViT models
                       `encoder_tokens`: timm VisionTransformer.forward_features on the padded
                       input, without the cls token (B, N, C)
and for every model id, OUT/transformer/models.json: parameter count at 21 classes, and the
state_dict names with their shapes (at 21 classes), computed on the meta device without running.

References:
  SegFormer  transformers.SegformerForSemanticSegmentation (4.56), B0-B5 configs built in code.
  Segmenter  the encoder is timm's VisionTransformer (1.0); the Segmenter model around it
             (padding, bilinear position-embedding resize, DecoderLinear, MaskTransformer) is a
             transcription of rstrudel/segmenter segm/model/{segmenter,vit,decoder,blocks}.py,
             which is not installable.
  SETR       the same timm-named ViT under `backbone.` (mmseg's final_norm=False: no backbone.norm);
             heads transcribed from mmsegmentation's SETRUPHead, MLANeck and SETRMLAHead with
             mmcv's ConvModule naming (conv, bn), as configured in configs/_base_/models/setr_*.py.
"""
import argparse
import json
import os
import time
from functools import partial

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import save_file
from timm.models.vision_transformer import VisionTransformer
from transformers import SegformerConfig, SegformerForSemanticSegmentation

NUM_CLASSES = 21

# ---------------------------------------------------------------- SegFormer

SEGFORMER = {
    0: dict(hidden_sizes=[32, 64, 160, 256], depths=[2, 2, 2, 2], decoder_hidden_size=256),
    1: dict(hidden_sizes=[64, 128, 320, 512], depths=[2, 2, 2, 2], decoder_hidden_size=256),
    2: dict(hidden_sizes=[64, 128, 320, 512], depths=[3, 4, 6, 3], decoder_hidden_size=768),
    3: dict(hidden_sizes=[64, 128, 320, 512], depths=[3, 4, 18, 3], decoder_hidden_size=768),
    4: dict(hidden_sizes=[64, 128, 320, 512], depths=[3, 8, 27, 3], decoder_hidden_size=768),
    5: dict(hidden_sizes=[64, 128, 320, 512], depths=[3, 6, 40, 3], decoder_hidden_size=768),
}


class SegformerLogits(nn.Module):
    """HF SegFormer whose output is upsampled to the input size, as SegScope's forward does."""

    def __init__(self, variant, num_classes):
        super().__init__()
        config = SegformerConfig(num_labels=num_classes, num_attention_heads=[1, 2, 5, 8], sr_ratios=[8, 4, 2, 1],
                                 patch_sizes=[7, 3, 3, 3], strides=[4, 2, 2, 2], mlp_ratios=[4, 4, 4, 4],
                                 **SEGFORMER[variant])
        self.model = SegformerForSemanticSegmentation(config)

    def state_dict_model(self):
        return self.model

    def forward(self, x):
        logits = self.model(pixel_values=x).logits
        return F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)


# ---------------------------------------------------------------- ViT (timm names)

VIT_SIZES = {"tiny": (192, 12, 3), "small": (384, 12, 6), "base": (768, 12, 12), "large": (1024, 24, 16)}
DEFAULT_IMAGE_SIZE = 512


def make_vit(size, patch, final_norm=True):
    dim, depth, heads = VIT_SIZES[size]
    return VisionTransformer(img_size=DEFAULT_IMAGE_SIZE, patch_size=patch, embed_dim=dim, depth=depth,
                             num_heads=heads, mlp_ratio=4.0, num_classes=0, final_norm=final_norm,
                             norm_layer=partial(nn.LayerNorm, eps=1e-6))


def pad_to_patch(x, patch):
    """segm/utils padding(): zeros on the right and bottom up to a multiple of the patch size."""
    h, w = x.shape[-2:]
    pad_h = (patch - h % patch) % patch
    pad_w = (patch - w % patch) % patch
    return F.pad(x, (0, pad_w, 0, pad_h), value=0.0) if pad_h or pad_w else x


def resize_pos_embed(pos_embed, new_grid):
    """segm/model/utils resize_pos_embed(): bilinear on the grid part, cls position kept."""
    tok, grid = pos_embed[:, :1], pos_embed[0, 1:]
    old = int(round(grid.shape[0] ** 0.5))
    grid = grid.reshape(1, old, old, -1).permute(0, 3, 1, 2)
    grid = F.interpolate(grid, size=new_grid, mode="bilinear", align_corners=False)
    grid = grid.permute(0, 2, 3, 1).reshape(1, new_grid[0] * new_grid[1], -1)
    return torch.cat([tok, grid], dim=1)


def vit_tokens(vit, x, patch, taps=()):
    """Runs the timm ViT on a padded input with the resized position embedding.

    Returns (final tokens after vit.norm, [block outputs at `taps`], grid) without the cls token."""
    gh, gw = x.shape[-2] // patch, x.shape[-1] // patch
    t = vit.patch_embed.proj(x).flatten(2).transpose(1, 2)
    t = torch.cat([vit.cls_token.expand(t.shape[0], -1, -1), t], dim=1)
    t = vit.pos_drop(t + resize_pos_embed(vit.pos_embed, (gh, gw)))
    tapped = []
    for i, block in enumerate(vit.blocks):
        t = block(t)
        if i in taps:
            tapped.append(t[:, 1:])
    return vit.norm(t)[:, 1:], tapped, (gh, gw)


def tokens_to_grid(t, grid):
    return t.transpose(1, 2).reshape(t.shape[0], t.shape[2], grid[0], grid[1])


# ---------------------------------------------------------------- Segmenter (transcribed)


class SegmBlock(nn.Module):
    """segm/model/blocks.py Block: nn.LayerNorm defaults (eps 1e-5), qkv attention, GELU MLP."""

    def __init__(self, dim, heads, mlp_dim):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.attn = nn.Module()
        self.attn.qkv = nn.Linear(dim, dim * 3)
        self.attn.proj = nn.Linear(dim, dim)
        self.mlp = nn.Module()
        self.mlp.fc1 = nn.Linear(dim, mlp_dim)
        self.mlp.fc2 = nn.Linear(mlp_dim, dim)
        self.heads = heads

    def forward(self, x):
        b, n, c = x.shape
        y = self.norm1(x)
        qkv = self.attn.qkv(y).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = ((q @ k.transpose(-2, -1)) * (c // self.heads) ** -0.5).softmax(dim=-1)
        y = self.attn.proj((attn @ v).transpose(1, 2).reshape(b, n, c))
        x = x + y
        return x + self.mlp.fc2(F.gelu(self.mlp.fc1(self.norm2(x))))


class DecoderLinear(nn.Module):
    def __init__(self, n_cls, d_encoder):
        super().__init__()
        self.head = nn.Linear(d_encoder, n_cls)

    def forward(self, x, grid):
        return tokens_to_grid(self.head(x), grid)


class MaskTransformer(nn.Module):
    def __init__(self, n_cls, d_encoder, n_layers=2):
        super().__init__()
        d_model = d_encoder
        self.n_cls = n_cls
        self.blocks = nn.ModuleList([SegmBlock(d_model, d_model // 64, 4 * d_model) for _ in range(n_layers)])
        self.cls_emb = nn.Parameter(torch.randn(1, n_cls, d_model))
        self.proj_dec = nn.Linear(d_encoder, d_model)
        self.proj_patch = nn.Parameter(d_model ** -0.5 * torch.randn(d_model, d_model))
        self.proj_classes = nn.Parameter(d_model ** -0.5 * torch.randn(d_model, d_model))
        self.decoder_norm = nn.LayerNorm(d_model)
        self.mask_norm = nn.LayerNorm(n_cls)

    def forward(self, x, grid):
        x = self.proj_dec(x)
        x = torch.cat((x, self.cls_emb.expand(x.size(0), -1, -1)), 1)
        for blk in self.blocks:
            x = blk(x)
        x = self.decoder_norm(x)
        patches, cls_seg_feat = x[:, : -self.n_cls], x[:, -self.n_cls:]
        patches = patches @ self.proj_patch
        cls_seg_feat = cls_seg_feat @ self.proj_classes
        patches = patches / patches.norm(dim=-1, keepdim=True)
        cls_seg_feat = cls_seg_feat / cls_seg_feat.norm(dim=-1, keepdim=True)
        masks = self.mask_norm(patches @ cls_seg_feat.transpose(1, 2))
        return tokens_to_grid(masks, grid)


class Segmenter(nn.Module):
    def __init__(self, decoder, size, patch, num_classes):
        super().__init__()
        self.patch = patch
        self.encoder = make_vit(size, patch)
        dim = VIT_SIZES[size][0]
        self.decoder = DecoderLinear(num_classes, dim) if decoder == "linear" else MaskTransformer(num_classes, dim)

    def forward(self, im, return_tokens=False):
        h, w = im.shape[-2:]
        x = pad_to_patch(im, self.patch)
        tokens, _, grid = vit_tokens(self.encoder, x, self.patch)
        masks = self.decoder(tokens, grid)
        masks = F.interpolate(masks, size=x.shape[-2:], mode="bilinear", align_corners=False)
        masks = masks[:, :, :h, :w]
        return (masks, tokens) if return_tokens else masks


# ---------------------------------------------------------------- SETR (mmseg heads, transcribed)


class ConvModule(nn.Module):
    """mmcv ConvModule with a BN norm and ReLU: conv (no bias, bias='auto'), bn, activate."""

    def __init__(self, cin, cout, kernel, padding=0):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x):
        return F.relu(self.bn(self.conv(x)))


class Upsample(nn.Module):
    def __init__(self, scale):
        super().__init__()
        self.scale = scale

    def forward(self, x):
        return F.interpolate(x, scale_factor=self.scale, mode="bilinear", align_corners=False)


def layer_norm_channels(norm, x):
    n, c, h, w = x.shape
    return norm(x.reshape(n, c, h * w).transpose(2, 1)).transpose(1, 2).reshape(n, c, h, w)


class SETRUPHead(nn.Module):
    def __init__(self, in_channels, channels, num_classes, num_convs, up_scale, kernel_size):
        super().__init__()
        self.norm = nn.LayerNorm(in_channels, eps=1e-6)
        self.up_convs = nn.ModuleList()
        cin = in_channels
        for _ in range(num_convs):
            self.up_convs.append(nn.Sequential(ConvModule(cin, channels, kernel_size, (kernel_size - 1) // 2),
                                               Upsample(up_scale)))
            cin = channels
        self.conv_seg = nn.Conv2d(channels, num_classes, 1)

    def forward(self, x):
        x = layer_norm_channels(self.norm, x)
        for up_conv in self.up_convs:
            x = up_conv(x)
        return self.conv_seg(x)


class MLANeck(nn.Module):
    def __init__(self, in_channels, out_channels):
        super().__init__()
        self.norm = nn.ModuleList([nn.LayerNorm(in_channels, eps=1e-6) for _ in range(4)])
        self.mla = nn.Module()
        self.mla.channel_proj = nn.ModuleList([ConvModule(in_channels, out_channels, 1) for _ in range(4)])
        self.mla.feat_extract = nn.ModuleList([ConvModule(out_channels, out_channels, 3, 1) for _ in range(4)])

    def forward(self, inputs):
        feats = [conv(layer_norm_channels(norm, x))
                 for x, norm, conv in zip(inputs, self.norm, self.mla.channel_proj)]
        feats = feats[::-1]
        mids = []
        for f in feats:
            mids.append(f if not mids else mids[-1] + f)
        return [conv(m) for m, conv in zip(mids, self.mla.feat_extract)]


class SETRMLAHead(nn.Module):
    def __init__(self, in_channels, mla_channels, num_classes, up_scale=4):
        super().__init__()
        self.up_convs = nn.ModuleList([
            nn.Sequential(ConvModule(in_channels, mla_channels, 3, 1), ConvModule(mla_channels, mla_channels, 3, 1),
                          Upsample(up_scale)) for _ in range(4)])
        self.conv_seg = nn.Conv2d(4 * mla_channels, num_classes, 1)

    def forward(self, inputs):
        return self.conv_seg(torch.cat([up(x) for x, up in zip(inputs, self.up_convs)], dim=1))


class SETR(nn.Module):
    def __init__(self, head, size, num_classes, patch=16):
        super().__init__()
        dim, depth, _ = VIT_SIZES[size]
        self.patch = patch
        self.head = head
        self.backbone = make_vit(size, patch, final_norm=False)
        self.taps = [depth // 4 * k - 1 for k in (1, 2, 3, 4)]
        if head == "naive":
            self.decode_head = SETRUPHead(dim, 256, num_classes, num_convs=1, up_scale=4, kernel_size=1)
        elif head == "pup":
            self.decode_head = SETRUPHead(dim, 256, num_classes, num_convs=4, up_scale=2, kernel_size=3)
        else:
            self.neck = MLANeck(dim, 256)
            self.decode_head = SETRMLAHead(256, 128, num_classes)

    def forward(self, im, return_tokens=False):
        x = pad_to_patch(im, self.patch)
        tokens, tapped, grid = vit_tokens(self.backbone, x, self.patch, taps=self.taps)
        grids = [tokens_to_grid(t, grid) for t in tapped]
        if self.head == "mla":
            out = self.decode_head(self.neck(grids))
        else:
            out = self.decode_head(grids[-1])
        # mmseg EncoderDecoder.encode_decode: resize to the (unpadded) input shape.
        out = F.interpolate(out, size=im.shape[-2:], mode="bilinear", align_corners=False)
        return (out, tapped[-1]) if return_tokens else out


# ---------------------------------------------------------------- the zoo


def model_ids():
    ids = [f"segformer-b{i}" for i in range(6)]
    for decoder in ("linear", "mask"):
        for size in ("tiny", "small", "base", "large"):
            ids.append(f"segmenter-{decoder}-vit-{size}-p16")
        for patch in (8, 32):
            for size in ("tiny", "small", "base"):
                ids.append(f"segmenter-{decoder}-vit-{size}-p{patch}")
    for head in ("naive", "pup", "mla"):
        for size in ("tiny", "small", "base", "large"):
            ids.append(f"setr-{head}-vit-{size}-p16")
    return ids


def build(model_id, num_classes=NUM_CLASSES):
    parts = model_id.split("-")
    if parts[0] == "segformer":
        return SegformerLogits(int(parts[1][1:]), num_classes)
    size, patch = parts[3], int(parts[4][1:])
    if parts[0] == "segmenter":
        return Segmenter(parts[1], size, patch, num_classes)
    return SETR(parts[1], size, num_classes, patch)


def reference_state_dict(model):
    m = model.state_dict_model() if hasattr(model, "state_dict_model") else model
    return m.state_dict()


def randomise(model, generator):
    """Non-trivial values for what default initialisation leaves constant or near zero.

    Linear and conv weights get std 1/sqrt(fan_in) instead of the references' 0.02, so attention
    scores are O(1) and the softmax far from uniform (with std 0.02 every attention map is nearly
    flat and a wrong scale or head split would hardly show in the logits)."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            leaf = name.rsplit(".", 1)[-1]
            owner = model.get_submodule(name.rsplit(".", 1)[0]) if "." in name else model
            if isinstance(owner, (nn.Linear, nn.Conv2d)) and leaf == "weight":
                fan_in = p[0].numel()
                p.copy_(torch.randn(p.shape, generator=generator) / fan_in ** 0.5)
            elif name.endswith(("pos_embed", "cls_emb")):
                p.copy_(0.5 * torch.randn(p.shape, generator=generator))
            if isinstance(owner, (nn.LayerNorm, nn.BatchNorm2d)):
                if leaf == "weight":
                    p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=generator))
                else:
                    p.copy_(0.1 * torch.randn(p.shape, generator=generator))
            elif leaf == "bias":
                p.copy_(0.1 * torch.randn(p.shape, generator=generator))
            elif name.endswith("cls_token"):
                p.copy_(0.5 * torch.randn(p.shape, generator=generator))
        for name, b in model.named_buffers():
            if name.endswith("running_mean"):
                b.copy_(0.1 * torch.randn(b.shape, generator=generator))
            elif name.endswith("running_var"):
                b.copy_(0.5 + torch.rand(b.shape, generator=generator))


PARITY = {
    # id: list of input shapes (N, C, H, W)
    "segformer-b0": (1, 3, 70, 90),
    "segformer-b1": (2, 3, 64, 64),
    "segmenter-linear-vit-tiny-p16": (1, 3, 70, 90),
    "segmenter-mask-vit-tiny-p16": (2, 3, 70, 90),
    "segmenter-mask-vit-tiny-p8": (1, 3, 44, 52),
    "setr-naive-vit-tiny-p16": (1, 3, 70, 90),
    "setr-pup-vit-tiny-p16": (1, 3, 70, 90),
    "setr-mla-vit-tiny-p16": (1, 3, 70, 90),
}


def timm_encoder_tokens(model, model_id, x):
    """The encoder output by timm's own forward_features: a VisionTransformer built for the padded
    size, given the state of the model's encoder with the position embedding resized to that grid."""
    if model_id.startswith("segmenter"):
        vit, final_norm = model.encoder, True
    else:
        vit, final_norm = model.backbone, False
    patch = model.patch
    xp = pad_to_patch(x, patch)
    dim, depth, heads = vit.embed_dim, len(vit.blocks), vit.blocks[0].attn.num_heads
    ref = VisionTransformer(img_size=tuple(xp.shape[-2:]), patch_size=patch, embed_dim=dim, depth=depth,
                            num_heads=heads, mlp_ratio=4.0, num_classes=0, final_norm=final_norm,
                            norm_layer=partial(nn.LayerNorm, eps=1e-6)).eval()
    state = vit.state_dict()
    state["pos_embed"] = resize_pos_embed(state["pos_embed"], (xp.shape[-2] // patch, xp.shape[-1] // patch))
    ref.load_state_dict(state, strict=True)
    with torch.no_grad():
        return ref.forward_features(xp)[:, 1:]


class no_init:
    """Turns the torch.nn.init fills and in-place random fills into no-ops while building."""

    NAMES = ("trunc_normal_", "normal_", "uniform_", "kaiming_uniform_", "kaiming_normal_", "zeros_", "ones_",
             "constant_", "xavier_uniform_", "lecun_normal_")

    def __enter__(self):
        import timm.layers.weight_init as timm_init
        import timm.models.vision_transformer as timm_vit
        self.saved = []
        for module in (nn.init, timm_init, timm_vit):
            for name in self.NAMES:
                if hasattr(module, name):
                    self.saved.append((module, name, getattr(module, name)))
                    setattr(module, name, lambda tensor, *a, **k: tensor)
        return self

    def __exit__(self, *exc):
        for module, name, fn in self.saved:
            setattr(module, name, fn)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    root = os.path.join(args.out, "transformer")
    os.makedirs(root, exist_ok=True)
    torch.set_num_threads(1)
    started = time.time()

    models = {}
    for model_id in model_ids():
        # timm's ViT calls .item() while building, which the meta device refuses; build those on
        # the CPU with initialisation switched off (only names and shapes are read).
        if model_id.startswith("segformer"):
            with torch.device("meta"):
                model = build(model_id)
        else:
            with no_init():
                model = build(model_id)
        state = reference_state_dict(model)
        models[model_id] = {
            "parameters": sum(p.numel() for p in model.parameters()),
            "state_dict": {k: list(v.shape) for k, v in state.items()},
        }
    with open(os.path.join(root, "models.json"), "w") as f:
        json.dump(models, f, indent=1)

    for model_id, shape in PARITY.items():
        torch.manual_seed(0)
        generator = torch.Generator().manual_seed(1234)
        model = build(model_id)
        randomise(model, generator)
        model.eval()
        x = torch.randn(shape, generator=generator)
        tensors = {"input": x}
        with torch.no_grad():
            if model_id.startswith("segformer"):
                tensors["logits"] = model(x)
            else:
                logits, tokens = model(x, return_tokens=True)
                timm_tokens = timm_encoder_tokens(model, model_id, x)
                delta = (tokens - timm_tokens).abs().max().item()
                assert delta < 1e-5, f"{model_id}: transcribed encoder differs from timm by {delta}"
                tensors["logits"] = logits
                tensors["encoder_tokens"] = timm_tokens
        folder = os.path.join(root, model_id)
        os.makedirs(folder, exist_ok=True)
        state = {k: v.contiguous() for k, v in reference_state_dict(model).items()}
        save_file(state, os.path.join(folder, "weights.safetensors"))
        save_file({k: v.contiguous() for k, v in tensors.items()}, os.path.join(folder, "io.safetensors"))
    print(f"transformer references written to {root} in {time.time() - started:.1f} s")


if __name__ == "__main__":
    main()
