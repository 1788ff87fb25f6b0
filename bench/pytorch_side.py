#!/usr/bin/env python3
"""The PyTorch side of bench/run: Python eager with the torch of SegScope's venv.

Each command measures one thing and prints one JSON object on stdout, with the same arguments and
the same output fields as segscope-bench (bench/segscope_bench.cpp):

  train    --model ID --weights FILE --size S --batch B [--device cpu|cuda]
  infer    --model ID --weights FILE --size S --batch B [--device cpu|cuda]
  data     --root DIR --size S --batch B --workers W
  prepare  --model ID[,ID...] --out FILE[,...] --train-size S[,...] --infer-size S[,...] (0: not counted)
           builds the reference model with a fixed seed, writes its state_dict as safetensors (the
           names SegScope's models use) and prints its FLOPs per image, counted by
           torch.utils.flop_counter.FlopCounterMode (forward, and forward + backward of a training
           step = 3x forward; FlopCounterMode counts matmuls, convolutions and attention, not
           elementwise work).
Common: --threads T (intra-op threads, 0: all cores), --warmup W, --reps R, --classes K,
--turns 1 (wait for a line on stdin before each repetition; see wait_turn), --profile FILE
(train, infer: one more repetition under torch.profiler, written as a chrome trace).

The reference models are the ones SegScope's parity tests compare against (tests/parity): HF
transformers' SegFormer, the Segmenter transcription on timm's ViT, smp's DeepLabV3+ and the seed
U-Net on torchvision's ResNet-50.
"""
import argparse
import json
import os
import resource
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "parity"))


def peak_rss_bytes():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def build_model(model_id, classes):
    """(module whose forward gives logits at the input size, module whose state_dict SegScope reads)."""
    if model_id.startswith(("segformer", "segmenter", "setr")):
        import make_transformer_reference as ref
        model = ref.build(model_id, classes)
        named = model.state_dict_model() if hasattr(model, "state_dict_model") else model
        return model, named
    import make_cnn_reference as ref
    model = ref.build(model_id, classes)
    return model, model


def load_model(args, device):
    import torch
    from safetensors.torch import load_file
    model, named = build_model(args.model, args.classes)
    missing, unexpected = named.load_state_dict(load_file(args.weights), strict=True)
    assert not missing and not unexpected
    return model.to(device)


def synthetic_batch(batch, size, classes):
    """The same tensors as segscope-bench's syntheticBatch (LibTorch's CPU generator, seed 0)."""
    import torch
    torch.manual_seed(0)
    images = torch.randn(batch, 3, size, size)
    labels = torch.randint(0, classes, (batch, size, size), dtype=torch.long)
    return images, labels


TAKE_TURNS = False


def wait_turn():
    """--turns 1: print "turn" and wait for a line on stdin before each repetition (bench/run
    interleaves the two sides' repetitions so they share the machine's load alike)."""
    if TAKE_TURNS:
        print("turn", flush=True)
        if not sys.stdin.readline():
            raise SystemExit("--turns: stdin closed")


def profile(path, fn):
    """One more repetition under torch.profiler, written as a chrome trace (compare_profiles.py)."""
    import torch
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        fn()
    prof.export_chrome_trace(path)


def synchronize(device):
    import torch
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def cmd_train(args):
    import torch
    import torch.nn.functional as F
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    model = load_model(args, device)
    model.train()
    if cuda:
        torch.backends.cudnn.benchmark = True
        model = model.to(memory_format=torch.channels_last)
    # SegScope's default optimiser (ExperimentOptimizer): AdamW, lr 1e-4, weight decay 0.01.
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.999), weight_decay=0.01)
    scaler = torch.amp.GradScaler("cuda", enabled=cuda)
    images, labels = synthetic_batch(args.batch, args.size, args.classes)
    images, labels = images.to(device), labels.to(device)
    if cuda:
        images = images.contiguous(memory_format=torch.channels_last)

    def step():
        with torch.autocast("cuda", dtype=torch.float16, enabled=cuda):
            logits = model(images)
        loss = F.cross_entropy(logits.float(), labels, ignore_index=255)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)
        return loss

    times, cpu_times, last_loss = [], [], 0.0
    for i in range(args.warmup + args.reps):
        wait_turn()
        synchronize(device)
        start, cpu_start = time.perf_counter(), time.process_time()
        loss = step()
        synchronize(device)
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu_start
        last_loss = float(loss.detach())
        if i >= args.warmup:
            times.append(seconds)
            cpu_times.append(cpu)
    if args.profile:
        profile(args.profile, step)
    return {"seconds_per_step": times, "cpu_seconds": cpu_times, "images_per_step": args.batch, "last_loss": last_loss}


