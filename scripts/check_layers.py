#!/usr/bin/env python3
"""Checks the layering of segscope_core (docs/architecture.md), python3 standard library only.

The layers, each allowed to include only itself and the layers to its left:

    foundation <- data <- models <- experiment.h <- analysis <- training <- runs

  foundation: the root headers error, runtime, safe_text, file_output, output_guard, version_config,
  cancel (and the root sources that implement them, e.g. cuda_backend.cpp); experiment: the root
  experiment.h/.cpp and experiment_*; the others: core/{include/segscope/core,src}/<layer>/.
  A core file in no layer is reported too, so a new root file must be placed on purpose.

Rules, each reported as FILE:LINE: message:
  1. A core file includes a header of a layer to its right (public "segscope/core/<layer>/x.h" or
     private "<layer>/x.h" from core/src; a bare "x.h" is the including file's own folder).
  2. analysis/ includes anything in runs/ except runs/loaded_run.h (analysis takes a loaded run,
     never the store).
  3. A file of core/, ui/ or app/ outside core/src/runs parses a stored experiment: a statement that
     mentions `experimentJson` and calls parseExperiment( or json::parse(. Only runs/ does that
     (runs/run_loader.h: recordedExperiment()). Tests are exempt: they check what the store holds.

Usage:
  check_layers.py [ROOT]          check the tree at ROOT (default: this script's repository)
  check_layers.py --prove [ROOT]  first check that the checker catches each rule in a tiny bad tree
                                  made in a temporary folder (and passes a tiny good one), then
                                  check ROOT. This is the ctest `layering`.
Exit status: 0 clean, 1 violations (or the checker failed to prove itself), 2 usage errors.
"""

import os
import re
import sys
import tempfile

LAYERS = ["foundation", "data", "models", "experiment", "analysis", "training", "runs"]
RANK = {name: i for i, name in enumerate(LAYERS)}
FOUNDATION = {"error", "runtime", "safe_text", "file_output", "output_guard", "version_config", "cuda_backend",
              "cancel"}
FOLDERS = {"data", "models", "training", "analysis", "runs"}
ANALYSIS_MAY_INCLUDE_FROM_RUNS = {"runs/loaded_run.h"}

INCLUDE = re.compile(r'^\s*#\s*include\s*"([^"]+)"')
SOURCE_SUFFIXES = (".h", ".hpp", ".cpp", ".cc")


def layer_of_path(relative):
    """The layer of a path relative to core/include/segscope/core or core/src, or None."""
    parts = relative.replace("\\", "/").split("/")
    if len(parts) > 1:
        return parts[0] if parts[0] in FOLDERS else None
    stem = parts[0].split(".")[0]
    if stem in FOUNDATION:
        return "foundation"
    if stem == "experiment" or stem.startswith("experiment_"):
        return "experiment"  # experiment.h/.cpp and the private parts it is split into
    return None


def strip_comments(text):
    """The text with comments blanked (line breaks kept, so lines keep their numbers); string and
    character literals, raw strings included, are copied as they are."""
    out = []
    i, n = 0, len(text)
    while i < n:
        if text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append("".join(ch if ch == "\n" else " " for ch in text[i:j]))
            i = j
        elif text.startswith('R"', i) and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
            open_paren = text.find("(", i + 2)
            delimiter = text[i + 2:open_paren] if open_paren >= 0 else ""
            close = text.find(")" + delimiter + '"', open_paren + 1) if open_paren >= 0 else -1
            j = n if close < 0 else close + len(delimiter) + 2
            out.append(text[i:j])
            i = j
        elif text[i] in "\"'":
            quote = text[i]
            j = i + 1
            while j < n and text[j] != quote and text[j] != "\n":
                j += 2 if text[j] == "\\" else 1
            j = min(n, j + 1)
            out.append(text[i:j])
            i = j
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def core_files(root):
    """(path, relative-to-layer-root, layer) of every core source and header."""
    for base in (os.path.join(root, "core", "include", "segscope", "core"), os.path.join(root, "core", "src")):
        if not os.path.isdir(base):
            continue
        for folder, _, names in os.walk(base):
            for name in sorted(names):
                if name.endswith(SOURCE_SUFFIXES):
                    path = os.path.join(folder, name)
                    relative = os.path.relpath(path, base).replace(os.sep, "/")
                    yield path, relative, layer_of_path(relative)


