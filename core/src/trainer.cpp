#include "segscope/core/trainer.h"

#include "autocast_scope.h"

#include "segscope/core/dataset_check.h"
#include "segscope/core/erf.h"
#include "segscope/core/inference.h"
#include "segscope/core/loader.h"
#include "segscope/core/models/pretrained.h"
#include "segscope/core/models/registry.h"
#include "segscope/core/training_parts.h"
#include "segscope/core/weights.h"

#include <ATen/Context.h>
#include <ATen/Parallel.h>
#include <torch/serialize.h>
#include <torch/torch.h>

#include <c10/util/Exception.h>

#include <chrono>
#include <cmath>
#include <fstream>
#include <sstream>
#include <unistd.h>

namespace segscope::core {
namespace fs = std::filesystem;

const char* trainingOutcomeName(TrainingOutcome outcome) {
    switch (outcome) {
    case TrainingOutcome::Finished: return "finished";
    case TrainingOutcome::Failed: return "failed";
    case TrainingOutcome::Cancelled: return "cancelled";
    }
    return "failed";
}

namespace {

using Clock = std::chrono::steady_clock;

std::optional<std::int64_t> residentBytes() {
    std::ifstream statm("/proc/self/statm");
    std::int64_t pages = 0, resident = 0;
    if (!(statm >> pages >> resident)) return std::nullopt;
    return resident * sysconf(_SC_PAGESIZE);
}

class Cancelled : public std::exception {};

bool isOutOfMemory(const std::exception& e) {
    if (dynamic_cast<const c10::OutOfMemoryError*>(&e)) return true;
    const std::string what = e.what();
    return what.find("out of memory") != std::string::npos;
}

std::string formatSeconds(double s) {
    std::ostringstream out;
    out.precision(1);
    out << std::fixed << s << " s";
    return out.str();
}

} // namespace

// One training attempt's state: everything that a resume restores lives here.
class Trainer::Session {
public:
    Session(Trainer& trainer) : trainer_(trainer), e_(trainer.experiment_), options_(trainer.options_) {}

    TrainingResult execute();

private:
    void log(const std::string& line) {
        if (trainer_.observer_) trainer_.observer_->onLog(line);
    }
    void setUp();
    void buildLoaders();
    void loadPretrained();
    void restore(const fs::path& statePath);
    void trainLoop();
    void trainStep(const Batch& batch, bool lastInAccumulation);
    void flushLosses(bool force);
    void validate();
    void checkpoint(bool best);
    void recordErf();
    void checkControl() {
        if (trainer_.waitWhilePaused()) throw Cancelled();
    }
    double wallSeconds() const {
        return wallOffset_ + std::chrono::duration<double>(Clock::now() - started_).count();
    }
    bool finished() const { return step_ >= totalSteps_; }

    Trainer& trainer_;
    const Experiment& e_;
    const TrainerOptions& options_;
    torch::Device device_{torch::kCPU};
    bool cuda_ = false;
    std::shared_ptr<const Dataset> trainSet_, valSet_;
    std::unique_ptr<BatchLoader> trainLoader_, valLoader_;
    std::shared_ptr<SegmentationModel> model_;
    std::vector<torch::Tensor> parameters_;
    OptimizerSetup optimizer_;
    std::unique_ptr<LearningRateSchedule> schedule_;
    std::unique_ptr<SegmentationLoss> loss_;
    std::unique_ptr<GradScaler> scaler_;
    std::vector<std::string> classNames_;
    int classes_ = 0;
    int batchSize_ = 0;
    std::int64_t stepsPerEpoch_ = 0, totalSteps_ = 0;
    int totalEpochs_ = 0;

    // Progress (restored on resume).
    std::int64_t step_ = 0;
    int epoch_ = 0;
    std::int64_t batchInEpoch_ = 0;  // batches consumed in the current epoch
    std::optional<double> bestMiou_, lastMiou_;
    int bestEpoch_ = -1;
    double wallOffset_ = 0.0;
    std::int64_t resumedAt_ = 0;