def cmd_infer(args):
    import torch
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    model = load_model(args, device)
    model.eval()
    if cuda:
        torch.backends.cudnn.benchmark = True
        model = model.to(memory_format=torch.channels_last)
    images = synthetic_batch(args.batch, args.size, 1)[0].to(device)
    if cuda:
        images = images.contiguous(memory_format=torch.channels_last)
    times, cpu_times, checksum = [], [], 0.0
    with torch.inference_mode():
        for i in range(args.warmup + args.reps):
            wait_turn()
            synchronize(device)
            start, cpu_start = time.perf_counter(), time.process_time()
            with torch.autocast("cuda", dtype=torch.float16, enabled=cuda):
                logits = model(images)
            synchronize(device)
            seconds, cpu = time.perf_counter() - start, time.process_time() - cpu_start
            checksum = float(logits.float().abs().mean())
            if i >= args.warmup:
                times.append(seconds)
                cpu_times.append(cpu)
        if args.profile:
            profile(args.profile, lambda: model(images))
    return {"seconds_per_batch": times, "cpu_seconds": cpu_times, "images_per_batch": args.batch, "logits_abs_mean": checksum}


class VocTrain:
    """The VOC train split with the transform SegScope's BatchLoader applies for training
    (ResizeMode::RandomScaleCrop, scale [0.5, 2], flip, ImageNet normalisation), in torchvision."""

    def __init__(self, root, size):
        self.root, self.size = root, size
        with open(os.path.join(root, "ImageSets", "Segmentation", "train.txt")) as f:
            self.ids = [line.strip() for line in f if line.strip()]

    def __len__(self):
        return len(self.ids)

    def __getitem__(self, index):
        import random
        import numpy as np
        import torch
        import torchvision.transforms.v2.functional as TF
        from PIL import Image
        from torchvision.io import ImageReadMode, decode_image, read_file
        sample = self.ids[index]
        image = decode_image(read_file(os.path.join(self.root, "JPEGImages", sample + ".jpg")), ImageReadMode.RGB)
        label = torch.from_numpy(np.array(Image.open(os.path.join(self.root, "SegmentationClass", sample + ".png"))))
        label = label.unsqueeze(0)
        # Scale so the short side is size * U(0.5, 2), pad right/bottom (image 0, label 255) up to
        # the crop, crop at random, flip with p = 0.5. Bilinear without antialiasing: what
        # cv::INTER_LINEAR does.
        h, w = image.shape[-2:]
        scale = self.size * random.uniform(0.5, 2.0) / min(h, w)
        scaled = [max(1, round(h * scale)), max(1, round(w * scale))]
        image = TF.resize(image, scaled, interpolation=TF.InterpolationMode.BILINEAR, antialias=False)
        label = TF.resize(label, scaled, interpolation=TF.InterpolationMode.NEAREST)
        pad_bottom, pad_right = max(0, self.size - scaled[0]), max(0, self.size - scaled[1])
        if pad_bottom or pad_right:
            image = TF.pad(image, [0, 0, pad_right, pad_bottom], fill=0)
            label = TF.pad(label, [0, 0, pad_right, pad_bottom], fill=255)
        y0 = random.randint(0, image.shape[-2] - self.size)
        x0 = random.randint(0, image.shape[-1] - self.size)
        image = TF.crop(image, y0, x0, self.size, self.size)
        label = TF.crop(label, y0, x0, self.size, self.size)
        if random.random() < 0.5:
            image, label = TF.horizontal_flip(image), TF.horizontal_flip(label)
        image = TF.normalize(TF.to_dtype(image, torch.float32, scale=True),
                             mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])
        return image, label[0].to(torch.long)