def included_layer(include, including_relative):
    """(layer, layer-relative path) of an include, or (None, None) when it is not a core header."""
    if include.startswith("segscope/core/"):
        relative = include[len("segscope/core/"):]
    elif "/" in include:
        relative = include  # a private header of core/src, e.g. "training/autocast_scope.h"
    else:
        folder = os.path.dirname(including_relative)
        relative = f"{folder}/{include}" if folder else include
    if relative.split("/")[0] not in FOLDERS and "/" in relative:
        return None, None
    return layer_of_path(relative), relative


def check_includes(root, problems):
    for path, relative, layer in core_files(root):
        shown = os.path.relpath(path, root)
        if layer is None:
            problems.append(f"{shown}:1: not in any layer (add it to a layer folder or to check_layers.py)")
            continue
        with open(path, encoding="utf-8", errors="replace") as f:
            lines = f.read().split("\n")
        for number, line in enumerate(lines, 1):
            match = INCLUDE.match(line)
            if not match:
                continue
            target_layer, target = included_layer(match.group(1), relative)
            if target_layer is None:
                continue
            if layer == "analysis" and target_layer == "runs":
                if target not in ANALYSIS_MAY_INCLUDE_FROM_RUNS:
                    problems.append(f"{shown}:{number}: analysis/ includes {match.group(1)}; analysis may include "
                                    "only runs/loaded_run.h of runs/ (it takes a LoadedRun, never the store)")
                continue
            if RANK[target_layer] > RANK[layer]:
                problems.append(f"{shown}:{number}: {layer} includes {match.group(1)} of layer {target_layer}, "
                                f"which is to its right ({' <- '.join(LAYERS)})")


STORED_PARSE = re.compile(r"parseExperiment\s*\(|json::parse\s*\(")


def check_stored_experiment_parsing(root, problems):
    runs_src = os.path.join(root, "core", "src", "runs") + os.sep
    for top in ("core", "ui", "app"):
        base = os.path.join(root, top)
        if not os.path.isdir(base):
            continue
        for folder, _, names in os.walk(base):
            for name in sorted(names):
                if not name.endswith(SOURCE_SUFFIXES):
                    continue
                path = os.path.join(folder, name)
                if path.startswith(runs_src):
                    continue
                with open(path, encoding="utf-8", errors="replace") as f:
                    text = strip_comments(f.read())
                for match in re.finditer(r"\bexperimentJson\b", text):
                    # The statement around the mention: from the last ; { } before it to the next ;
                    start = max(text.rfind(ch, 0, match.start()) for ch in ";{}") + 1
                    end = text.find(";", match.end())
                    statement = text[start:len(text) if end < 0 else end]
                    if STORED_PARSE.search(statement):
                        line = text.count("\n", 0, match.start()) + 1
                        problems.append(f"{os.path.relpath(path, root)}:{line}: parses a stored experiment "
                                        "(experimentJson); only core/src/runs does, use "
                                        "recordedExperiment() from runs/run_loader.h")


def check(root):
    problems = []
    check_includes(root, problems)
    check_stored_experiment_parsing(root, problems)
    return problems


