#!/usr/bin/env python3
"""Compares two chrome traces by operator: time summed per aten:: name (nested operators count in
their callers too, the same way on both sides), call counts, and the difference.

  compare_profiles.py SEGSCOPE_TRACE PYTORCH_TRACE [--top N]
Traces come from `segscope-bench train|infer ... --profile FILE` and
`pytorch_side.py train|infer ... --profile FILE` (docs/benchmarks.md)."""
import argparse
import collections
import json


def load(path):
    with open(path) as f:
        data = json.load(f)
    events = data["traceEvents"] if isinstance(data, dict) else data
    total = collections.Counter()
    calls = collections.Counter()
    open_events = {}
    for e in events:
        name = e.get("name", "")
        if not name.startswith("aten::"):
            continue
        if e.get("ph") == "X":
            total[name] += float(e.get("dur", 0)) / 1e3
            calls[name] += 1
        elif e.get("ph") == "B":  # LibTorch's legacy RecordProfile writes begin/end pairs
            open_events.setdefault((name, e.get("tid")), []).append(float(e["ts"]))
        elif e.get("ph") == "E":
            stack = open_events.get((name, e.get("tid")))
            if stack:
                total[name] += (float(e["ts"]) - stack.pop()) / 1e3
                calls[name] += 1
    return total, calls


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("segscope")
    parser.add_argument("pytorch")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    ours, our_calls = load(args.segscope)
    theirs, their_calls = load(args.pytorch)
    names = sorted(set(ours) | set(theirs), key=lambda n: -max(ours[n], theirs[n]))[:args.top]
    print(f"{'operator':44} {'SegScope ms':>12} {'calls':>6} {'PyTorch ms':>12} {'calls':>6}")
    for n in names:
        print(f"{n[:44]:44} {ours[n]:12.1f} {our_calls[n]:6d} {theirs[n]:12.1f} {their_calls[n]:6d}")


if __name__ == "__main__":
    main()
