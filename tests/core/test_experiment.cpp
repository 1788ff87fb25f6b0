#include "segscope/core/error.h"
#include "segscope/core/experiment.h"

#include "test_support.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cstdlib>
#include <fstream>

using namespace segscope::core;
using nlohmann::json;

namespace {

json minimal() {
    return json::parse(R"({"version": 1, "dataset": {"kind": "demo"}, "model": {"id": "segformer-b0"},
                           "training": {"epochs": 2}})");
}

// The errors of a document that must fail, or a failure when it parses.
std::vector<FieldError> errorsOf(const json& doc) {
    try {
        parseExperiment(doc);
    } catch (const ExperimentError& e) {
        return e.errors();
    }
    ADD_FAILURE() << "parsed without errors: " << doc.dump();
    return {};
}

// Expects exactly one error, at `path`, whose message contains `fragment`.
void expectSingleError(const json& doc, const std::string& path, const std::string& fragment) {
    const auto errors = errorsOf(doc);
    ASSERT_EQ(errors.size(), 1u) << doc.dump() << "\n"
                                 << (errors.empty() ? "" : errors[0].path + ": " + errors[0].message);
    EXPECT_EQ(errors[0].path, path) << errors[0].message;
    EXPECT_NE(errors[0].message.find(fragment), std::string::npos)
        << path << ": '" << errors[0].message << "' lacks '" << fragment << "'";
}

json with(const std::string& section, const std::string& key, const json& value) {
    json doc = minimal();
    if (section.empty())
        doc[key] = value;
    else
        doc[section][key] = value;
    return doc;
}

Experiment everythingSet() {
    Experiment e;
    e.name = "everything";
    e.description = "all fields away from their defaults";
    e.dataset.kind = DataSource::Pets;
    e.dataset.root = "/data/pets";
    e.dataset.trainSplit = "trainval";
    e.dataset.valSplit = "test";
    e.dataset.petsMode = PetsMode::BinaryBorderForeground;
    e.dataset.validationFraction = 0.2;
    e.dataset.validationSeed = 18446744073709551615ull;
    e.dataset.voidToBackground = true;
    e.model.id = "deeplabv3-resnet50";
    e.model.classes = 3;
    e.model.pretrained = "/weights/x.safetensors";
    e.model.pretrainedStrict = false;
    e.transforms.height = 320;
    e.transforms.width = 480;
    e.transforms.mode = ResizeMode::RandomScaleCrop;
    e.transforms.baseShortSide = 512;
    e.transforms.scaleMin = 0.75;
    e.transforms.scaleMax = 1.5;
    e.transforms.horizontalFlip = true;
    e.transforms.photometric = true;
    e.transforms.normalization = Normalization::Half;
    e.optimizer.type = OptimizerType::Sgd;
    e.optimizer.learningRate = 0.01;
    e.optimizer.momentum = 0.95;
    e.optimizer.nesterov = true;
    e.optimizer.weightDecay = 5e-4;
    e.optimizer.beta1 = 0.8;
    e.optimizer.beta2 = 0.99;
    e.optimizer.headLearningRateMultiplier = 10;
    e.schedule.type = ScheduleType::Step;
    e.schedule.stepSize = 7;
    e.schedule.gamma = 0.5;
    e.schedule.per = ScheduleUnit::Epoch;
    e.schedule.power = 0.9;
    e.schedule.minLearningRate = 1e-6;
    e.schedule.warmupIterations = 100;
    e.schedule.warmupRatio = 0.1;
    e.training.iterations = 1000;
    e.training.batchSize = 4;
    e.training.gradAccumulation = 2;
    e.training.gradClipNorm = 1.5;
    e.training.valEvery = 250;
    e.training.valEveryUnit = ScheduleUnit::Iteration;
    e.training.loss = LossType::CrossEntropyDice;
    e.training.classWeights = std::vector<double>{1.0, 2.5, 0.25};
    e.training.diceWeight = 0.5;
    e.training.evalResolution = EvalResolution::Original;
    e.training.amp = AmpMode::Bf16;
    e.training.channelsLast = true;
    e.training.checkpointEvery = 2;
    e.training.erfEveryEpochs = 3;
    e.training.oomRetryHalfBatch = false;
    e.runtime.device = "cuda:1";
    e.runtime.threads = 6;
    e.runtime.workers = 5;
    e.runtime.seed = 1234;
    e.runtime.deterministic = true;
    return e;
}

}  // namespace