def write(root, relative, text):
    path = os.path.join(root, relative)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def prove():
    """Runs the checker on a tiny good tree (no problems) and a tiny bad one (exactly the planted ones)."""
    inc = "core/include/segscope/core/"
    with tempfile.TemporaryDirectory(prefix="check_layers-") as good:
        write(good, inc + "error.h", "#pragma once\n")
        write(good, inc + "data/dataset.h", '#pragma once\n#include "segscope/core/error.h"\n')
        write(good, inc + "runs/loaded_run.h", '#pragma once\n#include "segscope/core/data/dataset.h"\n')
        write(good, inc + "runs/run_store.h", "#pragma once\n")
        write(good, "core/src/analysis/erf.cpp",
              '#include "segscope/core/runs/loaded_run.h"\n#include "models/eval_mode_scope.h"\n'
              '// parseExperiment(json::parse(record->experimentJson)) in a comment is fine\n')
        write(good, "core/src/models/eval_mode_scope.h", '#pragma once\n#include "segscope/core/error.h"\n')
        write(good, "core/src/runs/run_loader.cpp",
              '#include "segscope/core/runs/run_store.h"\n'
              "Experiment e = parseExperiment(json::parse(record.experimentJson));\n")
        write(good, "ui/src/panel.cpp", 'run.experimentJson = "{}";\n')
        found = check(good)
        if found:
            return ["the checker reports problems in a good tree:"] + found
    with tempfile.TemporaryDirectory(prefix="check_layers-") as bad:
        write(bad, inc + "error.h", "#pragma once\n")
        write(bad, inc + "data/dataset.h", '#pragma once\n#include "segscope/core/error.h"\n'
                                           '#include "segscope/core/models/model.h"\n')  # rule 1, line 3
        write(bad, inc + "models/model.h", '#pragma once\n#include "segscope/core/experiment.h"\n')  # rule 1, line 2
        write(bad, inc + "experiment.h", "#pragma once\n")
        write(bad, inc + "runs/run_store.h", "#pragma once\n")
        write(bad, "core/src/analysis/inference.cpp",
              '#include "segscope/core/runs/run_store.h"\n'  # rule 2, line 1
              '#include "training/autocast_scope.h"\n')  # rule 1 through a private header, line 2
        write(bad, "core/src/training/autocast_scope.h", "#pragma once\n")
        write(bad, "ui/src/panel.cpp", "void f() {\n    experiment = core::parseExperiment(\n"
                                       "        nlohmann::json::parse(record->experimentJson));\n}\n")  # rule 3, line 3
        found = check(bad)
        expected = [
            ("core/include/segscope/core/data/dataset.h:3:", "layer models"),
            ("core/include/segscope/core/models/model.h:2:", "layer experiment"),
            ("core/src/analysis/inference.cpp:1:", "only runs/loaded_run.h"),
            ("core/src/analysis/inference.cpp:2:", "layer training"),
            ("ui/src/panel.cpp:3:", "parses a stored experiment"),
        ]
        missing = [f"{where} {what}" for where, what in expected
                   if not any(p.startswith(where) and what in p for p in found)]
        if missing or len(found) != len(expected):
            return (["the checker did not report exactly the planted problems of a bad tree;",
                     "missing: " + ("; ".join(missing) or "none"), "reported:"] + found)
    return []


def main(argv):
    args = argv[1:]
    proving = "--prove" in args
    args = [a for a in args if a != "--prove"]
    if len(args) > 1 or any(a.startswith("-") for a in args):
        print(__doc__, file=sys.stderr)
        return 2
    root = os.path.abspath(args[0] if args else os.path.join(os.path.dirname(__file__), ".."))
    if not os.path.isdir(os.path.join(root, "core")):
        print(f"check_layers.py: {root} has no core/ folder", file=sys.stderr)
        return 2
    if proving:
        failures = prove()
        if failures:
            print("check_layers.py: self-test failed: " + "\n".join(failures), file=sys.stderr)
            return 1
        print("check_layers.py: self-test passed (a bad tree fails with each planted file:line)")
    problems = check(root)
    for problem in problems:
        print(problem)
    if problems:
        print(f"check_layers.py: {len(problems)} layering problem(s)", file=sys.stderr)
        return 1
    print(f"check_layers.py: {root}: layering clean")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
