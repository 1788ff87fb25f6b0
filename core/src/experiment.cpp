#include "segscope/core/experiment.h"

#include "experiment_fields.h"

#include "segscope/core/safe_text.h"

#include <nlohmann/json.hpp>

#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <limits>
#include <sstream>
#include <tuple>

namespace segscope::core {
namespace {

using json = nlohmann::json;
using namespace detail;

// Bounds on what a document may hold, so that a hostile file costs little and every message
// that echoes a value stays short.
constexpr std::size_t kMaxStringBytes = 4096;  // paths (PATH_MAX), ids, split names
constexpr std::size_t kMaxNameBytes = 1000;    // the run store's bound on run names
constexpr std::size_t kMaxDescriptionBytes = 65536;
constexpr std::uintmax_t kMaxFileBytes = 4 << 20;  // presets are about 1 KB

std::string formatNumber(double v) {
    if (std::isfinite(v) && v == std::floor(v) && std::fabs(v) < 1e15) return std::to_string(static_cast<long long>(v));
    return json(v).dump();
}

// A numeric interval for messages like "an integer >= 1" or "a number in [0, 1)".
struct Range {
    std::optional<double> min, max;
    bool minOpen = false, maxOpen = false;

    bool contains(double v) const {
        if (std::isnan(v)) return false;
        if (min && (minOpen ? v <= *min : v < *min)) return false;
        if (max && (maxOpen ? v >= *max : v > *max)) return false;
        return true;
    }
    std::string text() const {
        if (min && max)
            return std::string("in ") + (minOpen ? "(" : "[") + formatNumber(*min) + ", " + formatNumber(*max) +
                   (maxOpen ? ")" : "]");
        if (min) return (minOpen ? "> " : ">= ") + formatNumber(*min);
        if (max) return (maxOpen ? "< " : "<= ") + formatNumber(*max);
        return {};
    }
};
Range atLeast(double v) {
    return {v, std::nullopt, false, false};
}
Range above(double v) {
    return {v, std::nullopt, true, false};
}
Range closed(double a, double b) {
    return {a, b, false, false};
}
Range halfOpen(double a, double b) {
    return {a, b, false, true};
}
Range openClosed(double a, double b) {
    return {a, b, true, false};
}

template <typename E>
using Names = std::vector<std::pair<const char*, E>>;

const Names<DataSource> kDataSources{
    {"voc", DataSource::Voc}, {"pets", DataSource::Pets}, {"folder", DataSource::Folder}, {"demo", DataSource::Demo}};
const Names<PetsMode> kPetsModes{
    {"trimap", PetsMode::Trimap}, {"binary", PetsMode::Binary}, {"binary-border-fg", PetsMode::BinaryBorderForeground}};
const Names<ResizeMode> kResizeModes{{"fixed", ResizeMode::Fixed}, {"random-scale-crop", ResizeMode::RandomScaleCrop}};
const Names<Normalization> kNormalizations{{"imagenet", Normalization::ImageNet}, {"half", Normalization::Half}};
const Names<OptimizerType> kOptimizers{
    {"sgd", OptimizerType::Sgd}, {"adam", OptimizerType::Adam}, {"adamw", OptimizerType::AdamW}};
const Names<ScheduleType> kSchedules{{"constant", ScheduleType::Constant},
                                     {"step", ScheduleType::Step},
                                     {"poly", ScheduleType::Poly},
                                     {"cosine", ScheduleType::Cosine}};
const Names<ScheduleUnit> kUnits{{"epoch", ScheduleUnit::Epoch}, {"iteration", ScheduleUnit::Iteration}};
const Names<LossType> kLosses{{"ce", LossType::CrossEntropy}, {"ce+dice", LossType::CrossEntropyDice}};
const Names<EvalResolution> kEvalResolutions{{"train", EvalResolution::Train}, {"original", EvalResolution::Original}};
const Names<AmpMode> kAmpModes{{"off", AmpMode::Off}, {"bf16", AmpMode::Bf16}, {"fp16", AmpMode::Fp16}};

template <typename E>
const char* nameOf(const Names<E>& names, E value) {
    for (const auto& [n, v] : names)
        if (v == value) return n;
    return "?";
}

bool validDevice(const std::string& device) {
    if (device == "auto" || device == "cpu" || device == "cuda") return true;
    if (device.rfind("cuda:", 0) != 0 || device.size() == 5) return false;
    for (std::size_t i = 5; i < device.size(); ++i)
        if (!std::isdigit(static_cast<unsigned char>(device[i]))) return false;
    return device.size() < 12;
}

// Reads one section's fields, collecting every problem instead of stopping at the first.
class Reader {
public:
    std::vector<FieldError> errors;