TEST(Experiment, MinimalDocumentTakesDefaults) {
    const Experiment e = parseExperiment(minimal());
    EXPECT_EQ(e.dataset.kind, DataSource::Demo);
    EXPECT_TRUE(e.dataset.root.empty());
    EXPECT_EQ(e.model.id, "segformer-b0");
    EXPECT_FALSE(e.model.classes.has_value());
    EXPECT_EQ(e.training.epochs, 2);
    EXPECT_FALSE(e.training.iterations.has_value());
    const ExperimentTraining defaults;
    EXPECT_EQ(e.training.batchSize, defaults.batchSize);
    EXPECT_EQ(e.optimizer.type, OptimizerType::AdamW);
    EXPECT_EQ(e.runtime.device, "auto");
}

TEST(Experiment, RoundTripsEveryField) {
    const Experiment original = everythingSet();
    const json doc = toJson(original);
    const Experiment parsed = parseExperiment(doc);
    EXPECT_TRUE(parsed == original) << doc.dump(2);
    EXPECT_EQ(toJson(parsed), doc);
    // Every documented field is written when set.
    for (const char* section : {"dataset", "model", "transforms", "optimizer", "schedule", "training", "runtime"})
        EXPECT_TRUE(doc.contains(section)) << section;
    EXPECT_EQ(doc["training"]["class_weights"].size(), 3u);
    EXPECT_EQ(doc["dataset"]["validation_seed"].get<std::uint64_t>(), 18446744073709551615ull);
    // Defaults round-trip too (optional fields stay absent).
    Experiment minimalOne = parseExperiment(minimal());
    EXPECT_TRUE(parseExperiment(toJson(minimalOne)) == minimalOne);
    EXPECT_FALSE(toJson(minimalOne)["model"].contains("classes"));
}

TEST(Experiment, SaveAndLoadThroughAFile) {
    segscope::test::TempDir dir;
    const Experiment original = everythingSet();
    saveExperiment(dir / "e.json", original);
    EXPECT_TRUE(loadExperiment(dir / "e.json") == original);
    // Saving again replaces the file; no temporary files are left.
    saveExperiment(dir / "e.json", original);
    int files = 0;
    for (const auto& entry : std::filesystem::directory_iterator(dir.path())) {
        (void)entry;
        ++files;
    }
    EXPECT_EQ(files, 1);
    EXPECT_THROW(saveExperiment(dir / "missing" / "e.json", original), FileError);
}

TEST(Experiment, LoadErrorsNameTheFile) {
    segscope::test::TempDir dir;
    EXPECT_THROW(loadExperiment(dir / "nope.json"), FileError);
    {
        std::ofstream out(dir / "bad.json");
        out << "{ not json";
    }
    try {
        loadExperiment(dir / "bad.json");
        FAIL();
    } catch (const FileError& e) {
        EXPECT_NE(std::string(e.what()).find("bad.json"), std::string::npos);
    }
    {
        std::ofstream out(dir / "invalid.json");
        out << R"({"version": 1, "dataset": {"kind": "demo"}, "model": {"id": "m"}, "training": {"epochs": 0}})";
    }
    try {
        loadExperiment(dir / "invalid.json");
        FAIL();
    } catch (const ExperimentError& e) {
        EXPECT_NE(std::string(e.what()).find("invalid.json"), std::string::npos);
        ASSERT_EQ(e.errors().size(), 1u);
        EXPECT_EQ(e.errors()[0].path, "training.epochs");
    }
}