def cmd_data(args):
    import torch
    from torch.utils.data import DataLoader
    loader = DataLoader(VocTrain(args.root, args.size), batch_size=args.batch, shuffle=True,
                        num_workers=args.workers, persistent_workers=args.workers > 0, drop_last=False)
    times, images_per_epoch, checksum = [], 0, 0.0
    for epoch in range(args.warmup + args.reps):
        wait_turn()
        start = time.perf_counter()
        images = 0
        for batch_images, _ in loader:
            images += batch_images.shape[0]
            checksum += float(batch_images[0, 0, 0, 0])
        seconds = time.perf_counter() - start
        images_per_epoch = images
        if epoch >= args.warmup:
            times.append(seconds)
    return {"seconds_per_epoch": times, "images_per_epoch": images_per_epoch, "checksum": checksum}


def cmd_prepare(args):
    """Several models in one process (--model a,b --train-size s,0 --infer-size 0,s --out f,g):
    Python's start-up and imports are paid once."""
    models, outs = args.model.split(","), args.out.split(",")
    train_sizes = [int(v) for v in str(args.train_size).split(",")]
    infer_sizes = [int(v) for v in str(args.infer_size).split(",")]
    return {"models": {model: prepare_one(model, out, train, infer, args.classes)
                       for model, out, train, infer in zip(models, outs, train_sizes, infer_sizes)}}


def prepare_one(model_id, out, train_size, infer_size, classes):
    import torch
    from safetensors.torch import save_file
    from torch.utils.flop_counter import FlopCounterMode
    torch.manual_seed(0)
    model, named = build_model(model_id, classes)
    save_file({k: v.detach().contiguous() for k, v in named.state_dict().items()}, out)

    def count(fn):
        counter = FlopCounterMode(display=False)
        with counter:
            fn()
        return counter.get_total_flops()

    model.eval()
    result = {}
    if infer_size > 0:
        x = torch.randn(1, 3, infer_size, infer_size)
        with torch.no_grad():
            result.update(inference_flops_per_image=count(lambda: model(x)), inference_size=infer_size)
    if train_size > 0:
        # A training step is counted as 3x the forward (the usual convention: the backward
        # computes gradients for both inputs and weights). FlopCounterMode's own backward count is
        # not used: it overcounts grouped (depthwise) convolutions' backward (6.5x the forward on
        # SegFormer-B0, whose MixFFN has depthwise convolutions).
        x = torch.randn(1, 3, train_size, train_size)
        with torch.no_grad():
            forward = count(lambda: model(x))
        result.update(train_forward_flops_per_image=forward, train_step_flops_per_image=3 * forward,
                      train_size=train_size)
    result["parameters"] = sum(p.numel() for p in model.parameters())
    return result


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("command", choices=["train", "infer", "data", "prepare"])
    parser.add_argument("--model")
    parser.add_argument("--weights")
    parser.add_argument("--out")
    parser.add_argument("--root")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--train-size", default="256")
    parser.add_argument("--infer-size", default="512")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--classes", type=int, default=21)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--turns", type=int, default=0)
    parser.add_argument("--profile")
    args = parser.parse_args()
    global TAKE_TURNS
    TAKE_TURNS = args.turns != 0

    import torch
    torch.set_num_threads(args.threads if args.threads > 0 else (os.cpu_count() or 1))
    startup = peak_rss_bytes()
    result = {"train": cmd_train, "infer": cmd_infer, "data": cmd_data, "prepare": cmd_prepare}[args.command](args)
    result.update({"side": "pytorch", "command": args.command, "threads": torch.get_num_threads(),
                   "torch": torch.__version__, "startup_rss_bytes": startup, "peak_rss_bytes": peak_rss_bytes()})
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