    void error(const std::string& path, const std::string& message) { errors.push_back({path, message}); }

    // The object at doc[name], or nullptr when absent (or not an object, which is reported).
    const json* section(const json& doc, const std::string& name) {
        auto it = doc.find(name);
        if (it == doc.end()) return nullptr;
        if (!it->is_object()) {
            error(name, "must be an object, got " + jsonForMessage(*it));
            return nullptr;
        }
        checkUnknown(*it, name);
        return &*it;
    }

    void checkUnknown(const json& object, const std::string& section) {
        for (auto it = object.begin(); it != object.end(); ++it) {
            bool known = false;
            for (std::size_t i = 0; i < kFieldCount; ++i)
                if (section == kFields[i].section && it.key() == kFields[i].key) known = true;
            if (section.empty() && isSection(it.key())) known = true;
            if (!known)
                error(joinPath(section, truncateForMessage(it.key(), 60)),
                      "unknown field; known: " + knownKeys(section));
        }
    }

    // Present and not null.
    static const json* find(const json* object, const char* key) {
        if (!object) return nullptr;
        auto it = object->find(key);
        if (it == object->end() || it->is_null()) return nullptr;
        return &*it;
    }

    template <typename T>
    void integer(const json* object, const std::string& section, const char* key, T& out, Range range) {
        if (const json* v = find(object, key)) {
            if (auto parsed = readInteger(*v, joinPath(section, key), range)) {
                if (*parsed > static_cast<long double>(std::numeric_limits<T>::max()))
                    error(joinPath(section, key),
                          "must be an integer <= " + std::to_string(std::numeric_limits<T>::max()) + ", got " +
                              jsonForMessage(*v));
                else
                    out = static_cast<T>(*parsed);
            }
        }
    }
    void optionalInteger(const json* object, const std::string& section, const char* key, std::optional<int>& out,
                         Range range) {
        out.reset();
        if (find(object, key)) {
            int value = 0;
            const std::size_t before = errors.size();
            integer(object, section, key, value, range);
            if (errors.size() == before) out = value;
        }
    }
    void number(const json* object, const std::string& section, const char* key, double& out, Range range) {
        if (const json* v = find(object, key)) {
            if (!v->is_number() || !range.contains(v->get<double>()))
                error(joinPath(section, key), "must be a number " + range.text() + ", got " + jsonForMessage(*v));
            else
                out = v->get<double>();
        }
    }
    void boolean(const json* object, const std::string& section, const char* key, bool& out) {
        if (const json* v = find(object, key)) {
            if (!v->is_boolean())
                error(joinPath(section, key), "must be true or false, got " + jsonForMessage(*v));
            else
                out = v->get<bool>();
        }
    }
    // A string; `nonEmpty` rejects "". At most `maxBytes` bytes of valid UTF-8 (JSON text always
    // is; a document built in memory, e.g. from a --set with a file name's raw bytes, may not be).
    bool string(const json* object, const std::string& section, const char* key, std::string& out, bool nonEmpty,
                std::size_t maxBytes = kMaxStringBytes) {
        if (const json* v = find(object, key)) {
            if (!v->is_string() || (nonEmpty && v->get_ref<const std::string&>().empty())) {
                error(joinPath(section, key),
                      std::string("must be a ") + (nonEmpty ? "non-empty " : "") + "string, got " + jsonForMessage(*v));
                return false;
            }
            const std::string& text = v->get_ref<const std::string&>();
            if (text.size() > maxBytes) {
                error(joinPath(section, key), "must be at most " + std::to_string(maxBytes) + " bytes, got " +
                                                  std::to_string(text.size()) + ": " + jsonForMessage(*v, 60));
                return false;
            }
            if (!isValidUtf8(text)) {
                error(joinPath(section, key),
                      "must be valid UTF-8 text (an experiment file is JSON), got " + jsonForMessage(*v));
                return false;
            }
            out = text;
            return true;
        }
        return false;
    }
    template <typename E>
    void enumeration(const json* object, const std::string& section, const char* key, E& out, const Names<E>& names) {
        if (const json* v = find(object, key)) {
            if (v->is_string())
                for (const auto& [n, value] : names)
                    if (v->get<std::string>() == n) {
                        out = value;
                        return;
                    }
            std::string list;
            for (const auto& [n, value] : names) list += (list.empty() ? "" : ", ") + std::string(n);
            error(joinPath(section, key), "must be one of " + list + ", got " + jsonForMessage(*v));
        }
    }
    // An array of numbers, each in `range`; `size` > 0 requires exactly that many.
    std::optional<std::vector<double>> numbers(const json* object, const std::string& section, const char* key,
                                               Range range, std::size_t size) {
        const json* v = find(object, key);
        if (!v) return std::nullopt;
        const std::string path = joinPath(section, key);
        const std::string what =
            size > 0 ? "an array of " + std::to_string(size) + " numbers" : std::string("a non-empty array of numbers");
        if (!v->is_array() || (size > 0 && v->size() != size) || (size == 0 && v->empty())) {
            error(path, "must be " + what + " " + range.text() + ", got " + jsonForMessage(*v));
            return std::nullopt;
        }
        std::vector<double> out;
        bool ok = true;
        for (std::size_t i = 0; i < v->size(); ++i) {
            const json& x = (*v)[i];
            if (!x.is_number() || !range.contains(x.get<double>())) {
                error(path + "[" + std::to_string(i) + "]",
                      "must be a number " + range.text() + ", got " + jsonForMessage(x));
                ok = false;
            } else {
                out.push_back(x.get<double>());
            }
        }
        if (!ok) return std::nullopt;
        return out;
    }

private:
    std::optional<long double> readInteger(const json& v, const std::string& path, Range range) {
        const std::string expected = "must be an integer " + range.text() + ", got " + jsonForMessage(v);
        if (!v.is_number_integer()) {
            error(path, expected);
            return std::nullopt;
        }
        const long double value = v.is_number_unsigned() ? static_cast<long double>(v.get<std::uint64_t>())
                                                         : static_cast<long double>(v.get<std::int64_t>());
        if (!range.contains(static_cast<double>(value))) {
            error(path, expected);
            return std::nullopt;
        }
        return value;
    }
};

}  // namespace

// ---------------------------------------------------------------------------------------------

ExperimentError::ExperimentError(std::vector<FieldError> errors, const std::string& source)
    : Error([&] {
          std::string text = source.empty() ? "invalid experiment:" : source + ": invalid experiment:";
          for (const auto& e : errors)
              text += "\n  " + (e.path.empty() ? std::string("(document)") : e.path) + ": " + e.message;
          return text;
      }()),
      errors_(std::move(errors)) {}

const char* dataSourceName(DataSource source) {
    return nameOf(kDataSources, source);
}
const char* optimizerTypeName(OptimizerType type) {
    return nameOf(kOptimizers, type);
}
const char* scheduleTypeName(ScheduleType type) {
    return nameOf(kSchedules, type);
}
const char* scheduleUnitName(ScheduleUnit unit) {
    return nameOf(kUnits, unit);
}
const char* lossTypeName(LossType loss) {
    return nameOf(kLosses, loss);
}
const char* evalResolutionName(EvalResolution r) {
    return nameOf(kEvalResolutions, r);
}
const char* ampModeName(AmpMode mode) {
    return nameOf(kAmpModes, mode);
}

bool operator==(const Experiment& a, const Experiment& b) {
    auto dataset = [](const ExperimentDataset& d) {
        return std::tie(d.kind, d.root, d.trainSplit, d.valSplit, d.petsMode, d.validationFraction, d.validationSeed,
                        d.voidToBackground);
    };
    auto model = [](const ExperimentModel& m) { return std::tie(m.id, m.classes, m.pretrained, m.pretrainedStrict); };
    auto transforms = [](const ExperimentTransforms& t) {
        return std::tie(t.height, t.width, t.mode, t.baseShortSide, t.scaleMin, t.scaleMax, t.horizontalFlip,
                        t.photometric, t.normalization);
    };
    auto optimizer = [](const ExperimentOptimizer& o) {
        return std::tie(o.type, o.learningRate, o.momentum, o.nesterov, o.weightDecay, o.beta1, o.beta2,
                        o.headLearningRateMultiplier);
    };
    auto schedule = [](const ExperimentSchedule& s) {
        return std::tie(s.type, s.stepSize, s.gamma, s.per, s.power, s.minLearningRate, s.warmupIterations,
                        s.warmupRatio);
    };
    auto training = [](const ExperimentTraining& t) {
        return std::tie(t.epochs, t.iterations, t.batchSize, t.gradAccumulation, t.gradClipNorm, t.valEvery,
                        t.valEveryUnit, t.loss, t.classWeights, t.diceWeight, t.evalResolution, t.amp, t.channelsLast,
                        t.checkpointEvery, t.erfEveryEpochs, t.erfImages, t.oomRetryHalfBatch);
    };
    auto runtime = [](const ExperimentRuntime& r) {
        return std::tie(r.device, r.threads, r.workers, r.seed, r.deterministic);
    };
    return a.name == b.name && a.description == b.description && dataset(a.dataset) == dataset(b.dataset) &&
           model(a.model) == model(b.model) && transforms(a.transforms) == transforms(b.transforms) &&
           optimizer(a.optimizer) == optimizer(b.optimizer) && schedule(a.schedule) == schedule(b.schedule) &&
           training(a.training) == training(b.training) && runtime(a.runtime) == runtime(b.runtime);
}

Experiment parseExperiment(const json& doc) {
    Reader r;
    Experiment e;
    if (!doc.is_object()) throw ExperimentError({{"", "must be a JSON object, got " + jsonForMessage(doc)}});
    r.checkUnknown(doc, "");

    // version
    if (auto it = doc.find("version"); it == doc.end()) {
        r.error("version", "required; this SegScope reads version " + std::to_string(kExperimentVersion));
    } else if (!it->is_number_integer()) {
        r.error("version", "must be an integer, got " + jsonForMessage(*it));
    } else if (it->get<std::int64_t>() < 1 || it->get<std::int64_t>() > kExperimentVersion) {
        r.error("version",
                "unsupported version " + jsonForMessage(*it) + "; this SegScope reads version " +
                    std::to_string(kExperimentVersion) +
                    (it->get<std::int64_t>() > kExperimentVersion ? " (the file is from a newer SegScope)" : ""));
    }
    r.string(&doc, "", "name", e.name, false, kMaxNameBytes);
    std::string description;
    if (r.string(&doc, "", "description", description, false, kMaxDescriptionBytes)) e.description = description;

    // dataset
    {
        const json* s = r.section(doc, "dataset");
        if (!Reader::find(s, "kind")) r.error("dataset.kind", "required; one of voc, pets, folder, demo");
        r.enumeration(s, "dataset", "kind", e.dataset.kind, kDataSources);
        std::string root;
        if (r.string(s, "dataset", "root", root, true))
            e.dataset.root = root;
        else if (!Reader::find(s, "root") && e.dataset.kind != DataSource::Demo && Reader::find(s, "kind"))
            r.error("dataset.root", std::string("required for kind \"") + dataSourceName(e.dataset.kind) + "\"");
        r.string(s, "dataset", "train_split", e.dataset.trainSplit, true);
        r.string(s, "dataset", "val_split", e.dataset.valSplit, true);
        r.enumeration(s, "dataset", "pets_mode", e.dataset.petsMode, kPetsModes);
        r.number(s, "dataset", "validation_fraction", e.dataset.validationFraction, halfOpen(0, 1));
        r.integer(s, "dataset", "validation_seed", e.dataset.validationSeed, atLeast(0));
        r.boolean(s, "dataset", "void_to_background", e.dataset.voidToBackground);
    }
    // model
    {
        const json* s = r.section(doc, "model");
        if (!Reader::find(s, "id")) r.error("model.id", "required, e.g. \"segformer-b0\"");
        r.string(s, "model", "id", e.model.id, true);
        r.optionalInteger(s, "model", "classes", e.model.classes, closed(1, 255));
        std::string pretrained;
        if (r.string(s, "model", "pretrained", pretrained, true))
            e.model.pretrained = std::filesystem::path(pretrained);
        r.boolean(s, "model", "pretrained_strict", e.model.pretrainedStrict);
    }
    // transforms
    {
        const json* s = r.section(doc, "transforms");
        auto& t = e.transforms;
        r.integer(s, "transforms", "height", t.height, closed(1, 16384));
        r.integer(s, "transforms", "width", t.width, closed(1, 16384));
        r.enumeration(s, "transforms", "mode", t.mode, kResizeModes);
        r.integer(s, "transforms", "base_short_side", t.baseShortSide, closed(0, 16384));
        const std::size_t before = r.errors.size();
        r.number(s, "transforms", "scale_min", t.scaleMin, openClosed(0, 16));
        r.number(s, "transforms", "scale_max", t.scaleMax, openClosed(0, 16));
        if (r.errors.size() == before && t.scaleMax < t.scaleMin)
            r.error("transforms.scale_max", "must be >= transforms.scale_min (" + formatNumber(t.scaleMin) + "), got " +
                                                formatNumber(t.scaleMax));
        r.boolean(s, "transforms", "horizontal_flip", t.horizontalFlip);
        r.boolean(s, "transforms", "photometric", t.photometric);
        r.enumeration(s, "transforms", "normalization", t.normalization, kNormalizations);
    }
    // optimizer
    {
        const json* s = r.section(doc, "optimizer");
        auto& o = e.optimizer;
        r.enumeration(s, "optimizer", "type", o.type, kOptimizers);
        r.number(s, "optimizer", "lr", o.learningRate, openClosed(0, 10));
        r.number(s, "optimizer", "momentum", o.momentum, halfOpen(0, 1));
        r.boolean(s, "optimizer", "nesterov", o.nesterov);
        r.number(s, "optimizer", "weight_decay", o.weightDecay, atLeast(0));
        if (auto betas = r.numbers(s, "optimizer", "betas", halfOpen(0, 1), 2)) {
            o.beta1 = (*betas)[0];
            o.beta2 = (*betas)[1];
        }
        r.number(s, "optimizer", "head_lr_multiplier", o.headLearningRateMultiplier, above(0));
        if (o.nesterov && o.type == OptimizerType::Sgd && o.momentum == 0)
            r.error("optimizer.nesterov", "needs optimizer.momentum > 0");
    }
    // schedule
    {
        const json* s = r.section(doc, "schedule");
        auto& sc = e.schedule;
        r.enumeration(s, "schedule", "type", sc.type, kSchedules);
        r.integer(s, "schedule", "step_size", sc.stepSize, atLeast(1));
        r.number(s, "schedule", "gamma", sc.gamma, openClosed(0, 1));
        r.enumeration(s, "schedule", "per", sc.per, kUnits);
        r.number(s, "schedule", "power", sc.power, above(0));
        r.number(s, "schedule", "min_lr", sc.minLearningRate, atLeast(0));
        r.integer(s, "schedule", "warmup_iterations", sc.warmupIterations, atLeast(0));
        r.number(s, "schedule", "warmup_ratio", sc.warmupRatio, openClosed(0, 1));
        if (sc.minLearningRate > e.optimizer.learningRate)
            r.error("schedule.min_lr", "must be <= optimizer.lr (" + formatNumber(e.optimizer.learningRate) +
                                           "), got " + formatNumber(sc.minLearningRate));
    }
    // training
    {
        const json* s = r.section(doc, "training");
        auto& t = e.training;
        r.optionalInteger(s, "training", "epochs", t.epochs, atLeast(1));
        r.optionalInteger(s, "training", "iterations", t.iterations, atLeast(1));
        const bool hasEpochs = Reader::find(s, "epochs") != nullptr;
        const bool hasIterations = Reader::find(s, "iterations") != nullptr;
        if (hasEpochs && hasIterations)
            r.error("training.iterations", "set exactly one of training.epochs and training.iterations, got both");
        else if (!hasEpochs && !hasIterations)
            r.error("training.epochs", "required: set exactly one of training.epochs and training.iterations");
        r.integer(s, "training", "batch_size", t.batchSize, atLeast(1));
        r.integer(s, "training", "grad_accumulation", t.gradAccumulation, atLeast(1));
        r.number(s, "training", "grad_clip_norm", t.gradClipNorm, atLeast(0));
        r.integer(s, "training", "val_every", t.valEvery, atLeast(1));
        r.enumeration(s, "training", "val_every_unit", t.valEveryUnit, kUnits);
        r.enumeration(s, "training", "loss", t.loss, kLosses);
        t.classWeights = r.numbers(s, "training", "class_weights", atLeast(0), 0);
        if (t.classWeights && e.model.classes && static_cast<int>(t.classWeights->size()) != *e.model.classes)
            r.error("training.class_weights", "has " + std::to_string(t.classWeights->size()) +
                                                  " weights, model.classes is " + std::to_string(*e.model.classes));
        r.number(s, "training", "dice_weight", t.diceWeight, atLeast(0));
        r.enumeration(s, "training", "eval_resolution", t.evalResolution, kEvalResolutions);
        r.enumeration(s, "training", "amp", t.amp, kAmpModes);
        r.boolean(s, "training", "channels_last", t.channelsLast);
        r.integer(s, "training", "checkpoint_every", t.checkpointEvery, atLeast(0));
        r.integer(s, "training", "erf_every_epochs", t.erfEveryEpochs, atLeast(0));
        r.integer(s, "training", "erf_images", t.erfImages, atLeast(1));
        r.boolean(s, "training", "oom_retry_half_batch", t.oomRetryHalfBatch);
    }
    // runtime
    {
        const json* s = r.section(doc, "runtime");
        auto& rt = e.runtime;
        std::string device;
        if (r.string(s, "runtime", "device", device, true)) {
            if (validDevice(device))
                rt.device = device;
            else
                r.error("runtime.device", "must be auto, cpu, cuda or cuda:N, got " + jsonForMessage(json(device)));
        }
        r.integer(s, "runtime", "threads", rt.threads, closed(0, 4096));
        r.integer(s, "runtime", "workers", rt.workers, closed(0, 256));
        r.integer(s, "runtime", "seed", rt.seed, atLeast(0));
        r.boolean(s, "runtime", "deterministic", rt.deterministic);
        if (e.training.amp != AmpMode::Off && rt.device == "cpu")
            r.error("training.amp", std::string("\"") + ampModeName(e.training.amp) +
                                        "\" needs a CUDA device; runtime.device is \"cpu\" (use \"off\")");
    }
    if (!r.errors.empty()) throw ExperimentError(std::move(r.errors));
    return e;
}

json toJson(const Experiment& e) {
    json doc;
    doc["version"] = kExperimentVersion;
    doc["name"] = e.name;
    if (e.description) doc["description"] = *e.description;
    const auto& d = e.dataset;
    doc["dataset"] = {{"kind", dataSourceName(d.kind)},
                      {"train_split", d.trainSplit},
                      {"val_split", d.valSplit},
                      {"pets_mode", nameOf(kPetsModes, d.petsMode)},
                      {"validation_fraction", d.validationFraction},
                      {"validation_seed", d.validationSeed},
                      {"void_to_background", d.voidToBackground}};
    if (!d.root.empty()) doc["dataset"]["root"] = d.root.string();
    doc["model"] = {{"id", e.model.id}, {"pretrained_strict", e.model.pretrainedStrict}};
    if (e.model.classes) doc["model"]["classes"] = *e.model.classes;
    if (e.model.pretrained) doc["model"]["pretrained"] = e.model.pretrained->string();
    const auto& t = e.transforms;
    doc["transforms"] = {{"height", t.height},
                         {"width", t.width},
                         {"mode", nameOf(kResizeModes, t.mode)},
                         {"base_short_side", t.baseShortSide},
                         {"scale_min", t.scaleMin},
                         {"scale_max", t.scaleMax},
                         {"horizontal_flip", t.horizontalFlip},
                         {"photometric", t.photometric},
                         {"normalization", nameOf(kNormalizations, t.normalization)}};
    const auto& o = e.optimizer;
    doc["optimizer"] = {{"type", optimizerTypeName(o.type)},
                        {"lr", o.learningRate},
                        {"momentum", o.momentum},
                        {"nesterov", o.nesterov},
                        {"weight_decay", o.weightDecay},
                        {"betas", {o.beta1, o.beta2}},
                        {"head_lr_multiplier", o.headLearningRateMultiplier}};
    const auto& s = e.schedule;
    doc["schedule"] = {{"type", scheduleTypeName(s.type)},
                       {"step_size", s.stepSize},
                       {"gamma", s.gamma},
                       {"per", scheduleUnitName(s.per)},
                       {"power", s.power},
                       {"min_lr", s.minLearningRate},
                       {"warmup_iterations", s.warmupIterations},
                       {"warmup_ratio", s.warmupRatio}};
    const auto& tr = e.training;
    doc["training"] = {{"batch_size", tr.batchSize},
                       {"grad_accumulation", tr.gradAccumulation},
                       {"grad_clip_norm", tr.gradClipNorm},
                       {"val_every", tr.valEvery},
                       {"val_every_unit", scheduleUnitName(tr.valEveryUnit)},
                       {"loss", lossTypeName(tr.loss)},
                       {"dice_weight", tr.diceWeight},
                       {"eval_resolution", evalResolutionName(tr.evalResolution)},
                       {"amp", ampModeName(tr.amp)},
                       {"channels_last", tr.channelsLast},
                       {"checkpoint_every", tr.checkpointEvery},
                       {"erf_every_epochs", tr.erfEveryEpochs},
                       {"erf_images", tr.erfImages},
                       {"oom_retry_half_batch", tr.oomRetryHalfBatch}};
    if (tr.epochs) doc["training"]["epochs"] = *tr.epochs;
    if (tr.iterations) doc["training"]["iterations"] = *tr.iterations;
    if (tr.classWeights) doc["training"]["class_weights"] = *tr.classWeights;
    const auto& rt = e.runtime;
    doc["runtime"] = {{"device", rt.device},
                      {"threads", rt.threads},
                      {"workers", rt.workers},
                      {"seed", rt.seed},
                      {"deterministic", rt.deterministic}};
    return doc;
}

Experiment loadExperiment(const std::filesystem::path& path) {
    struct stat status {};
    if (::stat(path.c_str(), &status) != 0) {
        const int error = errno;
        if (error == ENOENT || error == ENOTDIR) throw FileError(path.string(), "the experiment file does not exist");
        throw FileError(path.string(), std::string("the experiment file cannot be read: ") + std::strerror(error));
    }
    if (S_ISDIR(status.st_mode)) throw FileError(path.string(), "is a directory, not an experiment file");
    if (!S_ISREG(status.st_mode))
        throw FileError(path.string(), "is not a regular file (an experiment is a JSON file)");
    if (std::uintmax_t(status.st_size) > kMaxFileBytes)
        throw FileError(path.string(), "is " + std::to_string(status.st_size) +
                                           " bytes; an experiment file is at most " +
                                           std::to_string(kMaxFileBytes >> 20) + " MiB");
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        const int error = errno;
        throw FileError(path.string(),
                        std::string("cannot open the experiment file: ") + std::strerror(error ? error : EACCES));
    }
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (in.bad()) throw FileError(path.string(), "cannot read the experiment file");
    if (const auto problem = scanJsonText(text)) {
        if (problem->nesting)
            throw FileError(path.string(), "not valid JSON: " + (problem->field.empty() ? "" : problem->field + ": ") +
                                               problem->message);
        throw ExperimentError({{problem->field, problem->message}}, path.string());
    }
    json doc;
    try {
        doc = parseScannedJson(text);
    } catch (const json::exception& e) {
        // nlohmann's "[json.exception.parse_error.101] parse error at line 4, column 34: ..." in
        // words: "line 4, column 34: syntax error ...".
        std::string message = e.what();
        if (message.rfind("[json.exception.", 0) == 0 && message.find("] ") != std::string::npos)
            message.erase(0, message.find("] ") + 2);
        if (message.rfind("parse error at ", 0) == 0) message.erase(0, std::string("parse error at ").size());
        throw FileError(path.string(), "not valid JSON: " + truncateForMessage(message, 300));
    }
    try {
        return parseExperiment(doc);
    } catch (const ExperimentError& e) {
        throw ExperimentError(e.errors(), path.string());
    }
}

void saveExperiment(const std::filesystem::path& path, const Experiment& experiment) {
    const std::string text = toJson(experiment).dump(2) + "\n";
    // A temporary file in the same folder, renamed over the target, so readers never see half a file.
    const std::filesystem::path temp = path.string() + ".tmp-" + std::to_string(::getpid());
    {
        std::ofstream out(temp, std::ios::binary | std::ios::trunc);
        if (!out) throw FileError(path.string(), "cannot write (cannot create " + temp.filename().string() + ")");
        out << text;
        out.flush();
        if (!out) {
            std::error_code ignored;
            std::filesystem::remove(temp, ignored);
            throw FileError(path.string(), "cannot write (disk full?)");
        }
    }
    std::error_code ec;
    std::filesystem::rename(temp, path, ec);
    if (ec) {
        std::error_code ignored;
        std::filesystem::remove(temp, ignored);
        throw FileError(path.string(), "cannot replace: " + ec.message());
    }
}

}  // namespace segscope::core