TEST(Experiment, ErrorMessagesNameFieldAndAllowedValues) {
    auto errors = errorsOf(with("training", "batch_size", 0));
    ASSERT_EQ(errors.size(), 1u);
    EXPECT_EQ(errors[0].path + ": " + errors[0].message, "training.batch_size: must be an integer >= 1, got 0");
    errors = errorsOf(with("optimizer", "type", "rmsprop"));
    ASSERT_EQ(errors.size(), 1u);
    EXPECT_EQ(errors[0].path + ": " + errors[0].message,
              "optimizer.type: must be one of sgd, adam, adamw, got \"rmsprop\"");
    json doc = minimal();
    doc["dataset"]["rooot"] = "/x";
    errors = errorsOf(doc);
    ASSERT_EQ(errors.size(), 1u);
    EXPECT_EQ(errors[0].path, "dataset.rooot");
    EXPECT_EQ(errors[0].message.rfind("unknown field; known: kind, root, train_split", 0), 0u) << errors[0].message;
}

TEST(Experiment, EveryEnumFieldRejectsUnknownNames) {
    const std::vector<std::tuple<std::string, std::string, std::string>> enums = {
        {"dataset", "kind", "voc, pets, folder, demo"},
        {"dataset", "pets_mode", "trimap, binary, binary-border-fg"},
        {"transforms", "mode", "fixed, random-scale-crop"},
        {"transforms", "normalization", "imagenet, half"},
        {"optimizer", "type", "sgd, adam, adamw"},
        {"schedule", "type", "constant, step, poly, cosine"},
        {"schedule", "per", "epoch, iteration"},
        {"training", "val_every_unit", "epoch, iteration"},
        {"training", "loss", "ce, ce+dice"},
        {"training", "eval_resolution", "train, original"},
        {"training", "amp", "off, bf16, fp16"},
    };
    for (const auto& [section, key, allowed] : enums) {
        SCOPED_TRACE(section + "." + key);
        expectSingleError(with(section, key, "bogus"), section + "." + key,
                          "must be one of " + allowed + ", got \"bogus\"");
        expectSingleError(with(section, key, 3), section + "." + key, "must be one of " + allowed + ", got 3");
    }
}

TEST(Experiment, EveryNumericFieldChecksItsRange) {
    struct Case {
        std::string section, key;
        json bad;
        std::string fragment;
    };
    const std::vector<Case> cases = {
        {"dataset", "validation_fraction", 1.0, "must be a number in [0, 1), got 1.0"},
        {"dataset", "validation_fraction", -0.1, "in [0, 1)"},
        {"dataset", "validation_seed", -1, "must be an integer >= 0, got -1"},
        {"model", "classes", 0, "must be an integer in [1, 255], got 0"},
        {"model", "classes", 256, "in [1, 255]"},
        {"transforms", "height", 0, "must be an integer in [1, 16384], got 0"},
        {"transforms", "width", 20000, "in [1, 16384]"},
        {"transforms", "base_short_side", -1, "in [0, 16384]"},
        {"transforms", "scale_min", 0, "must be a number in (0, 16], got 0"},
        {"transforms", "scale_max", 17, "in (0, 16]"},
        {"optimizer", "lr", 0, "must be a number in (0, 10], got 0"},
        {"optimizer", "momentum", 1.0, "in [0, 1)"},
        {"optimizer", "weight_decay", -1e-4, ">= 0"},
        {"optimizer", "betas", json::array({0.9}), "must be an array of 2 numbers in [0, 1)"},
        {"optimizer", "head_lr_multiplier", 0, "must be a number > 0, got 0"},
        {"schedule", "step_size", 0, "must be an integer >= 1, got 0"},
        {"schedule", "gamma", 1.5, "in (0, 1]"},
        {"schedule", "power", 0, "> 0"},
        {"schedule", "min_lr", -1, ">= 0"},
        {"schedule", "warmup_iterations", -5, ">= 0"},
        {"schedule", "warmup_ratio", 0, "in (0, 1]"},
        {"training", "epochs", 0, "must be an integer >= 1, got 0"},
        {"training", "batch_size", 0, "must be an integer >= 1, got 0"},
        {"training", "batch_size", 5000000000LL, "must be an integer <= 2147483647"},
        {"training", "grad_accumulation", 0, ">= 1"},
        {"training", "grad_clip_norm", -1, ">= 0"},
        {"training", "val_every", 0, ">= 1"},
        {"training", "class_weights", json::array(), "non-empty array of numbers"},
        {"training", "dice_weight", -0.5, ">= 0"},
        {"training", "checkpoint_every", -1, ">= 0"},
        {"training", "erf_every_epochs", -1, ">= 0"},
        {"runtime", "threads", -1, "in [0, 4096]"},
        {"runtime", "workers", 300, "in [0, 256]"},
        {"runtime", "seed", -3, ">= 0"},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(c.section + "." + c.key + " = " + c.bad.dump());
        expectSingleError(with(c.section, c.key, c.bad), c.section + "." + c.key, c.fragment);
    }
    // Array elements are reported with their index.
    expectSingleError(with("optimizer", "betas", json::array({0.9, 1.2})), "optimizer.betas[1]", "in [0, 1)");
    expectSingleError(with("training", "class_weights", json::array({1, -2})), "training.class_weights[1]", ">= 0");
}

