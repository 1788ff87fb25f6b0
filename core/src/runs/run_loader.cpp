#include "segscope/core/runs/run_loader.h"

#include "segscope/core/data/dataset.h"
#include "segscope/core/error.h"
#include "segscope/core/models/registry.h"
#include "segscope/core/models/weights.h"
#include "segscope/core/runtime.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <fstream>
#include <map>
#include <optional>

namespace segscope::core {
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

fs::path weightsOf(const fs::path& path) {
    const std::string name = path.string();
    const std::string stateSuffix = ".state.pt";
    if (name.size() > stateSuffix.size() &&
        name.compare(name.size() - stateSuffix.size(), stateSuffix.size(), stateSuffix) == 0)
        return name.substr(0, name.size() - stateSuffix.size()) + ".safetensors";
    return path;
}

bool isFile(const fs::path& path) {
    std::error_code ec;
    return fs::is_regular_file(path, ec);
}

// The class table as loadRun() reports it: the val split's when the dataset can be opened, else
// the names recorded with the run's last evaluation, in VOC colours.
std::vector<ClassInfo> recordedClassTable(RunStore& store, const std::string& runId, const Experiment& experiment) {
    std::vector<ClassInfo> classes;
    try {
        classes = Dataset::open(datasetSpec(experiment, experiment.dataset.valSplit))->classes();
    } catch (const std::exception&) {
        const auto epochs = store.epochs(runId);
        if (!epochs.empty())
            for (const auto& c : store.classMetrics(runId, epochs.back().epoch))
                classes.push_back({c.className, vocColor(c.classIndex)});
    }
    return classes;
}

// The class table, built on first use only: opening a dataset can cost a folder listing.
class LazyClassTable {
public:
    LazyClassTable(RunStore& store, std::string runId) : store_(store), runId_(std::move(runId)) {}
    const std::vector<ClassInfo>& get(const Experiment& experiment) {
        if (!table_) table_ = recordedClassTable(store_, runId_, experiment);
        return *table_;
    }

private:
    RunStore& store_;
    std::string runId_;
    std::optional<std::vector<ClassInfo>> table_;
};

LoadedRun inspect(RunStore& store, const std::string& runId, const std::string& checkpoint, LazyClassTable& table) {
    const auto record = store.run(runId);
    if (!record) throw Error("no run '" + runId + "' in workspace " + store.workspace().string());
    LoadedRun run;
    run.runId = runId;
    run.folder = record->folder;
    run.experiment = recordedExperiment(*record);
    run.checkpoint = resolveCheckpoint(store, runId, checkpoint);
    for (const auto& c : store.checkpoints(runId))
        if (weightsOf(c.path) == run.checkpoint) {
            run.epoch = c.epoch;
            run.step = c.step;
        }
    // Only the header: the class count must not cost reading a whole checkpoint.
    const auto metadata = readSafetensorsMetadata(run.checkpoint);
    if (auto it = metadata.find("classes"); it != metadata.end()) {
        try {
            run.classes = std::stoi(it->second);
        } catch (const std::exception&) {
            throw FileError(run.checkpoint.string(), "metadata 'classes' is not a number: " + it->second);
        }
    } else if (run.experiment.model.classes) {
        run.classes = *run.experiment.model.classes;
    } else {
        run.classes = int(table.get(run.experiment).size());
    }
    return run;
}

}  // namespace

Experiment recordedExperiment(const RunRecord& run) {
    return parseExperiment(json::parse(run.experimentJson));
}

Experiment recordedExperiment(RunStore& store, const std::string& runId) {
    const auto record = store.run(runId);
    if (!record) throw Error("no run '" + runId + "' in workspace " + store.workspace().string());
    return recordedExperiment(*record);
}

fs::path resolveCheckpoint(RunStore& store, const std::string& runId, const std::string& choice) {
    if (!store.run(runId)) throw Error("no run '" + runId + "' in workspace " + store.workspace().string());
    if (choice.empty() || choice == "latest") {
        const auto checkpoints = store.checkpoints(runId);
        // Newest first; the trainer deletes older checkpoints beyond its keep count, their rows stay.
        std::vector<CheckpointRecord> sorted(checkpoints.begin(), checkpoints.end());
        std::stable_sort(sorted.begin(), sorted.end(),
                         [](const CheckpointRecord& a, const CheckpointRecord& b) { return a.step > b.step; });
        for (const auto& c : sorted)
            if (isFile(weightsOf(c.path))) return weightsOf(c.path);
        throw Error("run " + runId + " has no checkpoint" +
                    (checkpoints.empty() ? std::string() : " whose files still exist") +
                    (checkpoints.empty() ? " (it was stopped before the first one was written)" : ""));
    }
    if (choice == "best") {
        const auto epochs = store.epochs(runId);
        const EpochRecord* best = nullptr;
        for (const auto& e : epochs)
            if (e.mIoU && (!best || *e.mIoU > *best->mIoU)) best = &e;
        if (!best) throw Error("run " + runId + " has no evaluation with an mIoU, so no best checkpoint");
        // Match by step: per-iteration validation numbers evaluations, not epochs.
        for (const auto& c : store.checkpoints(runId))
            if (c.step == best->step) {
                const fs::path weights = weightsOf(c.path);
                if (!isFile(weights))
                    throw FileError(weights.string(), "the best checkpoint's weights file is missing");
                return weights;
            }
        throw Error("run " + runId + " recorded no checkpoint at its best evaluation (step " +
                    std::to_string(best->step) + ")");
    }
    const fs::path weights = weightsOf(choice);
    if (!isFile(weights)) throw FileError(weights.string(), "no such checkpoint file");
    return weights;
}

LoadedRun inspectRun(RunStore& store, const std::string& runId, const std::string& checkpoint) {
    LazyClassTable table(store, runId);
    return inspect(store, runId, checkpoint, table);
}

LoadedRun loadRun(RunStore& store, const std::string& runId, const std::string& checkpoint, const std::string& device) {
    LazyClassTable table(store, runId);
    LoadedRun run = inspect(store, runId, checkpoint, table);
    if (run.classes < 1) throw FileError(run.checkpoint.string(), "cannot tell the model's number of classes");
    const std::vector<ClassInfo>& known = table.get(run.experiment);
    for (int c = 0; c < run.classes; ++c)
        run.classInfo.push_back(c < int(known.size()) ? known[std::size_t(c)]
                                                      : ClassInfo{"class" + std::to_string(c), vocColor(c)});

    const TensorMap weights = readSafetensors(run.checkpoint);
    run.model = createModel(run.experiment.model.id, run.classes);
    LoadOptions strict;
    strict.strict = true;
    try {
        loadStateDict(*run.model, weights, strict);
    } catch (const Error& e) {
        throw FileError(run.checkpoint.string(), e.what());
    }
    run.device = resolveDevice(device.empty() ? run.experiment.runtime.device : device);
    run.model->to(run.device);
    run.model->eval();
    return run;
}

PredictionKey predictionKey(RunStore& store, const std::string& runId, const std::string& checkpoint,
                            const std::string& split) {
    return predictionKey(inspectRun(store, runId, checkpoint), split);
}

}  // namespace segscope::core
