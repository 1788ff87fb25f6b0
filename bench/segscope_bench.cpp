// segscope-bench: the SegScope side of bench/run. Each command measures one thing with the core's
// own parts and prints one JSON object on stdout; bench/run runs each command in its own process
// (so peak resident memory belongs to that measurement alone) and compares it with the PyTorch
// side (bench/pytorch_side.py), which takes the same arguments.
//
//   segscope-bench train     --model ID --weights FILE --size S --batch B [--device cpu|cuda]
//   segscope-bench infer     --model ID --weights FILE --size S --batch B [--device cpu|cuda]
//   segscope-bench data      --root DIR --size S --batch B --workers W
//   segscope-bench erf       --model ID --weights FILE --size S --images N
//   segscope-bench matmul    --n N
//   segscope-bench make-data --root DIR --images N
// Common: --threads T (intra-op threads, 0: all cores), --warmup W, --reps R, --classes K,
// --turns 1 (train, infer, data: wait for a line on stdin before each repetition; see waitTurn),
// --profile FILE (train, infer: one more repetition under the profiler, written as a chrome trace).
//
// Every timed figure is a list of per-repetition seconds after the warm-up; bench/run takes
// medians. Nothing here skips work the PyTorch side does: same weights, shapes, optimiser,
// loss, threads and warm-up.
#include "segscope/core/analysis/erf.h"
#include "segscope/core/data/dataset.h"
#include "segscope/core/data/demo_data.h"
#include "segscope/core/data/loader.h"
#include "segscope/core/error.h"
#include "segscope/core/experiment.h"
#include "segscope/core/models/registry.h"
#include "segscope/core/models/weights.h"
#include "segscope/core/runtime.h"
#include "segscope/core/training/training_parts.h"

#include <ATen/Context.h>
#include <ATen/autocast_mode.h>
#include <c10/core/InferenceMode.h>
#include <torch/csrc/autograd/profiler_legacy.h>
#include <torch/cuda.h>
#include <torch/torch.h>
#include <nlohmann/json.hpp>

#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <string>
#include <thread>
#include <vector>

namespace core = segscope::core;
using Clock = std::chrono::steady_clock;
using nlohmann::json;

namespace {

struct Args {
    std::string command;
    std::map<std::string, std::string> values;

    std::string text(const std::string& key, const std::string& fallback = {}) const {
        const auto it = values.find(key);
        if (it != values.end()) return it->second;
        if (fallback.empty()) throw core::Error("missing --" + key);
        return fallback;
    }
    int integer(const std::string& key, int fallback) const {
        const auto it = values.find(key);
        return it == values.end() ? fallback : std::stoi(it->second);
    }
};

Args parse(int argc, char** argv) {
    if (argc < 2) throw core::Error("usage: segscope-bench train|infer|data|erf|matmul|make-data [--key value]...");
    Args args;
    args.command = argv[1];
    for (int i = 2; i < argc; ++i) {
        const std::string key = argv[i];
        if (key.rfind("--", 0) != 0 || i + 1 >= argc) throw core::Error("expected --key value, got " + key);
        args.values[key.substr(2)] = argv[++i];
    }
    return args;
}

// Peak resident set of this process (VmHWM), in bytes.
std::int64_t peakResidentBytes() {
    std::ifstream status("/proc/self/status");
    std::string line;
    while (std::getline(status, line))
        if (line.rfind("VmHWM:", 0) == 0) return std::stoll(line.substr(6)) * 1024;
    return 0;
}

// With --turns 1, bench/run runs both sides at once and lets them take turns: before each
// repetition (warm-up included) this process prints "turn" and waits for a line on stdin, so the
// two sides' repetitions interleave and share whatever load the machine has at the time.
bool takeTurns = false;
void waitTurn() {
    if (!takeTurns) return;
    std::cout << "turn" << std::endl;
    std::string line;
    if (!std::getline(std::cin, line)) throw core::Error("--turns: stdin closed");
}

// CPU time of the whole process (all threads, user + system), in seconds: with passive OpenMP
// waiting it is the work done, and far less sensitive than wall time to other load.
double cpuSeconds() {
    rusage usage{};
    getrusage(RUSAGE_SELF, &usage);
    return double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
           1e-6 * double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec);
}