TEST(Experiment, CrossFieldRules) {
    json doc = minimal();
    doc["transforms"]["scale_min"] = 1.5;
    doc["transforms"]["scale_max"] = 1.0;
    expectSingleError(doc, "transforms.scale_max", "must be >= transforms.scale_min (1.5), got 1");

    doc = minimal();
    doc["model"]["classes"] = 3;
    doc["training"]["class_weights"] = {1, 2};
    expectSingleError(doc, "training.class_weights", "has 2 weights, model.classes is 3");

    doc = minimal();
    doc["training"]["amp"] = "bf16";
    doc["runtime"]["device"] = "cpu";
    expectSingleError(doc, "training.amp", "needs a CUDA device");

    doc = minimal();
    doc["optimizer"]["lr"] = 1e-4;
    doc["schedule"]["min_lr"] = 1e-3;
    expectSingleError(doc, "schedule.min_lr", "must be <= optimizer.lr");

    doc = minimal();
    doc["optimizer"]["type"] = "sgd";
    doc["optimizer"]["momentum"] = 0;
    doc["optimizer"]["nesterov"] = true;
    expectSingleError(doc, "optimizer.nesterov", "needs optimizer.momentum > 0");

    expectSingleError(with("runtime", "device", "gpu"), "runtime.device",
                      "must be auto, cpu, cuda or cuda:N, got \"gpu\"");
    expectSingleError(with("runtime", "device", "cuda:x"), "runtime.device", "cuda:N");
    for (const char* ok : {"auto", "cpu", "cuda", "cuda:0", "cuda:12"})
        EXPECT_EQ(parseExperiment(with("runtime", "device", ok)).runtime.device, ok);
}

TEST(Experiment, EpochsAndIterationsExactlyOne) {
    json doc = minimal();
    doc["training"]["iterations"] = 100;
    expectSingleError(doc, "training.iterations", "got both");
    doc = minimal();
    doc["training"].erase("epochs");
    expectSingleError(doc, "training.epochs", "set exactly one of training.epochs and training.iterations");
    doc = minimal();
    doc.erase("training");
    expectSingleError(doc, "training.epochs", "set exactly one");
    // null means absent.
    doc = minimal();
    doc["training"]["iterations"] = nullptr;
    EXPECT_NO_THROW(parseExperiment(doc));
    doc = minimal();
    doc["training"].erase("epochs");
    doc["training"]["iterations"] = 500;
    EXPECT_EQ(parseExperiment(doc).training.iterations, 500);
}

