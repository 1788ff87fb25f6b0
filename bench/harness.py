"""bench/run: SegScope against PyTorch eager on the same machine, in one run (docs/benchmarks.md).

Every measurement runs in its own pair of processes, the SegScope side (segscope-bench, the core
only) and the PyTorch side (pytorch_side.py, the same torch from the same venv), which take turns
repetition by repetition (only one computes at a time), with the same weights (written once by the Python reference with a fixed seed), shapes, inputs,
intra-op threads, warm-up and repetitions. Figures are medians over the timed repetitions.

Ratios are SegScope / PyTorch: speed ratios above 1 mean SegScope is faster; the memory ratio is
SegScope's peak resident memory over PyTorch's (at most 1 meets the target). Over several models
a ratio is the geometric mean of the per-model ratios.

Environment: SEGSCOPE_BUILD_DIR (default build, relative to the repository) holds
bench/segscope-bench; SEGSCOPE_ENV (default ~/.cache/segscope/venv) the Python.
"""
import argparse
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)

FULL = dict(train_models=["segformer-b0", "unet-seed-resnet50"], train_size=256, train_batch=8,
            infer_models=["segmenter-mask-vit-tiny-p16", "deeplabv3plus-resnet50"], infer_size=512, infer_batch=1,
            data_images=64, data_size=256, data_batch=8, erf_model="segformer-b0", erf_size=256, erf_images=4,
            erf_reps=3, matmul_n=4096, warmup=1, reps=5, matmul_reps=7)
QUICK = dict(train_models=["segformer-b0"], train_size=64, train_batch=2,
             infer_models=["segmenter-mask-vit-tiny-p16"], infer_size=64, infer_batch=1,
             data_images=8, data_size=64, data_batch=2, erf_model="segformer-b0", erf_size=64, erf_images=2,
             erf_reps=1, matmul_n=256, warmup=1, reps=2, matmul_reps=2)


def log(message):
    print(message, file=sys.stderr, flush=True)


def run_json(command, env):
    started = time.time()
    done = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    if done.returncode != 0:
        raise SystemExit(f"bench/run: {' '.join(command)} failed ({done.returncode}):\n{done.stderr[-4000:]}")
    lines = [line for line in done.stdout.splitlines() if line.strip().startswith("{")]
    if not lines:
        raise SystemExit(f"bench/run: {' '.join(command)} printed no JSON:\n{done.stdout[-2000:]}")
    result = json.loads(lines[-1])
    result["wall_seconds"] = round(time.time() - started, 2)
    return result


