#pragma once
// The experiment file: one versioned JSON document ("version": 1) that describes a training run
// completely (data, model, transforms, optimiser, schedule, training loop, runtime). Both
// segscope-cli and the GUI read and write it; docs/experiment-format.md documents every field.
//
// Parsing is strict and collects every problem: unknown fields, wrong JSON types, values out of
// range and unknown enum names are all reported together in one ExperimentError, each with the
// dotted path of its field ("training.batch_size"), so an editor can flag each field.
// Everything has a default except dataset.kind, dataset.root (optional for "demo") and model.id,
// and training needs exactly one of epochs and iterations.
//
// All functions are pure or touch only the named files; they are safe from any thread.
#include "segscope/core/data/dataset.h"
#include "segscope/core/data/demo_data.h"
#include "segscope/core/data/loader.h"
#include "segscope/core/data/transforms.h"
#include "segscope/core/error.h"

#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace segscope::core {

inline constexpr int kExperimentVersion = 1;

// Where the data comes from: the three on-disk layouts, or the built-in synthetic dataset
// (VOC layout, written on demand).
enum class DataSource { Voc, Pets, Folder, Demo };
enum class OptimizerType { Sgd, Adam, AdamW };
enum class ScheduleType { Constant, Step, Poly, Cosine };
enum class ScheduleUnit { Epoch, Iteration };
enum class LossType { CrossEntropy, CrossEntropyDice };
enum class EvalResolution { Train, Original };
enum class AmpMode { Off, Bf16, Fp16 };

struct ExperimentDataset {
    DataSource kind = DataSource::Demo;
    std::filesystem::path root;  // empty for demo: defaultDemoRoot()
    std::string trainSplit = "train";
    std::string valSplit = "val";
    PetsMode petsMode = PetsMode::Trimap;
    double validationFraction = 0.1;
    std::uint64_t validationSeed = 0;
    bool voidToBackground = false;
};

struct ExperimentModel {
    std::string id;
    std::optional<int> classes;  // empty: the dataset's class count
    std::optional<std::filesystem::path> pretrained;
    bool pretrainedStrict = true;
};

// The "transforms" section is the data pipeline's own settings type: one set of fields and
// defaults (data/transforms.h); transformConfig() adds the dataset's voidToBackground.
using ExperimentTransforms = TransformSettings;

struct ExperimentOptimizer {
    OptimizerType type = OptimizerType::AdamW;
    double learningRate = 1e-4;
    double momentum = 0.9;
    bool nesterov = false;
    double weightDecay = 0.01;
    double beta1 = 0.9;
    double beta2 = 0.999;
    double headLearningRateMultiplier = 1.0;
};

struct ExperimentSchedule {
    ScheduleType type = ScheduleType::Poly;
    int stepSize = 30;
    double gamma = 0.1;
    ScheduleUnit per = ScheduleUnit::Iteration;
    double power = 1.0;
    double minLearningRate = 0.0;
    int warmupIterations = 0;
    double warmupRatio = 1e-6;
};

struct ExperimentTraining {
    std::optional<int> epochs;  // exactly one of epochs and iterations is set
    std::optional<int> iterations;
    int batchSize = 8;
    int gradAccumulation = 1;
    double gradClipNorm = 0.0;  // 0: off
    int valEvery = 1;
    ScheduleUnit valEveryUnit = ScheduleUnit::Epoch;
    LossType loss = LossType::CrossEntropy;
    std::optional<std::vector<double>> classWeights;
    double diceWeight = 1.0;
    EvalResolution evalResolution = EvalResolution::Train;
    AmpMode amp = AmpMode::Off;
    bool channelsLast = false;
    int checkpointEvery = 1;  // in valEveryUnit units; 0: only the last and the best
    int erfEveryEpochs = 0;   // 0: off; snapshots before training and every N epochs (RUN/erf/)
    int erfImages = 16;       // validation images averaged per ERF snapshot
    bool oomRetryHalfBatch = true;
};

struct ExperimentRuntime {
    std::string device = "auto";  // auto, cpu, cuda, cuda:N
    int threads = 0;              // 0: all cores
    int workers = 2;
    std::uint64_t seed = 0;
    bool deterministic = false;
};

struct Experiment {
    std::string name;
    std::optional<std::string> description;
    ExperimentDataset dataset;
    ExperimentModel model;
    ExperimentTransforms transforms;
    ExperimentOptimizer optimizer;
    ExperimentSchedule schedule;
    ExperimentTraining training;
    ExperimentRuntime runtime;
};

bool operator==(const Experiment& a, const Experiment& b);
inline bool operator!=(const Experiment& a, const Experiment& b) {
    return !(a == b);
}

struct FieldError {
    std::string path;     // dotted JSON path, e.g. "training.batch_size"; "" for the document
    std::string message;  // e.g. "must be an integer >= 1, got 0"
};

// Every problem of one experiment document. what() lists them, one "path: message" per line.
class ExperimentError : public Error {
public:
    explicit ExperimentError(std::vector<FieldError> errors, const std::string& source = {});
    const std::vector<FieldError>& errors() const noexcept { return errors_; }

private:
    std::vector<FieldError> errors_;
};

// Parses and validates a document. Throws ExperimentError with all problems found.
Experiment parseExperiment(const nlohmann::json& document);
// Reads a file. Throws FileError when it cannot be read or is not JSON, ExperimentError (whose
// message starts with the path) when it is not a valid experiment.
Experiment loadExperiment(const std::filesystem::path& path);
// The complete document, every field written (optional ones only when set).
nlohmann::json toJson(const Experiment& experiment);
// Writes atomically (temporary file in the same folder, then rename). Throws FileError.
void saveExperiment(const std::filesystem::path& path, const Experiment& experiment);

// Applies "section.field=value" (a --set option; experiment_set.cpp). The value is read as the
// field's type: integers, numbers, true/false, strings as written, arrays as JSON ("[1, 2]") or comma-separated
// ("1,2"); "null" clears an optional field. Setting training.epochs clears training.iterations
// and vice versa. Throws ExperimentError naming the field (unknown field, bad value).
void applyOverride(Experiment& experiment, const std::string& assignment);

// Enum names as they appear in the file.
const char* dataSourceName(DataSource source);      // voc, pets, folder, demo
const char* optimizerTypeName(OptimizerType type);  // sgd, adam, adamw
const char* scheduleTypeName(ScheduleType type);    // constant, step, poly, cosine
const char* scheduleUnitName(ScheduleUnit unit);    // epoch, iteration
const char* lossTypeName(LossType loss);            // ce, ce+dice
const char* evalResolutionName(EvalResolution r);   // train, original
const char* ampModeName(AmpMode mode);              // off, bf16, fp16

// dataset.root, or defaultDemoRoot() (data/demo_data.h) for a demo without one.
std::filesystem::path datasetRoot(const Experiment& experiment);
// For a demo experiment, writes the synthetic dataset into datasetRoot() unless it is already
// there (ensureDemoDataset()). Does nothing for other sources. Throws FileError when the folder
// cannot be written.
void prepareDemoDataset(const Experiment& experiment);

// The pieces the data pipeline takes (experiment_data.cpp). `split` is normally
// dataset.train_split or val_split.
DatasetSpec datasetSpec(const Experiment& experiment, const std::string& split);
TransformConfig transformConfig(const Experiment& experiment);
// Training: shuffled, drops the last partial batch (a batch of one breaks BatchNorm); evaluation:
// in order, keeps every sample.
LoaderOptions loaderOptions(const Experiment& experiment, bool training);

}  // namespace segscope::core