TEST(Experiment, RequiredFields) {
    json doc = minimal();
    doc.erase("model");
    expectSingleError(doc, "model.id", "required");
    doc = minimal();
    doc["model"]["id"] = "";
    expectSingleError(doc, "model.id", "non-empty string");
    doc = minimal();
    doc.erase("dataset");
    expectSingleError(doc, "dataset.kind", "required");
    for (const char* kind : {"voc", "pets", "folder"}) {
        SCOPED_TRACE(kind);
        expectSingleError(with("dataset", "kind", kind), "dataset.root",
                          std::string("required for kind \"") + kind + "\"");
    }
    EXPECT_NO_THROW(parseExperiment(with("dataset", "root", "/somewhere")));
}

TEST(Experiment, VersionMustBeOne) {
    json doc = minimal();
    doc.erase("version");
    expectSingleError(doc, "version", "required");
    expectSingleError(with("", "version", 2), "version", "newer SegScope");
    expectSingleError(with("", "version", 0), "version", "unsupported version 0");
    expectSingleError(with("", "version", "1"), "version", "must be an integer, got \"1\"");
}

TEST(Experiment, UnknownFieldsAtEveryLevel) {
    expectSingleError(with("", "extra", 1), "extra", "unknown field; known: version, name, description, dataset");
    for (const char* section : {"dataset", "model", "transforms", "optimizer", "schedule", "training", "runtime"}) {
        SCOPED_TRACE(section);
        expectSingleError(with(section, "nonsense", 1), std::string(section) + ".nonsense", "unknown field; known: ");
    }
}

TEST(Experiment, WrongTypesAreErrors) {
    expectSingleError(with("training", "batch_size", "8"), "training.batch_size", "must be an integer >= 1, got \"8\"");
    expectSingleError(with("training", "batch_size", 8.5), "training.batch_size", "must be an integer");
    expectSingleError(with("training", "channels_last", 1), "training.channels_last", "must be true or false, got 1");
    expectSingleError(with("optimizer", "lr", "fast"), "optimizer.lr", "must be a number");
    expectSingleError(with("", "name", 7), "name", "must be a string, got 7");
    expectSingleError(with("dataset", "root", 7), "dataset.root", "must be a non-empty string");
    expectSingleError(with("model", "pretrained", false), "model.pretrained", "string");
    expectSingleError(with("optimizer", "betas", "0.9,0.99"), "optimizer.betas", "array of 2 numbers");
    json doc = minimal();
    doc["runtime"] = 5;
    expectSingleError(doc, "runtime", "must be an object, got 5");
    EXPECT_THROW(parseExperiment(json::array()), ExperimentError);
}

TEST(Experiment, CollectsAllErrorsNotJustTheFirst) {
    json doc = minimal();
    doc["training"]["batch_size"] = 0;
    doc["optimizer"]["type"] = "rmsprop";
    doc["dataset"]["rooot"] = "/x";
    doc["runtime"]["workers"] = -1;
    const auto errors = errorsOf(doc);
    ASSERT_EQ(errors.size(), 4u);
    std::vector<std::string> paths;
    for (const auto& e : errors) paths.push_back(e.path);
    for (const char* p : {"training.batch_size", "optimizer.type", "dataset.rooot", "runtime.workers"})
        EXPECT_NE(std::find(paths.begin(), paths.end(), p), paths.end()) << p;
}