double secondsSince(Clock::time_point start) {
    return std::chrono::duration<double>(Clock::now() - start).count();
}

void synchronize(const torch::Device& device) {
    if (device.is_cuda()) torch::cuda::synchronize(device.index());
}

torch::Device benchDevice(const Args& args) {
    return core::resolveDevice(args.text("device", "cpu"));
}

std::shared_ptr<core::SegmentationModel> loadModel(const Args& args, const torch::Device& device) {
    auto model = core::createModel(args.text("model"), args.integer("classes", 21));
    core::LoadOptions options;
    options.strict = true;
    core::loadStateDict(*model, core::readWeightsFile(args.text("weights")), options);
    model->to(device);
    return model;
}

// The inputs both sides use: seeded with LibTorch's CPU generator, which the Python side shares.
std::pair<torch::Tensor, torch::Tensor> syntheticBatch(int batch, int size, int classes) {
    torch::manual_seed(0);
    torch::Tensor images = torch::randn({batch, 3, size, size});
    torch::Tensor labels = torch::randint(0, classes, {batch, size, size}, torch::kLong);
    return {images, labels};
}

// cudnn benchmark and channels_last convolution weights, as the trainer does on CUDA.
void useCudaFastPath(core::SegmentationModel& model) {
    at::globalContext().setBenchmarkCuDNN(true);
    for (auto& p : model.parameters())
        if (p.dim() == 4) p.set_data(p.data().contiguous(at::MemoryFormat::ChannelsLast));
}

json train(const Args& args) {
    const torch::Device device = benchDevice(args);
    const bool cuda = device.is_cuda();
    const int size = args.integer("size", 256), batch = args.integer("batch", 8);
    const int classes = args.integer("classes", 21);
    auto model = loadModel(args, device);
    model->train();
    // On CUDA, the trainer's fast path: cudnn benchmark, channels_last weights and inputs, fp16
    // autocast with a gradient scaler.
    if (cuda) useCudaFastPath(*model);
    core::ExperimentOptimizer optimizerConfig;  // AdamW, lr 1e-4, weight decay 0.01
    core::OptimizerSetup optimizer = core::makeOptimizer(*model, optimizerConfig);
    core::SegmentationLoss loss(core::LossType::CrossEntropy, classes, std::nullopt, 1.0);
    core::GradScaler scaler(cuda);

    auto [images, labels] = syntheticBatch(batch, size, classes);
    images = images.to(device);
    labels = labels.to(device);
    if (cuda) images = images.contiguous(at::MemoryFormat::ChannelsLast);

    auto step = [&] {
        torch::Tensor value;
        if (cuda) {
            at::autocast::set_autocast_enabled(at::kCUDA, true);
            at::autocast::set_autocast_dtype(at::kCUDA, at::kHalf);
        }
        value = loss(model->forward(images), labels);
        if (cuda) {
            at::autocast::set_autocast_enabled(at::kCUDA, false);
            at::autocast::clear_cache();
        }
        scaler.scale(value).backward();
        scaler.step(*optimizer.optimizer);
        scaler.update();
        optimizer.optimizer->zero_grad(true);
        return value;
    };
    json times = json::array(), cpuTimes = json::array();
    double lastLoss = 0;
    const int warmup = args.integer("warmup", 1), reps = args.integer("reps", 5);
    for (int i = 0; i < warmup + reps; ++i) {
        waitTurn();
        synchronize(device);
        const auto start = Clock::now();
        const double cpuStart = cpuSeconds();
        const torch::Tensor value = step();
        synchronize(device);
        const double seconds = secondsSince(start), cpu = cpuSeconds() - cpuStart;
        lastLoss = value.item<double>();  // after the clock: the sync is not the step's
        if (i >= warmup) {
            times.push_back(seconds);
            cpuTimes.push_back(cpu);
        }
    }
    if (args.values.count("profile")) {
        // One more step under LibTorch's profiler (a chrome trace), for bench/compare_profiles.py.
        torch::autograd::profiler::RecordProfile profile(args.text("profile"));
        step();
        synchronize(device);
    }
    return {
        {"seconds_per_step", times}, {"cpu_seconds", cpuTimes}, {"images_per_step", batch}, {"last_loss", lastLoss}};
}