class Side:
    """One side's benchmark process in --turns mode: it prints "turn" when it waits to run its next
    repetition and its JSON result last."""

    def __init__(self, command, env):
        self.command = command
        self.stderr = tempfile.TemporaryFile(mode="w+")
        self.process = subprocess.Popen(command + ["--turns", "1"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=self.stderr, text=True, env=env)
        self.result = None

    def wait(self):
        """Reads up to the next "turn" (returns True) or the result (returns False)."""
        while True:
            line = self.process.stdout.readline()
            if not line:
                self.process.wait()
                self.stderr.seek(0)
                raise SystemExit(f"bench/run: {' '.join(self.command)} failed ({self.process.returncode}):\n"
                                 f"{self.stderr.read()[-4000:]}")
            if line.strip() == "turn":
                return True
            if line.strip().startswith("{"):
                self.result = json.loads(line)
                self.process.wait()
                return False

    def go(self):
        self.process.stdin.write("go\n")
        self.process.stdin.flush()


def run_interleaved(ours_command, theirs_command, env):
    """Runs both sides at once, taking turns repetition by repetition (SegScope first in even
    rounds, PyTorch first in odd ones), so the load of a shared machine falls on both alike.
    Only one side computes at a time; the other waits on its stdin."""
    started = time.time()
    sides = [Side(ours_command, env), Side(theirs_command, env)]
    waiting = [side.wait() for side in sides]  # both have loaded their model
    round_index = 0
    while any(waiting):
        order = sides if round_index % 2 == 0 else sides[::-1]
        for side in order:
            index = sides.index(side)
            if waiting[index]:
                side.go()
                waiting[index] = side.wait()
        round_index += 1
    for side in sides:
        side.result["wall_seconds"] = round(time.time() - started, 2)
    return sides[0].result, sides[1].result


def median(values):
    return statistics.median(values)


def geomean(values):
    return math.exp(sum(math.log(v) for v in values) / len(values))


def load_average():
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def machine():
    info = {"cpu": platform.processor() or platform.machine(), "logical_cpus": os.cpu_count()}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        with open("/proc/meminfo") as f:
            info["memory_bytes"] = int(f.readline().split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return info


def resolve_devices(requested, python, env):
    if requested != "auto":
        return [requested]
    probe = subprocess.run([python, "-c", "import torch; print(torch.cuda.is_available())"], stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL, text=True, env=env)
    return ["cpu", "cuda"] if probe.stdout.strip() == "True" else ["cpu"]


def main():
    parser = argparse.ArgumentParser(prog="bench/run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny configuration (seconds; for ctest)")
    parser.add_argument("--json", action="store_true", help="print one JSON object last on stdout")
    parser.add_argument("--markdown", action="store_true", help="print the tables as markdown (docs/benchmarks.md)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                        help="intra-op threads on both sides (default: all cores)")
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1),
                        help="data-loading workers on both sides (default: 2)")
    parser.add_argument("--device", default="auto",
                        help="auto (the CPU, then CUDA when torch sees a GPU), cpu or cuda: where the training, "
                             "inference and ERF figures are measured")
    parser.add_argument("--omp-wait-policy", default=os.environ.get("OMP_WAIT_POLICY", "PASSIVE"),
                        help="OMP_WAIT_POLICY of both sides (default: the environment's, else PASSIVE)")
    parser.add_argument("--keep", metavar="DIR", help="keep the weights and the data set in DIR")
    args = parser.parse_args()
    config = QUICK if args.quick else FULL

    build = os.environ.get("SEGSCOPE_BUILD_DIR", "build")
    if not os.path.isabs(build):
        build = os.path.join(REPO, build)
    bench = os.path.join(build, "bench", "segscope-bench")
    if not os.path.exists(bench):
        raise SystemExit(f"bench/run: {bench} is missing; build it with: ninja -C {build} segscope-bench")
    python = sys.executable
    side = os.path.join(HERE, "pytorch_side.py")
    env = dict(os.environ)
    # One intra-op thread count for both sides; OMP_NUM_THREADS would otherwise win on either.
    env["OMP_NUM_THREADS"] = str(args.threads)
    # SegScope's programs run OpenMP with passive waiting (core::preferPassiveOpenMpWait): spinning
    # idle threads collapse throughput on a busy machine. Both sides get the same policy.
    env["OMP_WAIT_POLICY"] = args.omp_wait_policy
    common = ["--threads", str(args.threads), "--warmup", str(config["warmup"]), "--reps", str(config["reps"])]

    work = args.keep or tempfile.mkdtemp(prefix="segscope-bench-")
    os.makedirs(work, exist_ok=True)
    started = time.time()
    load_before = load_average()
    devices = resolve_devices(args.device, python, env)
    report = {"quick": args.quick, "devices_measured": devices, "threads": args.threads, "workers": args.workers,
              "omp_wait_policy": args.omp_wait_policy,
              "machine": machine(), "load_average_before": load_before, "config": config,
              "devices": {}, "flops": {}}
    try:
        # Weights: the Python reference builds each model with a fixed seed and writes its state dict.
        models = sorted(set(config["train_models"] + config["infer_models"] + [config["erf_model"]]))
        log(f"preparing {', '.join(models)} (weights, FLOPs)")
        prepared = run_json(
            [python, side, "prepare", "--model", ",".join(models),
             "--out", ",".join(os.path.join(work, m + ".safetensors") for m in models),
             "--train-size", ",".join(str(config["train_size"] if m in config["train_models"] else 0) for m in models),
             "--infer-size", ",".join(str(config["infer_size"] if m in config["infer_models"] else 0) for m in models),
             "--threads", str(args.threads)], env)
        report["flops"] = prepared["models"]

        for device in devices:
            log(f"{device}: measuring the fp32 matrix-multiply rate")
            mm = run_json([bench, "matmul", "--n", str(config["matmul_n"]), "--threads", str(args.threads),
                           "--warmup", "1", "--reps", str(config["matmul_reps"]), "--device", device], env)
            # A peak is a best case: the fastest repetition (the median is kept too; on a shared machine
            # it can be half the best).
            peak = mm["flops"] / min(mm["seconds"])
            measured = report["devices"][device] = {"train": {}, "inference": {}}
            measured["matmul"] = {"n": mm["n"], "seconds": mm["seconds"], "flops_per_second": peak,
                                "median_flops_per_second": mm["flops"] / median(mm["seconds"])}

            def pair(kind, model, size, batch, device=device, peak=peak):
                weights = os.path.join(work, model + ".safetensors")
                arguments = [kind, "--model", model, "--weights", weights, "--size", str(size), "--batch", str(batch),
                             "--device", device] + common
                log(f"{device}: {kind} {model}: SegScope and PyTorch, taking turns")
                ours, theirs = run_interleaved([bench] + arguments, [python, side] + arguments, env)
                key = "seconds_per_step" if kind == "train" else "seconds_per_batch"
                per = "images_per_step" if kind == "train" else "images_per_batch"
                entry = {"size": size, "batch": batch}
                for name, result in (("segscope", ours), ("pytorch", theirs)):
                    entry[name] = {"seconds": result[key], "images_per_second": result[per] / median(result[key]),
                                   "cpu_seconds": result["cpu_seconds"],
                                   "cpu_seconds_per_image": median(result["cpu_seconds"]) / result[per],
                                   "peak_rss_bytes": result["peak_rss_bytes"],
                                   "startup_rss_bytes": result["startup_rss_bytes"], "threads": result["threads"],
                                   "torch": result["torch"]}
                flops = report["flops"][model]
                per_image = flops["train_step_flops_per_image"] if kind == "train" else flops["inference_flops_per_image"]
                entry["flops_per_image"] = per_image
                for name in ("segscope", "pytorch"):
                    achieved = per_image * entry[name]["images_per_second"]
                    entry[name]["achieved_flops_per_second"] = achieved
                    entry[name]["fraction_of_matmul_peak"] = achieved / peak
                entry["speed_ratio"] = entry["segscope"]["images_per_second"] / entry["pytorch"]["images_per_second"]
                # The fastest repetitions' ratio: less sensitive to other load on a shared machine.
                entry["best_speed_ratio"] = min(theirs[key]) / min(ours[key])
                # Process CPU time (all threads) per image, PyTorch's over SegScope's: the work each
                # side does, nearly independent of other load (OpenMP threads wait passively).
                entry["cpu_time_ratio"] = entry["pytorch"]["cpu_seconds_per_image"] / entry["segscope"]["cpu_seconds_per_image"]
                entry["memory_ratio"] = entry["segscope"]["peak_rss_bytes"] / entry["pytorch"]["peak_rss_bytes"]
                return entry

            for model in config["train_models"]:
                measured["train"][model] = pair("train", model, config["train_size"], config["train_batch"])
            for model in config["infer_models"]:
                measured["inference"][model] = pair("infer", model, config["infer_size"], config["infer_batch"])

        # The ratios and the main tables are the first device's (the CPU unless --device says
        # otherwise); every device's figures stay under "devices".
        primary = report["devices"][devices[0]]
        report["train"], report["inference"], report["matmul"] = primary["train"], primary["inference"], primary["matmul"]

        log("data pipeline: writing a VOC-like data set (500x375 JPEGs)")
        root = os.path.join(work, "voc")
        if os.path.exists(root):
            shutil.rmtree(root)
        run_json([bench, "make-data", "--root", root, "--images", str(config["data_images"])], env)
        data_args = ["data", "--root", root, "--size", str(config["data_size"]), "--batch", str(config["data_batch"]),
                     "--workers", str(args.workers)] + common
        log("data pipeline: SegScope BatchLoader and torch DataLoader, taking turns")
        ours, theirs = run_interleaved([bench] + data_args, [python, side] + data_args, env)
        report["data"] = {"images_per_epoch": ours["images_per_epoch"], "size": config["data_size"],
                          "batch": config["data_batch"], "workers": args.workers}
        for name, result in (("segscope", ours), ("pytorch", theirs)):
            report["data"][name] = {"seconds_per_epoch": result["seconds_per_epoch"],
                                    "images_per_second": result["images_per_epoch"] / median(result["seconds_per_epoch"])}
        report["data"]["speed_ratio"] = (report["data"]["segscope"]["images_per_second"] /
                                         report["data"]["pytorch"]["images_per_second"])
        report["data"]["best_speed_ratio"] = min(theirs["seconds_per_epoch"]) / min(ours["seconds_per_epoch"])

        log(f"ERF: {config['erf_model']}")
        erf = run_json([bench, "erf", "--model", config["erf_model"],
                        "--weights", os.path.join(work, config["erf_model"] + ".safetensors"),
                        "--size", str(config["erf_size"]), "--images", str(config["erf_images"]),
                        "--threads", str(args.threads), "--warmup", "1", "--reps", str(config["erf_reps"]),
                        "--device", devices[-1]], env)
        report["erf"] = {"device": devices[-1], "model": config["erf_model"], "size": config["erf_size"], "images": config["erf_images"],
                         "seconds_per_image": {k: median(v) for k, v in erf["seconds_per_image"].items()}}
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)

    memory = [e["memory_ratio"] for group in ("train", "inference") for e in report[group].values()]
    report["ratios"] = {
        "train_vs_pytorch": geomean([e["speed_ratio"] for e in report["train"].values()]),
        "inference_vs_pytorch": geomean([e["speed_ratio"] for e in report["inference"].values()]),
        "data_vs_torch_dataloader": report["data"]["speed_ratio"],
        "memory_vs_pytorch": geomean(memory),
    }
    # The same over process CPU time (see cpu_time_ratio): the steadier figure on a busy machine.
    report["ratios_cpu_time"] = {
        "train_vs_pytorch": geomean([e["cpu_time_ratio"] for e in report["train"].values()]),
        "inference_vs_pytorch": geomean([e["cpu_time_ratio"] for e in report["inference"].values()]),
    }
    report["targets"] = {"train_vs_pytorch": ">= 1.1", "inference_vs_pytorch": ">= 1.2",
                         "data_vs_torch_dataloader": ">= 2", "memory_vs_pytorch": "<= 1"}
    report["torch"] = next(iter(report["train"].values()))["pytorch"]["torch"]
    report["load_average_after"] = load_average()
    report["wall_seconds"] = round(time.time() - started, 1)

    print_tables(report, args.markdown)
    for device in devices[1:]:
        print(f"\n{device} (fp16 autocast, channels_last, cudnn benchmark; % of the fp32 mm rate):\n")
        print(format_table(model_rows(report["devices"][device]), args.markdown))
    if args.json:
        print(json.dumps(report), flush=True)


