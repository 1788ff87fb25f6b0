#pragma once
// The one way to get from a run's id to what it recorded: its experiment, its checkpoint files
// and its model. The CLI, the GUI and the trainer's helpers all load runs through here; only
// this layer parses a stored experiment (scripts/check_layers.py checks it).
//
// Threads: every function runs on the calling thread and only reads the store and the run's
// files; the store must not be used from another thread meanwhile (RunStore's own rule).
// Errors: Error for an unknown run, a run without checkpoints or a malformed recorded
// experiment (parseExperiment()'s errors); FileError naming the file for missing or unreadable
// checkpoint files.
#include "segscope/core/analysis/predictions.h"
#include "segscope/core/experiment.h"
#include "segscope/core/runs/loaded_run.h"
#include "segscope/core/runs/run_store.h"

#include <filesystem>
#include <string>

namespace segscope::core {

// The experiment recorded with `run` (RunRecord::experimentJson), parsed and validated.
Experiment recordedExperiment(const RunRecord& run);
// The same by id; Error "no run 'ID' in workspace W" for an unknown run.
Experiment recordedExperiment(RunStore& store, const std::string& runId);

// The weights file of a run's checkpoint, by choice:
//   "latest" (or empty): the newest recorded checkpoint whose files still exist;
//   "best": the checkpoint written at the evaluation with the highest mIoU (epochs(runId));
//   anything else: a path to a .safetensors file or to a checkpoint's .state.pt (its weights
//   file next to it is used).
// Throws Error for an unknown run or a run without (existing) checkpoints, and FileError naming
// the path when the chosen checkpoint's weights file does not exist (e.g. deleted by the
// trainer's keep-last policy).
std::filesystem::path resolveCheckpoint(RunStore& store, const std::string& runId, const std::string& choice);

// Everything loadRun() gives except the model, its device and the class table, without reading
// the weights (only the safetensors header) or building the model: cheap enough to check a
// prediction cache instantly. The class count is the checkpoint's "classes" metadata, else
// model.classes, else the val split's class count, else the number of classes recorded with the
// run's last evaluation.
LoadedRun inspectRun(RunStore& store, const std::string& runId, const std::string& checkpoint = "latest");

// Builds the run's model from its recorded experiment and loads the checkpoint's weights
// strictly (every tensor present, same shapes: FileError naming the checkpoint otherwise).
// `device` is a name for resolveDevice(); empty: the experiment's runtime.device. The class count
// is inspectRun()'s.
LoadedRun loadRun(RunStore& store, const std::string& runId, const std::string& checkpoint = "latest",
                  const std::string& device = {});

// predictionKey(inspectRun(store, runId, checkpoint), split): the cache key of a run's checkpoint
// without building the model. Throws what inspectRun() throws.
PredictionKey predictionKey(RunStore& store, const std::string& runId, const std::string& checkpoint,
                            const std::string& split);

}  // namespace segscope::core