TEST(Experiment, OverridesAreTypedByField) {
    Experiment e = parseExperiment(minimal());
    applyOverride(e, "training.batch_size=4");
    EXPECT_EQ(e.training.batchSize, 4);
    applyOverride(e, "optimizer.lr=3e-4");
    EXPECT_DOUBLE_EQ(e.optimizer.learningRate, 3e-4);
    applyOverride(e, "transforms.horizontal_flip=true");
    EXPECT_TRUE(e.transforms.horizontalFlip);
    applyOverride(e, "optimizer.type=sgd");
    EXPECT_EQ(e.optimizer.type, OptimizerType::Sgd);
    applyOverride(e, "name=my run");
    EXPECT_EQ(e.name, "my run");
    applyOverride(e, "optimizer.betas=[0.8, 0.9]");
    EXPECT_DOUBLE_EQ(e.optimizer.beta1, 0.8);
    applyOverride(e, "model.classes=3");
    applyOverride(e, "training.class_weights=1,2,0.5");
    ASSERT_TRUE(e.training.classWeights.has_value());
    EXPECT_EQ(*e.training.classWeights, (std::vector<double>{1, 2, 0.5}));
    applyOverride(e, "training.class_weights=null");
    EXPECT_FALSE(e.training.classWeights.has_value());
    applyOverride(e, "model.classes=null");
    EXPECT_FALSE(e.model.classes.has_value());
    // epochs and iterations replace each other.
    applyOverride(e, "training.iterations=300");
    EXPECT_EQ(e.training.iterations, 300);
    EXPECT_FALSE(e.training.epochs.has_value());
    applyOverride(e, "training.epochs=3");
    EXPECT_EQ(e.training.epochs, 3);
    EXPECT_FALSE(e.training.iterations.has_value());
    applyOverride(e, "dataset.root=/data/voc");
    applyOverride(e, "dataset.kind=voc");
    EXPECT_EQ(e.dataset.kind, DataSource::Voc);
}

TEST(Experiment, BadOverridesNameTheField) {
    Experiment e = parseExperiment(minimal());
    const Experiment before = e;
    auto errorOf = [&e](const std::string& assignment) -> FieldError {
        try {
            applyOverride(e, assignment);
        } catch (const ExperimentError& error) {
            EXPECT_EQ(error.errors().size(), 1u);
            return error.errors().front();
        }
        ADD_FAILURE() << assignment << " was accepted";
        return {};
    };
    FieldError err = errorOf("training.batch_size=abc");
    EXPECT_EQ(err.path, "training.batch_size");
    EXPECT_EQ(err.message, "must be an integer >= 1, got \"abc\"");
    err = errorOf("training.batch_size=0");
    EXPECT_EQ(err.message, "must be an integer >= 1, got 0");
    err = errorOf("training.batchsize=4");
    EXPECT_EQ(err.path, "training.batchsize");
    EXPECT_NE(err.message.find("unknown field; known: epochs, iterations, batch_size"), std::string::npos);
    err = errorOf("bogus.field=1");
    EXPECT_NE(err.message.find("unknown field"), std::string::npos);
    err = errorOf("transforms.photometric=maybe");
    EXPECT_EQ(err.message, "must be true or false, got \"maybe\"");
    err = errorOf("training.batch_size");
    EXPECT_NE(err.message.find("section.field=value"), std::string::npos);
    err = errorOf("training.batch_size=null");  // not optional
    EXPECT_EQ(err.path, "training.batch_size");
    err = errorOf("version=2");
    EXPECT_EQ(err.path, "version");
    // A failed override leaves the experiment unchanged.
    EXPECT_TRUE(e == before);
}