GIB = 1024.0 ** 3


def model_rows(measured):
    """The training and inference rows of one device's figures."""
    rows = [["benchmark", "SegScope", "PyTorch", "ratio", "best-rep ratio", "CPU-time ratio",
             "SegScope GFLOP/s (% of mm)", "SegScope peak RSS", "PyTorch peak RSS"]]
    for group, label in (("train", "train"), ("inference", "infer")):
        for model, e in measured[group].items():
            s, p = e["segscope"], e["pytorch"]
            rows.append([f"{label} {model} {e['size']}² b{e['batch']}", f"{s['images_per_second']:.2f} img/s",
                         f"{p['images_per_second']:.2f} img/s", f"{e['speed_ratio']:.2f}×",
                         f"{e['best_speed_ratio']:.2f}×", f"{e['cpu_time_ratio']:.2f}×",
                         f"{s['achieved_flops_per_second'] / 1e9:.1f} ({100 * s['fraction_of_matmul_peak']:.0f}%)",
                         f"{s['peak_rss_bytes'] / GIB:.2f} GiB", f"{p['peak_rss_bytes'] / GIB:.2f} GiB"])
    return rows


def print_tables(report, markdown):
    rows = model_rows(report)
    d = report["data"]
    rows.append([f"data {d['size']}² b{d['batch']} w{d['workers']}", f"{d['segscope']['images_per_second']:.1f} img/s",
                 f"{d['pytorch']['images_per_second']:.1f} img/s", f"{d['speed_ratio']:.2f}×",
                 f"{d['best_speed_ratio']:.2f}×", "", "", "", ""])
    ratio_rows = [["ratio", "value", "over CPU time", "target"]] + [
        [k, f"{v:.3f}", f"{report['ratios_cpu_time'][k]:.3f}" if k in report["ratios_cpu_time"] else "",
         report["targets"][k]] for k, v in report["ratios"].items()]
    erf = report["erf"]
    erf_rows = [["ERF stage", "s / image"]] + [[k, f"{v:.4f}"] for k, v in erf["seconds_per_image"].items()]
    flops_rows = [["model", "forward GFLOP / image", "at", "params"]]
    for model, f in report["flops"].items():
        for kind in ("train", "inference"):
            key = "train_forward_flops_per_image" if kind == "train" else "inference_flops_per_image"
            if key in f:
                size = f["train_size"] if kind == "train" else f["inference_size"]
                flops_rows.append([model, f"{f[key] / 1e9:.2f}", f"{size}²", f"{f['parameters'] / 1e6:.1f} M"])
    header = (f"machine: {report['machine'].get('cpu')}, {report['machine'].get('logical_cpus')} logical CPUs; "
              f"torch {report['torch']}; threads {report['threads']}, workers {report['workers']}, "
              f"OMP_WAIT_POLICY {report['omp_wait_policy']}; "
              f"load average before {report['load_average_before']}, after {report['load_average_after']}; "
              f"fp32 mm {report['matmul']['n']}²: {report['matmul']['flops_per_second'] / 1e9:.1f} GFLOP/s best, "
              f"{report['matmul']['median_flops_per_second'] / 1e9:.1f} median; "
              f"{report['wall_seconds']} s")
    print(header)
    for title, table in (("", rows), ("", ratio_rows), (f"ERF {erf['model']} {erf['size']}², {erf['images']} images "
                                                         "(seconds per image; 'all': every stage from one forward)",
                                                         erf_rows), ("FLOPs (FlopCounterMode; train step = 3× forward)",
                                                                     flops_rows)):
        print()
        if title:
            print(title)
            print()
        print(format_table(table, markdown))
    sys.stdout.flush()


def format_table(rows, markdown):
    if markdown:
        lines = ["| " + " | ".join(rows[0]) + " |", "|" + "|".join("---" for _ in rows[0]) + "|"]
        lines += ["| " + " | ".join(r) + " |" for r in rows[1:]]
        return "\n".join(lines)
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)


if __name__ == "__main__":
    main()