json infer(const Args& args) {
    const torch::Device device = benchDevice(args);
    const bool cuda = device.is_cuda();
    const int size = args.integer("size", 512), batch = args.integer("batch", 1);
    auto model = loadModel(args, device);
    model->eval();
    if (cuda) useCudaFastPath(*model);
    torch::Tensor images = syntheticBatch(batch, size, 1).first.to(device);
    if (cuda) images = images.contiguous(at::MemoryFormat::ChannelsLast);
    // What core/src/analysis/inference.cpp runs per batch: eval mode under InferenceMode.
    c10::InferenceMode inferenceMode;
    json times = json::array(), cpuTimes = json::array();
    double checksum = 0;
    const int warmup = args.integer("warmup", 1), reps = args.integer("reps", 5);
    for (int i = 0; i < warmup + reps; ++i) {
        waitTurn();
        synchronize(device);
        const auto start = Clock::now();
        const double cpuStart = cpuSeconds();
        torch::Tensor logits;
        if (cuda) {
            at::autocast::set_autocast_enabled(at::kCUDA, true);
            at::autocast::set_autocast_dtype(at::kCUDA, at::kHalf);
        }
        logits = model->forward(images);
        if (cuda) {
            at::autocast::set_autocast_enabled(at::kCUDA, false);
            at::autocast::clear_cache();
        }
        synchronize(device);
        const double seconds = secondsSince(start), cpu = cpuSeconds() - cpuStart;
        checksum = logits.to(torch::kFloat32).abs().mean().item<double>();
        if (i >= warmup) {
            times.push_back(seconds);
            cpuTimes.push_back(cpu);
        }
    }
    if (args.values.count("profile")) {
        torch::autograd::profiler::RecordProfile profile(args.text("profile"));
        model->forward(images);
        synchronize(device);
    }
    return {{"seconds_per_batch", times},
            {"cpu_seconds", cpuTimes},
            {"images_per_batch", batch},
            {"logits_abs_mean", checksum}};
}

json data(const Args& args) {
    core::DatasetSpec spec;
    spec.kind = core::DatasetKind::Voc;
    spec.root = args.text("root");
    spec.split = "train";
    auto dataset = core::Dataset::open(spec);
    core::TransformConfig transform;
    transform.height = transform.width = args.integer("size", 256);
    transform.mode = core::ResizeMode::RandomScaleCrop;
    transform.scaleMin = 0.5;
    transform.scaleMax = 2.0;
    transform.horizontalFlip = true;
    transform.normalization = core::Normalization::ImageNet;
    core::LoaderOptions options;
    options.batchSize = std::size_t(args.integer("batch", 8));
    options.workers = args.integer("workers", 2);
    options.shuffle = true;
    options.training = true;
    core::BatchLoader loader(dataset, transform, options);
    json times = json::array();
    std::int64_t imagesPerEpoch = 0;
    double checksum = 0;
    const int warmup = args.integer("warmup", 1), reps = args.integer("reps", 5);
    for (int epoch = 0; epoch < warmup + reps; ++epoch) {
        waitTurn();
        const auto start = Clock::now();
        loader.startEpoch(std::uint64_t(epoch));
        std::int64_t images = 0;
        while (auto batch = loader.next()) {
            images += batch->images.size(0);
            checksum += batch->images[0][0][0][0].item<double>();  // touch the batch, as a consumer would
        }
        const double seconds = secondsSince(start);
        imagesPerEpoch = images;
        if (epoch >= warmup) times.push_back(seconds);
    }
    return {{"seconds_per_epoch", times}, {"images_per_epoch", imagesPerEpoch}, {"checksum", checksum}};
}