TEST(Experiment, ConvertsToPipelineSettings) {
    Experiment e = everythingSet();
    DatasetSpec spec = datasetSpec(e, e.dataset.valSplit);
    EXPECT_EQ(spec.kind, DatasetKind::Pets);
    EXPECT_EQ(spec.root, "/data/pets");
    EXPECT_EQ(spec.split, "test");
    EXPECT_EQ(spec.petsMode, PetsMode::BinaryBorderForeground);
    EXPECT_DOUBLE_EQ(spec.validationFraction, 0.2);
    EXPECT_EQ(spec.validationSeed, 18446744073709551615ull);

    const TransformConfig t = transformConfig(e);
    EXPECT_EQ(t.height, 320);
    EXPECT_EQ(t.width, 480);
    EXPECT_EQ(t.mode, ResizeMode::RandomScaleCrop);
    EXPECT_EQ(t.baseShortSide, 512);
    EXPECT_DOUBLE_EQ(t.scaleMin, 0.75);
    EXPECT_TRUE(t.horizontalFlip);
    EXPECT_TRUE(t.photometric);
    EXPECT_EQ(t.normalization, Normalization::Half);
    EXPECT_TRUE(t.voidToBackground);

    const LoaderOptions train = loaderOptions(e, true);
    EXPECT_EQ(train.batchSize, 4u);
    EXPECT_TRUE(train.shuffle);
    EXPECT_TRUE(train.training);
    EXPECT_EQ(train.workers, 5);
    EXPECT_EQ(train.seed, 1234u);
    const LoaderOptions eval = loaderOptions(e, false);
    EXPECT_FALSE(eval.shuffle);
    EXPECT_FALSE(eval.training);
    EXPECT_FALSE(eval.dropLast);

    Experiment demo = parseExperiment(minimal());
    EXPECT_EQ(datasetSpec(demo, "train").kind, DatasetKind::Voc);
    EXPECT_EQ(datasetSpec(demo, "train").root, defaultDemoRoot());
    demo.dataset.root = "/tmp/elsewhere";
    EXPECT_EQ(datasetSpec(demo, "train").root, "/tmp/elsewhere");
}

TEST(Experiment, DemoDatasetIsWrittenOnDemand) {
    segscope::test::TempDir dir;
    Experiment e = parseExperiment(minimal());
    e.dataset.root = dir / "demo";
    prepareDemoDataset(e);
    const auto dataset = Dataset::open(datasetSpec(e, "val"));
    EXPECT_GT(dataset->size(), 0u);
    EXPECT_EQ(dataset->numClasses(), 5);
}

TEST(Experiment, EveryPresetParses) {
    const std::filesystem::path presets = segscope::test::sourceDir() / "resources" / "presets";
    int count = 0;
    for (const auto& entry : std::filesystem::directory_iterator(presets)) {
        if (entry.path().extension() != ".json") continue;
        SCOPED_TRACE(entry.path().string());
        EXPECT_NO_THROW({
            try {
                loadExperiment(entry.path());
            } catch (const std::exception& e) {
                ADD_FAILURE() << e.what();
                throw;
            }
        });
        ++count;
    }
    EXPECT_GE(count, 1);
    const Experiment demo = loadExperiment(presets / "demo.json");
    EXPECT_EQ(demo.dataset.kind, DataSource::Demo);
    EXPECT_EQ(demo.model.id, "segformer-b0");
    EXPECT_EQ(demo.training.batchSize, 8);
    EXPECT_EQ(demo.transforms.height, 128);
    EXPECT_EQ(demo.transforms.width, 128);
    EXPECT_EQ(demo.optimizer.type, OptimizerType::AdamW);
    EXPECT_DOUBLE_EQ(demo.optimizer.learningRate, 6e-4);
    EXPECT_EQ(demo.schedule.type, ScheduleType::Poly);
    EXPECT_EQ(demo.training.epochs, 8);
    EXPECT_EQ(demo.runtime.workers, 2);
}

TEST(Experiment, DocumentedExampleParses) {
    std::ifstream in(segscope::test::sourceDir() / "docs" / "experiment-format.md");
    ASSERT_TRUE(in.good());
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const auto start = text.find("```json\n");
    ASSERT_NE(start, std::string::npos);
    const auto end = text.find("```", start + 8);
    const Experiment e = parseExperiment(json::parse(text.substr(start + 8, end - start - 8)));
    EXPECT_EQ(e.model.id, "deeplabv3-resnet50");
    EXPECT_EQ(e.training.loss, LossType::CrossEntropyDice);
    // The documented example sets every field, so it round-trips to itself.
    EXPECT_EQ(toJson(e), json::parse(text.substr(start + 8, end - start - 8)));
}