    Clock::time_point started_ = Clock::now();
    Clock::time_point lastStepTime_ = Clock::now();
    double imagesPerSecond_ = 0.0;
    std::int64_t imagesSeen_ = 0;
    int accumulated_ = 0;
    struct PendingLoss {
        torch::Tensor loss;
        StepEvent event;
    };
    std::vector<PendingLoss> pending_;
    std::vector<std::pair<fs::path, fs::path>> kept_;
    std::pair<fs::path, fs::path> bestFiles_;
};

void Trainer::Session::setUp() {
    device_ = resolveDevice(e_.runtime.device);
    cuda_ = device_.is_cuda();
    at::set_num_threads(e_.runtime.threads > 0 ? e_.runtime.threads
                                               : int(std::max(1u, std::thread::hardware_concurrency())));
    torch::manual_seed(e_.runtime.seed);
    if (e_.runtime.deterministic) at::globalContext().setDeterministicAlgorithms(true, true);
    if (cuda_ && !e_.runtime.deterministic) at::globalContext().setBenchmarkCuDNN(true);

    prepareDemoDataset(e_);
    trainSet_ = Dataset::open(datasetSpec(e_, e_.dataset.trainSplit));
    valSet_ = Dataset::open(datasetSpec(e_, e_.dataset.valSplit));
    if (options_.checkDatasets) {
        for (const auto& dataset : {trainSet_, valSet_}) {
            log("checking " + dataset->spec().split + " split (" + std::to_string(dataset->size()) + " images)");
            CheckOptions checkOptions;
            checkOptions.cancel = &trainer_.cancelled_;
            const DatasetReport report = checkDataset(*dataset, checkOptions);
            if (report.cancelled) throw Cancelled();
            if (!report.ok())
                throw Error("the " + dataset->spec().split + " split has problems; fix them or choose another split:\n" +
                            report.toText(20));
        }
    }
    classes_ = e_.model.classes.value_or(trainSet_->numClasses());
    if (classes_ < trainSet_->numClasses())
        throw Error("model.classes: " + std::to_string(classes_) + " is fewer than the dataset's " +
                    std::to_string(trainSet_->numClasses()) + " classes");
    for (const auto& c : trainSet_->classes()) classNames_.push_back(c.name);
    for (int c = int(classNames_.size()); c < classes_; ++c) classNames_.push_back("class" + std::to_string(c));

    model_ = createModel(e_.model.id, classes_);
    loadPretrained();
    model_->to(device_);
    if (cuda_ && e_.training.channelsLast)
        for (auto& p : model_->parameters())
            if (p.dim() == 4) p.set_data(p.data().contiguous(at::MemoryFormat::ChannelsLast));
    for (const auto& p : model_->parameters())
        if (p.requires_grad()) parameters_.push_back(p);

    batchSize_ = e_.training.batchSize;
    buildLoaders();
    optimizer_ = makeOptimizer(*model_, e_.optimizer);
    loss_ = std::make_unique<SegmentationLoss>(e_.training.loss, classes_, e_.training.classWeights,
                                               e_.training.diceWeight);
    scaler_ = std::make_unique<GradScaler>(cuda_ && e_.training.amp == AmpMode::Fp16);
    if (!cuda_ && e_.training.amp != AmpMode::Off) log("amp is CUDA only; training in float32 on the CPU");
}

void Trainer::Session::buildLoaders() {
    trainLoader_ = std::make_unique<BatchLoader>(trainSet_, transformConfig(e_), [&] {
        LoaderOptions o = loaderOptions(e_, true);
        o.batchSize = std::size_t(batchSize_);
        return o;
    }());
    valLoader_ = std::make_unique<BatchLoader>(valSet_, transformConfig(e_), [&] {
        LoaderOptions o = loaderOptions(e_, false);
        o.batchSize = std::size_t(batchSize_);
        return o;
    }());
    const std::int64_t batches = std::int64_t(trainLoader_->batchesPerEpoch());
    if (batches == 0)
        throw Error("training.batch_size: " + std::to_string(batchSize_) + " is larger than the " +
                    std::to_string(trainSet_->size()) + " training images (the last partial batch is dropped)");
    stepsPerEpoch_ = std::max<std::int64_t>(1, batches / e_.training.gradAccumulation);
    totalSteps_ = e_.training.iterations ? std::int64_t(*e_.training.iterations)
                                         : std::int64_t(*e_.training.epochs) * stepsPerEpoch_;
    totalEpochs_ = int((totalSteps_ + stepsPerEpoch_ - 1) / stepsPerEpoch_);
    schedule_ = std::make_unique<LearningRateSchedule>(e_.schedule, e_.optimizer.learningRate, totalSteps_,
                                                       stepsPerEpoch_);
}

void Trainer::Session::loadPretrained() {
    if (!e_.model.pretrained) return;
    const fs::path path = *e_.model.pretrained;
    TensorMap tensors = readWeightsFile(path);
    tensors = mapPretrained(e_.model.id, tensors);
    LoadOptions loadOptions;
    const LoadReport report = loadStateDict(*model_, tensors, loadOptions);
    log("pretrained weights " + path.string() + ": " + report.summary());
    if (report.loaded.empty()) throw FileError(path.string(), "no tensor matches model " + e_.model.id);
    if (e_.model.pretrainedStrict && !report.unexpected.empty())
        throw FileError(path.string(), "strict load failed: " + report.summary());
}

TrainingResult Trainer::Session::execute() {
    TrainingResult result;
    TrainingOutcome outcome = TrainingOutcome::Failed;
    std::string message;
    try {
        setUp();
        if (options_.resumeFrom) restore(*options_.resumeFrom);
        if (trainer_.observer_) {
            TrainingStart start;
            start.modelId = e_.model.id;
            start.parameters = countParameters(*model_);
            start.device = device_.str();
            start.classNames = classNames_;
            start.trainImages = trainSet_->size();
            start.valImages = valSet_->size();
            start.stepsPerEpoch = stepsPerEpoch_;
            start.totalSteps = totalSteps_;
            start.totalEpochs = totalEpochs_;
            start.resumedAtStep = resumedAt_;
            start.batchSize = batchSize_;
            trainer_.observer_->onStarted(start);
        }
        trainLoop();
        outcome = TrainingOutcome::Finished;
        message = std::to_string(step_) + " steps in " + formatSeconds(wallSeconds());
    } catch (const Cancelled&) {
        outcome = TrainingOutcome::Cancelled;
        message = "cancelled at step " + std::to_string(step_);
    } catch (const std::exception& e) {
        outcome = TrainingOutcome::Failed;
        message = e.what();
        if (isOutOfMemory(e))
            message = "out of memory at batch size " + std::to_string(batchSize_) + " on " + device_.str() +
                      ": lower training.batch_size, the input size, or use amp; (" + e.what() + ")";
    }
    result.outcome = outcome;
    result.message = message;
    result.steps = step_;
    result.bestMiou = bestMiou_;
    result.bestEpoch = bestEpoch_;
    result.finalMiou = lastMiou_;
    result.seconds = wallSeconds();
    result.imagesPerSecond = imagesPerSecond_;
    result.finalBatchSize = batchSize_;
    if (trainer_.observer_) trainer_.observer_->onFinished(outcome, message);
    return result;
}

void Trainer::Session::trainLoop() {
    model_->train();
    // The untrained model's ERF is the first frame of the ERF-over-training series.
    if (step_ == 0 && e_.training.erfEveryEpochs > 0) recordErf();
    started_ = lastStepTime_ = Clock::now();
    while (!finished()) {
        trainLoader_->startEpoch(std::uint64_t(epoch_), std::size_t(batchInEpoch_));
        bool epochDone = false;
        while (!finished()) {
            checkControl();
            std::optional<Batch> batch;
            batch = trainLoader_->next();
            if (!batch) {
                epochDone = true;
                break;
            }
            ++batchInEpoch_;
            ++accumulated_;
            const bool stepNow = accumulated_ >= e_.training.gradAccumulation;
            try {
                if (stepNow && options_.beforeStep) options_.beforeStep(step_ + 1);
                trainStep(*batch, stepNow);
            } catch (const std::exception& error) {
                if (!isOutOfMemory(error) || !e_.training.oomRetryHalfBatch || batchSize_ <= 1) throw;
                // Free what the failed step held, halve the batch and redo the epoch's remainder.
                optimizer_.optimizer->zero_grad(true);
                pending_.clear();
                const std::int64_t samplesDone = (batchInEpoch_ - 1) * batchSize_;
                batchSize_ /= 2;
                log("out of memory at batch size " + std::to_string(batchSize_ * 2) + "; retrying at " +
                    std::to_string(batchSize_));
                const std::int64_t done = step_;
                buildLoaders();
                step_ = done;
                batchInEpoch_ = samplesDone / batchSize_;
                accumulated_ = 0;
                trainLoader_->startEpoch(std::uint64_t(epoch_), std::size_t(batchInEpoch_));
                continue;
            }
            if (!stepNow) continue;
            accumulated_ = 0;
            if (e_.training.valEveryUnit == ScheduleUnit::Iteration && step_ % e_.training.valEvery == 0) {
                flushLosses(true);
                validate();
            }
        }
        flushLosses(true);
        // The last step can land on the epoch's last batch before the loader reports its end.
        if (!epochDone && finished() &&
            std::int64_t(trainLoader_->batchesPerEpoch()) - batchInEpoch_ < e_.training.gradAccumulation)
            epochDone = true;
        if (epochDone) {
            ++epoch_;
            batchInEpoch_ = 0;
            accumulated_ = 0;
            const bool validateNow = e_.training.valEveryUnit == ScheduleUnit::Epoch &&
                                     (epoch_ % e_.training.valEvery == 0 || finished());
            if (validateNow) validate();
            else if (!options_.runFolder.empty() &&
                     (finished() || (e_.training.checkpointEvery > 0 && epoch_ % e_.training.checkpointEvery == 0)))
                checkpoint(false);
            if (e_.training.erfEveryEpochs > 0 && (epoch_ % e_.training.erfEveryEpochs == 0 || finished()))
                recordErf();
        }
    }
    if (e_.training.valEveryUnit == ScheduleUnit::Iteration && step_ % e_.training.valEvery != 0) validate();
}

void Trainer::Session::trainStep(const Batch& batch, bool lastInAccumulation) {
    torch::Tensor images = batch.images.to(device_, /*non_blocking=*/true);
    const torch::Tensor labels = batch.labels.to(device_, true);
    if (cuda_ && e_.training.channelsLast) images = images.contiguous(at::MemoryFormat::ChannelsLast);
    torch::Tensor loss;
    {
        AutocastScope autocast(cuda_ && e_.training.amp != AmpMode::Off,
                               e_.training.amp == AmpMode::Fp16 ? at::kHalf : at::kBFloat16);
        const torch::Tensor logits = model_->forward(images);
        loss = (*loss_)(logits, labels);
    }
    if (options_.injectNanAtStep == step_ + 1) loss = loss * std::numeric_limits<float>::quiet_NaN();
    scaler_->scale(loss / double(e_.training.gradAccumulation)).backward();
    imagesSeen_ += batch.images.size(0);
    if (!lastInAccumulation) return;

    const double rate = schedule_->learningRate(step_);
    setLearningRate(*optimizer_.optimizer, optimizer_.groupMultipliers, rate);
    if (e_.training.gradClipNorm > 0) {
        scaler_->unscale(*optimizer_.optimizer);
        clipGradientNorm(parameters_, e_.training.gradClipNorm);
    }
    scaler_->step(*optimizer_.optimizer);
    scaler_->update();
    optimizer_.optimizer->zero_grad(true);
    ++step_;

    const auto now = Clock::now();
    const double seconds = std::chrono::duration<double>(now - lastStepTime_).count();
    lastStepTime_ = now;
    const double instant = seconds > 0 ? double(imagesSeen_) / seconds : 0.0;
    imagesSeen_ = 0;
    imagesPerSecond_ = imagesPerSecond_ == 0.0 ? instant : 0.8 * imagesPerSecond_ + 0.2 * instant;

    StepEvent event;
    event.step = step_;
    event.epoch = epoch_;
    event.stepInEpoch = batchInEpoch_ / e_.training.gradAccumulation;
    event.learningRate = rate;
    event.imagesPerSecond = imagesPerSecond_;
    event.memoryBytes = cuda_ ? std::nullopt : residentBytes();
    event.wallSeconds = wallSeconds();
    pending_.push_back({loss.detach(), event});
    flushLosses(false);
}

// Losses stay on the device and are read in groups, so a CUDA step does not wait for the GPU.
void Trainer::Session::flushLosses(bool force) {
    if (pending_.empty()) return;
    const std::size_t every = cuda_ ? 10 : 1;
    if (!force && pending_.size() < every) return;
    std::vector<torch::Tensor> losses;
    for (const auto& p : pending_) losses.push_back(p.loss.to(torch::kFloat32).reshape({1}));
    const torch::Tensor values = torch::cat(losses).cpu();
    const float* data = values.data_ptr<float>();
    for (std::size_t i = 0; i < pending_.size(); ++i) {
        StepEvent event = pending_[i].event;
        event.loss = data[i];
        if (!std::isfinite(event.loss)) {
            pending_.clear();
            std::string where = kept_.empty() ? std::string("no checkpoint was written yet")
                                              : "the last good checkpoint is " + kept_.back().first.string();
            throw Error("the loss became " + std::string(std::isnan(event.loss) ? "NaN" : "infinite") + " at step " +
                        std::to_string(event.step) + " (epoch " + std::to_string(event.epoch + 1) +
                        "); training stopped, " + where +
                        ". Try a lower optimizer.lr, gradient clipping (training.grad_clip_norm) or amp off");
        }
        if (trainer_.observer_) trainer_.observer_->onStep(event);
    }
    pending_.clear();
}

void Trainer::Session::validate() {
    EvaluationOptions evaluation;
    evaluation.device = device_;
    evaluation.resolution = e_.training.evalResolution;
    evaluation.voidToBackground = e_.dataset.voidToBackground;
    evaluation.classNames = classNames_;
    evaluation.loss = loss_.get();
    evaluation.amp = e_.training.amp;
    evaluation.channelsLast = e_.training.channelsLast;
    evaluation.shouldStop = [this] { return trainer_.waitWhilePaused(); };
    Evaluation scored = evaluate(*model_, *valLoader_, classes_, evaluation);
    if (scored.cancelled) throw Cancelled();
    ValidationEvent event;
    event.metrics = std::move(scored.metrics);
    event.valLoss = scored.meanLoss;
    event.imageIds = std::move(scored.imageIds);
    event.images = std::move(scored.images);
    event.epoch = epoch_;
    event.step = step_;
    event.wallSeconds = wallSeconds();
    lastMiou_ = event.metrics.mIoU;
    if (event.metrics.mIoU && (!bestMiou_ || *event.metrics.mIoU > *bestMiou_)) {
        bestMiou_ = event.metrics.mIoU;
        bestEpoch_ = epoch_;
        event.best = true;
    }
    std::ostringstream line;
    line.precision(4);
    line << "validation at epoch " << epoch_ << ", step " << step_ << ": mIoU "
         << (event.metrics.mIoU ? *event.metrics.mIoU : std::nan("")) << ", aAcc "
         << (event.metrics.aAcc ? *event.metrics.aAcc : std::nan(""));
    log(line.str());
    if (trainer_.observer_) trainer_.observer_->onValidation(event);
    if (!options_.runFolder.empty()) {
        const bool periodic = e_.training.checkpointEvery > 0 &&
                              (e_.training.valEveryUnit == ScheduleUnit::Epoch
                                   ? epoch_ % e_.training.checkpointEvery == 0
                                   : (step_ / e_.training.valEvery) % e_.training.checkpointEvery == 0);
        if (periodic || event.best || finished()) checkpoint(event.best);
    }
}

void Trainer::Session::recordErf() {
    if (options_.runFolder.empty()) return;
    const auto begun = Clock::now();
    ErfOptions erfOptions;
    // ERF gradients are taken in float32 without autocast; a few images at a time keeps the
    // snapshot within a training step's memory.
    erfOptions.batchSize = std::max(1, std::min(batchSize_, 4));
    const ErfResult erf = computeErf(*model_, valSet_, transformConfig(e_), e_.training.erfImages, erfOptions, {},
                                     &trainer_.cancelled_);
    if (erf.cancelled) throw Cancelled();
    const fs::path folder = options_.runFolder / "erf" / erfSnapshotName(epoch_, step_);
    saveErf(folder, erf, e_.model.id, "training, epoch " + std::to_string(epoch_) + ", step " + std::to_string(step_));
    ErfEvent event{epoch_, step_, folder, std::chrono::duration<double>(Clock::now() - begun).count()};
    std::ostringstream line;
    line.precision(3);
    line << "ERF snapshot at epoch " << epoch_ << " (" << erf.images << " images, " << event.seconds << " s): "
         << folder.string();
    log(line.str());
    if (trainer_.observer_) trainer_.observer_->onErf(event);
}

void Trainer::Session::checkpoint(bool best) {
    const fs::path folder = options_.runFolder / "checkpoints";
    std::error_code ec;
    fs::create_directories(folder, ec);
    if (ec) throw FileError(folder.string(), "cannot create checkpoint folder: " + ec.message());
    char name[64];
    std::snprintf(name, sizeof name, "epoch-%04d-step-%08lld", epoch_, static_cast<long long>(step_));
    const fs::path weights = folder / (std::string(name) + ".safetensors");
    const fs::path state = folder / (std::string(name) + ".state.pt");
    writeSafetensors(weights, stateDict(*model_),
                     {{"model", e_.model.id}, {"classes", std::to_string(classes_)}, {"format", "pt"}});

    torch::serialize::OutputArchive archive;
    archive.write("step", torch::tensor(step_, torch::kInt64));
    archive.write("epoch", torch::tensor(std::int64_t(epoch_), torch::kInt64));
    archive.write("batch_in_epoch", torch::tensor(batchInEpoch_, torch::kInt64));
    archive.write("batch_size", torch::tensor(std::int64_t(batchSize_), torch::kInt64));
    archive.write("best_miou", torch::tensor(bestMiou_.value_or(-1.0), torch::kFloat64));
    archive.write("best_epoch", torch::tensor(std::int64_t(bestEpoch_), torch::kInt64));
    archive.write("wall_seconds", torch::tensor(wallSeconds(), torch::kFloat64));
    archive.write("cpu_rng", at::detail::getDefaultCPUGenerator().get_state());
    const auto scalerState = scaler_->state();
    for (std::size_t i = 0; i < scalerState.size(); ++i) archive.write("scaler_" + std::to_string(i), scalerState[i]);
    torch::serialize::OutputArchive optimizerArchive;
    optimizer_.optimizer->save(optimizerArchive);
    archive.write("optimizer", optimizerArchive);
    const fs::path temporary = state.string() + ".tmp";
    try {
        archive.save_to(temporary.string());
    } catch (const std::exception& e) {
        throw FileError(state.string(), std::string("cannot write checkpoint state (disk full?): ") + e.what());
    }
    fs::rename(temporary, state, ec);
    if (ec) throw FileError(state.string(), "cannot write checkpoint state: " + ec.message());

    if (trainer_.observer_) trainer_.observer_->onCheckpoint({weights, state, epoch_, step_, best});
    // Keep the best and the latest few.
    if (best) {
        if (!bestFiles_.first.empty() &&
            std::find(kept_.begin(), kept_.end(), bestFiles_) == kept_.end()) {
            fs::remove(bestFiles_.first, ec);
            fs::remove(bestFiles_.second, ec);
        }
        bestFiles_ = {weights, state};
    }
    kept_.emplace_back(weights, state);
    while (int(kept_.size()) > std::max(1, options_.keepCheckpoints)) {
        if (kept_.front() != bestFiles_) {
            fs::remove(kept_.front().first, ec);
            fs::remove(kept_.front().second, ec);
        }
        kept_.erase(kept_.begin());
    }
}

void Trainer::Session::restore(const fs::path& statePath) {
    torch::serialize::InputArchive archive;
    try {
        archive.load_from(statePath.string());
    } catch (const std::exception& e) {
        throw FileError(statePath.string(), std::string("cannot read checkpoint state: ") + e.what());
    }
    std::string weightsName = statePath.string();
    weightsName = weightsName.substr(0, weightsName.size() - std::string(".state.pt").size()) + ".safetensors";
    LoadOptions strict;
    strict.strict = true;
    loadStateDict(*model_, readSafetensors(weightsName), strict);
    auto read = [&](const char* key) {
        torch::Tensor t;
        archive.read(key, t);
        return t;
    };
    step_ = read("step").item<std::int64_t>();
    epoch_ = int(read("epoch").item<std::int64_t>());
    batchInEpoch_ = read("batch_in_epoch").item<std::int64_t>();
    const int savedBatch = int(read("batch_size").item<std::int64_t>());
    if (savedBatch != batchSize_) {
        batchSize_ = savedBatch;
        buildLoaders();
    }
    const double best = read("best_miou").item<double>();
    if (best >= 0) bestMiou_ = best;
    bestEpoch_ = int(read("best_epoch").item<std::int64_t>());
    wallOffset_ = read("wall_seconds").item<double>();
    at::Generator generator = at::detail::getDefaultCPUGenerator();
    generator.set_state(read("cpu_rng"));
    std::vector<torch::Tensor> scalerState;
    for (int i = 0;; ++i) {
        torch::Tensor t;
        if (!archive.try_read("scaler_" + std::to_string(i), t)) break;
        scalerState.push_back(t);
    }
    scaler_->loadState(scalerState);
    torch::serialize::InputArchive optimizerArchive;
    archive.read("optimizer", optimizerArchive);
    optimizer_.optimizer->load(optimizerArchive);
    resumedAt_ = step_;
    kept_.emplace_back(fs::path(weightsName), statePath);
    log("resumed from " + statePath.string() + " at step " + std::to_string(step_) + ", epoch " +
        std::to_string(epoch_));
}

Trainer::Trainer(Experiment experiment, TrainerOptions options, TrainingObserver* observer)
    : experiment_(std::move(experiment)), options_(std::move(options)), observer_(observer) {}

Trainer::~Trainer() {
    cancel();
    if (thread_.joinable()) thread_.join();
}

TrainingResult Trainer::run() {
    Session session(*this);
    result_ = session.execute();
    return result_;
}

void Trainer::start() {
    if (thread_.joinable()) throw Error("this trainer was already started");
    thread_ = std::thread([this] { run(); });
}

TrainingResult Trainer::wait() {
    if (thread_.joinable()) thread_.join();
    return result_;
}

void Trainer::pause() {
    {
        std::lock_guard<std::mutex> lock(pauseMutex_);
        paused_ = true;
    }
    pauseChanged_.notify_all();
}

void Trainer::resume() {
    {
        std::lock_guard<std::mutex> lock(pauseMutex_);
        paused_ = false;
    }
    pauseChanged_.notify_all();
}

void Trainer::cancel() {
    {
        std::lock_guard<std::mutex> lock(pauseMutex_);
        cancelled_ = true;
    }
    pauseChanged_.notify_all();
}

bool Trainer::waitWhilePaused() {
    std::unique_lock<std::mutex> lock(pauseMutex_);
    if (paused_ && !cancelled_) {
        lock.unlock();
        if (observer_) observer_->onPaused(true);
        lock.lock();
        pauseChanged_.wait(lock, [this] { return !paused_ || cancelled_; });
        lock.unlock();
        if (observer_ && !cancelled_) observer_->onPaused(false);
        lock.lock();
    }
    return cancelled_;
}

} // namespace segscope::core
