"""ctest bench_quick: `bench/run --quick --json` runs and its last stdout line is a JSON object with
the four ratios as positive numbers. Not a timed test: the figures themselves are not checked.

Usage: check_quick.py BENCH_RUN BUILD_DIR"""
import json
import math
import os
import subprocess
import sys

run, build = sys.argv[1], os.path.abspath(sys.argv[2])
env = dict(os.environ, SEGSCOPE_BUILD_DIR=build, SEGSCOPE_PYTHON=sys.executable)
done = subprocess.run([run, "--quick", "--json"], stdout=subprocess.PIPE, text=True, env=env)
print(done.stdout)
if done.returncode != 0:
    sys.exit(f"bench/run --quick --json exited with {done.returncode}")
lines = done.stdout.strip().splitlines()
if not lines:
    sys.exit("bench/run printed nothing on stdout")
report = json.loads(lines[-1])
keys = ["train_vs_pytorch", "inference_vs_pytorch", "data_vs_torch_dataloader", "memory_vs_pytorch"]
ratios = report.get("ratios")
if not isinstance(ratios, dict) or sorted(ratios) != sorted(keys):
    sys.exit(f"ratios must hold exactly {keys}, got {ratios!r}")
for key in keys:
    value = ratios[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        sys.exit(f"ratios.{key} must be a positive number, got {value!r}")
for group in ("train", "inference"):
    for model, entry in report[group].items():
        for side in ("segscope", "pytorch"):
            if not entry[side]["images_per_second"] > 0 or not entry[side]["peak_rss_bytes"] > 0:
                sys.exit(f"{group} {model} {side}: missing figures")
print("bench_quick: ok")