json erf(const Args& args) {
    const torch::Device device = benchDevice(args);
    auto model = loadModel(args, device);
    const int size = args.integer("size", 256), images = args.integer("images", 4);
    const torch::Tensor inputs = syntheticBatch(images, size, 1).first.to(device);
    json stages = json::object();
    const int warmup = args.integer("warmup", 1), reps = args.integer("reps", 3);
    // One stage at a time (its own forward and gradient), then all stages at once (one forward
    // serves every stage), as the ERF tab runs it.
    std::vector<std::string> names = model->stageNames();
    names.push_back("all");
    for (const auto& name : names) {
        core::ErfOptions options;
        options.batchSize = images;
        if (name != "all") options.stages = {name};
        json times = json::array();
        for (int i = 0; i < warmup + reps; ++i) {
            synchronize(device);
            const auto start = Clock::now();
            core::computeErf(*model, inputs, options);
            synchronize(device);
            const double seconds = secondsSince(start);
            if (i >= warmup) times.push_back(seconds / images);
        }
        stages[name] = times;
    }
    return {{"seconds_per_image", stages}, {"images", images}, {"stage_count", names.size() - 1}};
}

json matmul(const Args& args) {
    const torch::Device device = benchDevice(args);
    const std::int64_t n = args.integer("n", 2048);
    torch::manual_seed(0);
    const torch::Tensor a = torch::randn({n, n}).to(device), b = torch::randn({n, n}).to(device);
    torch::Tensor c = torch::empty({n, n}, a.options());
    json times = json::array();
    const int warmup = args.integer("warmup", 1), reps = args.integer("reps", 5);
    for (int i = 0; i < warmup + reps; ++i) {
        synchronize(device);
        const auto start = Clock::now();
        torch::mm_out(c, a, b);
        synchronize(device);
        if (i >= warmup) times.push_back(secondsSince(start));
    }
    return {{"seconds", times}, {"flops", 2.0 * double(n) * double(n) * double(n)}, {"n", n}};
}

json makeData(const Args& args) {
    core::DemoOptions options;
    options.images = args.integer("images", 64);
    options.width = 500;
    options.height = 375;
    options.validationFraction = 0.0;
    const core::DemoSummary summary = core::writeDemoDataset(args.text("root"), options);
    return {{"train_images", summary.trainImages}, {"val_images", summary.valImages}};
}

}  // namespace

int main(int argc, char** argv) {
    try {
        const Args args = parse(argc, argv);
        core::setIntraOpThreads(args.integer("threads", 0));
        takeTurns = args.integer("turns", 0) != 0;
        const auto baseline = peakResidentBytes();
        json result;
        if (args.command == "train")
            result = train(args);
        else if (args.command == "infer")
            result = infer(args);
        else if (args.command == "data")
            result = data(args);
        else if (args.command == "erf")
            result = erf(args);
        else if (args.command == "matmul")
            result = matmul(args);
        else if (args.command == "make-data")
            result = makeData(args);
        else
            throw core::Error("unknown command " + args.command);
        result["side"] = "segscope";
        result["command"] = args.command;
        result["threads"] = at::get_num_threads();
        result["torch"] = core::runtimeInfo().torchVersion;
        result["startup_rss_bytes"] = baseline;
        result["peak_rss_bytes"] = peakResidentBytes();
        std::cout << result.dump() << std::endl;
        return 0;
    } catch (const std::exception& e) {
        std::cerr << "segscope-bench: " << e.what() << std::endl;
        return 1;
    }
}
