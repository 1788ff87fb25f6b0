#include "segscope/core/training/trainer.h"

#include "models/autocast_scope.h"

#include "segscope/core/analysis/erf.h"
#include "segscope/core/analysis/inference.h"
#include "segscope/core/data/dataset_check.h"
#include "segscope/core/data/loader.h"
#include "segscope/core/file_output.h"
#include "segscope/core/models/pretrained.h"
#include "segscope/core/models/registry.h"
#include "segscope/core/models/weights.h"
#include "segscope/core/runtime.h"
#include "segscope/core/training/training_parts.h"

#include <ATen/Context.h>
#include <ATen/Parallel.h>
#include <torch/serialize.h>
#include <torch/torch.h>

#include <c10/util/Exception.h>

#include <unistd.h>
#include <chrono>
#include <cmath>
#include <fstream>
#include <sstream>

namespace segscope::core {
namespace fs = std::filesystem;

const char* trainingOutcomeName(TrainingOutcome outcome) {
    switch (outcome) {
        case TrainingOutcome::Finished:
            return "finished";
        case TrainingOutcome::Failed:
            return "failed";
        case TrainingOutcome::Cancelled:
            return "cancelled";
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

// An observer callback threw: the run ends Failed with this message.
class ObserverFailed : public Error {
public:
    using Error::Error;
};

std::string currentExceptionText() {
    try {
        throw;
    } catch (const std::exception& e) {
        return e.what();
    } catch (...) {
        return "an unknown exception";
    }
}

// Calls an observer callback; whatever it throws becomes ObserverFailed (never a terminate on the
// training thread).
template <typename Call>
void notifyObserver(TrainingObserver* observer, const char* event, Call&& call) {
    if (!observer) return;
    try {
        call(*observer);
    } catch (...) {
        throw ObserverFailed(std::string("recording the run failed (") + event + "): " + currentExceptionText());
    }
}

struct CheckpointName {
    int epoch = 0;
    std::int64_t step = 0;
};
// "epoch-EEEE-step-SSSSSSSS.state.pt" -> its epoch and step.
std::optional<CheckpointName> parseStateName(const std::string& name) {
    int epoch = 0;
    long long step = 0;
    int used = 0;
    if (std::sscanf(name.c_str(), "epoch-%d-step-%lld.state.pt%n", &epoch, &step, &used) != 2) return std::nullopt;
    if (std::size_t(used) != name.size()) return std::nullopt;
    return CheckpointName{epoch, std::int64_t(step)};
}

std::string checkpointStem(int epoch, std::int64_t step) {
    char name[64];
    std::snprintf(name, sizeof name, "epoch-%04d-step-%08lld", epoch, static_cast<long long>(step));
    return name;
}

// Bytes of a model's weights and of an optimiser's per-parameter state, for the free-space check
// before a checkpoint (the files add small headers).
std::uint64_t tensorBytes(const torch::Tensor& t) {
    return t.defined() ? std::uint64_t(t.numel()) * std::uint64_t(t.element_size()) : 0;
}
std::uint64_t optimizerStateBytes(torch::optim::Optimizer& optimizer) {
    std::uint64_t bytes = 0;
    for (const auto& entry : optimizer.state()) {
        const auto* state = entry.second.get();
        if (const auto* s = dynamic_cast<const torch::optim::AdamWParamState*>(state))
            bytes += tensorBytes(s->exp_avg()) + tensorBytes(s->exp_avg_sq()) + tensorBytes(s->max_exp_avg_sq());
        else if (const auto* s = dynamic_cast<const torch::optim::AdamParamState*>(state))
            bytes += tensorBytes(s->exp_avg()) + tensorBytes(s->exp_avg_sq()) + tensorBytes(s->max_exp_avg_sq());
        else if (const auto* s = dynamic_cast<const torch::optim::SGDParamState*>(state))
            bytes += tensorBytes(s->momentum_buffer());
    }
    return bytes;
}

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

}  // namespace

// One training attempt's state: everything that a resume restores lives here.
class Trainer::Session {
public:
    Session(Trainer& trainer) : trainer_(trainer), e_(trainer.experiment_), options_(trainer.options_) {}

    TrainingResult execute();

private:
    void log(const std::string& line) {
        notifyObserver(trainer_.observer_, "log", [&](TrainingObserver& o) { o.onLog(line); });
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
    void writeCheckpointState(const fs::path& state);
    void pruneCheckpoints();
    void removeCheckpointFiles(const std::pair<fs::path, fs::path>& files);
    void adoptEarlierCheckpoints(std::optional<std::int64_t> bestStep);
    void removeTemporaryFiles();
    void recordErf();
    bool erfSnapshotExists() const {
        std::error_code ec;
        return fs::exists(options_.runFolder / "erf" / erfSnapshotName(epoch_, step_) / "erf.json", ec);
    }
    // The key of the evaluation at the current step in the run store (ValidationEvent::epoch).
    int evaluationKey() const;
    void checkControl() {
        if (trainer_.waitWhilePaused()) throw Cancelled();
    }
    double wallSeconds() const { return wallOffset_ + std::chrono::duration<double>(Clock::now() - started_).count(); }
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
    std::vector<std::pair<fs::path, fs::path>> kept_;  // (weights, state), oldest first
    std::pair<fs::path, fs::path> bestFiles_;
    std::optional<std::int64_t> bestStep_;  // step of bestFiles_
    // Steps of this attempt's last validation, checkpoint and ERF snapshot (-1: none yet).
    std::int64_t lastValidationStep_ = -1, lastCheckpointStep_ = -1, lastErfStep_ = -1;
    bool deferErfEvents_ = false;
    std::vector<ErfEvent> deferredErfEvents_;
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
                throw Error("the " + dataset->spec().split +
                            " split has problems; fix them or choose another split:\n" + report.toText(20));
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
    schedule_ =
        std::make_unique<LearningRateSchedule>(e_.schedule, e_.optimizer.learningRate, totalSteps_, stepsPerEpoch_);
}

void Trainer::Session::loadPretrained() {
    if (!e_.model.pretrained) return;
    // Refuses a start that leaves encoder tensors unloaded (models/pretrained.h).
    log(loadPretrainedStart(*model_, e_.model.id, *e_.model.pretrained, e_.model.pretrainedStrict));
}

TrainingResult Trainer::Session::execute() {
    TrainingResult result;
    TrainingOutcome outcome = TrainingOutcome::Failed;
    std::string message;
    try {
        setUp();
        if (!options_.runFolder.empty()) removeTemporaryFiles();
        if (options_.resumeFrom) {
            // A kill between a checkpoint and its ERF snapshot loses the snapshot; the untrained
            // one is rebuilt here (the seed rebuilds the same model), the checkpoint's own after
            // restore().
            if (!options_.runFolder.empty() && e_.training.erfEveryEpochs > 0 && !erfSnapshotExists()) {
                log("recomputing the missing ERF snapshot of the untrained model");
                deferErfEvents_ = true;  // observers hear of it after onStarted
                recordErf();
            }
            restore(*options_.resumeFrom);
        }
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
        notifyObserver(trainer_.observer_, "start", [&](TrainingObserver& o) { o.onStarted(start); });
        deferErfEvents_ = false;
        for (const ErfEvent& event : deferredErfEvents_)
            notifyObserver(trainer_.observer_, "ERF snapshot", [&](TrainingObserver& o) { o.onErf(event); });
        deferredErfEvents_.clear();
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
    } catch (...) {
        outcome = TrainingOutcome::Failed;
        message = "training failed: " + currentExceptionText();
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
    try {
        notifyObserver(trainer_.observer_, "finish", [&](TrainingObserver& o) { o.onFinished(outcome, message); });
    } catch (const std::exception& e) {
        // The run's end could not be recorded (a full database): the result says so.
        if (result.outcome == TrainingOutcome::Finished) result.outcome = TrainingOutcome::Failed;
        result.message += "; " + std::string(e.what());
    }
    return result;
}

void Trainer::Session::trainLoop() {
    model_->train();
    // The untrained model's ERF is the first frame of the ERF-over-training series. A resumed run
    // recomputes the snapshot of the checkpoint it starts from when a kill lost it.
    const int erfEvery = e_.training.erfEveryEpochs;
    if (erfEvery > 0 && !options_.runFolder.empty() &&
        (step_ == 0 || (batchInEpoch_ == 0 && (epoch_ % erfEvery == 0 || finished()))) && !erfSnapshotExists()) {
        if (step_ > 0) log("recomputing the missing ERF snapshot of step " + std::to_string(step_));
        recordErf();
    }
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
            const bool validateNow =
                e_.training.valEveryUnit == ScheduleUnit::Epoch && (epoch_ % e_.training.valEvery == 0 || finished());
            if (validateNow)
                validate();
            else if (!options_.runFolder.empty() &&
                     (finished() || (e_.training.checkpointEvery > 0 && epoch_ % e_.training.checkpointEvery == 0)))
                checkpoint(false);
            if (e_.training.erfEveryEpochs > 0 && (epoch_ % e_.training.erfEveryEpochs == 0 || finished())) recordErf();
        }
    }
    // A run measured in training.iterations can end within an epoch (or between per-iteration
    // evaluations): it still validates, checkpoints and takes its ERF snapshot at its last step.
    if (lastValidationStep_ != step_)
        validate();  // checkpoints too: finished()
    else if (!options_.runFolder.empty() && lastCheckpointStep_ != step_)
        checkpoint(false);
    if (e_.training.erfEveryEpochs > 0 && lastErfStep_ != step_ && !options_.runFolder.empty() && !erfSnapshotExists())
        recordErf();
}

int Trainer::Session::evaluationKey() const {
    if (e_.training.valEveryUnit == ScheduleUnit::Iteration)
        return int((step_ + e_.training.valEvery - 1) / e_.training.valEvery);
    // Epochs completed; an evaluation within an epoch (the last step of an iteration-measured
    // run) counts the epoch it ran in.
    return batchInEpoch_ > 0 ? epoch_ + 1 : epoch_;
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
        notifyObserver(trainer_.observer_, "step", [&](TrainingObserver& o) { o.onStep(event); });
    }
    pending_.clear();
}

void Trainer::Session::validate() {
    EvaluationOptions evaluation;
    evaluation.device = device_;
    evaluation.resolution = e_.training.evalResolution;
    evaluation.voidToBackground = e_.dataset.voidToBackground;
    evaluation.classNames = classNames_;
    evaluation.loss = [loss = loss_.get()](const torch::Tensor& logits, const torch::Tensor& labels) {
        return (*loss)(logits, labels);
    };
    evaluation.amp = e_.training.amp;
    evaluation.channelsLast = e_.training.channelsLast;
    evaluation.cancel = CancelToken([this] { return trainer_.waitWhilePaused(); });
    Evaluation scored = evaluate(*model_, *valLoader_, classes_, evaluation);
    if (scored.cancelled) throw Cancelled();
    ValidationEvent event;
    event.metrics = std::move(scored.metrics);
    event.valLoss = scored.meanLoss;
    event.imageIds = std::move(scored.imageIds);
    event.images = std::move(scored.images);
    event.epoch = evaluationKey();
    event.step = step_;
    event.wallSeconds = wallSeconds();
    lastValidationStep_ = step_;
    lastMiou_ = event.metrics.mIoU;
    if (event.metrics.mIoU && (!bestMiou_ || *event.metrics.mIoU > *bestMiou_)) {
        bestMiou_ = event.metrics.mIoU;
        bestEpoch_ = event.epoch;
        event.best = true;
    }
    std::ostringstream line;
    line.precision(4);
    line << "validation at epoch " << event.epoch << ", step " << step_ << ": mIoU "
         << (event.metrics.mIoU ? *event.metrics.mIoU : std::nan("")) << ", aAcc "
         << (event.metrics.aAcc ? *event.metrics.aAcc : std::nan(""));
    log(line.str());
    notifyObserver(trainer_.observer_, "validation", [&](TrainingObserver& o) { o.onValidation(event); });
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
    const ErfResult erf =
        computeErf(*model_, valSet_, transformConfig(e_), e_.training.erfImages, erfOptions, {}, &trainer_.cancelled_);
    if (erf.cancelled) throw Cancelled();
    const fs::path folder = options_.runFolder / "erf" / erfSnapshotName(epoch_, step_);
    saveErf(folder, erf, e_.model.id, "training, epoch " + std::to_string(epoch_) + ", step " + std::to_string(step_));
    lastErfStep_ = step_;
    ErfEvent event{epoch_, step_, folder, std::chrono::duration<double>(Clock::now() - begun).count()};
    std::ostringstream line;
    line.precision(3);
    line << "ERF snapshot at epoch " << epoch_ << " (" << erf.images << " images, " << event.seconds
         << " s): " << folder.string();
    log(line.str());
    if (deferErfEvents_)
        deferredErfEvents_.push_back(event);
    else
        notifyObserver(trainer_.observer_, "ERF snapshot", [&](TrainingObserver& o) { o.onErf(event); });
}

void Trainer::Session::writeCheckpointState(const fs::path& state) {
    torch::serialize::OutputArchive archive;
    archive.write("step", torch::tensor(step_, torch::kInt64));
    archive.write("epoch", torch::tensor(std::int64_t(epoch_), torch::kInt64));
    archive.write("batch_in_epoch", torch::tensor(batchInEpoch_, torch::kInt64));
    archive.write("batch_size", torch::tensor(std::int64_t(batchSize_), torch::kInt64));
    archive.write("best_miou", torch::tensor(bestMiou_.value_or(-1.0), torch::kFloat64));
    archive.write("best_epoch", torch::tensor(std::int64_t(bestEpoch_), torch::kInt64));
    archive.write("best_step", torch::tensor(bestStep_.value_or(-1), torch::kInt64));
    archive.write("wall_seconds", torch::tensor(wallSeconds(), torch::kFloat64));
    archive.write("cpu_rng", at::detail::getDefaultCPUGenerator().get_state());
    const auto scalerState = scaler_->state();
    for (std::size_t i = 0; i < scalerState.size(); ++i) archive.write("scaler_" + std::to_string(i), scalerState[i]);
    torch::serialize::OutputArchive optimizerArchive;
    optimizer_.optimizer->save(optimizerArchive);
    archive.write("optimizer", optimizerArchive);
    // Streamed through a writer that never reports a short write to LibTorch: its zip writer
    // throws from a miniz callback and from its destructor on one ("unexpected pos"), which
    // ended the process. AtomicFile records the failure and commit() reports it.
    AtomicFile file(state);
    try {
        archive.save_to([&file](const void* data, std::size_t size) -> std::size_t {
            file.write(data, size);
            return size;
        });
    } catch (const std::exception& e) {
        throw FileError(state.string(), std::string("cannot write checkpoint state: ") + e.what());
    }
    file.commit();
}

void Trainer::Session::checkpoint(bool best) {
    if (lastCheckpointStep_ == step_ && !kept_.empty()) {
        // Already written at this step (a last-step validation after the epoch's checkpoint).
        if (best) {
            bestFiles_ = kept_.back();
            bestStep_ = step_;
        }
        return;
    }
    const fs::path folder = options_.runFolder / "checkpoints";
    std::error_code ec;
    fs::create_directories(folder, ec);
    if (ec) throw FileError(folder.string(), "cannot create checkpoint folder: " + ec.message());
    const std::string name = checkpointStem(epoch_, step_);
    const fs::path weights = folder / (name + ".safetensors");
    const fs::path state = folder / (name + ".state.pt");
    const TensorMap tensors = stateDict(*model_);
    std::uint64_t weightsBytes = 64 * 1024;  // header
    for (const auto& entry : tensors) weightsBytes += tensorBytes(entry.second);
    const std::uint64_t stateBytes = optimizerStateBytes(*optimizer_.optimizer) + 1024 * 1024;
    // Refuse before writing anything when the two files cannot fit.
    requireFreeSpace(folder, weightsBytes + stateBytes);

    const std::optional<std::int64_t> previousBestStep = bestStep_;
    if (best) bestStep_ = step_;
    try {
        try {
            writeSafetensors(weights, tensors,
                             {{"model", e_.model.id}, {"classes", std::to_string(classes_)}, {"format", "pt"}});
        } catch (const FileError&) {
            rethrowAsDiskFullIfShort(weights, weightsBytes);
        }
        writeCheckpointState(state);
    } catch (...) {
        // Not a checkpoint without both files; the earlier ones stay the run's resume point.
        bestStep_ = previousBestStep;
        fs::remove(weights, ec);
        fs::remove(state, ec);
        removeTemporaryFiles();
        throw;
    }
    lastCheckpointStep_ = step_;
    const CheckpointEvent event{weights, state, epoch_, step_, best};
    notifyObserver(trainer_.observer_, "checkpoint", [&](TrainingObserver& o) { o.onCheckpoint(event); });
    // Keep the best and the latest few.
    if (best) {
        if (!bestFiles_.first.empty() && std::find(kept_.begin(), kept_.end(), bestFiles_) == kept_.end())
            removeCheckpointFiles(bestFiles_);
        bestFiles_ = {weights, state};
    }
    kept_.emplace_back(weights, state);
    pruneCheckpoints();
}

void Trainer::Session::pruneCheckpoints() {
    while (int(kept_.size()) > std::max(1, options_.keepCheckpoints)) {
        const auto oldest = kept_.front();
        kept_.erase(kept_.begin());
        if (oldest != bestFiles_) removeCheckpointFiles(oldest);
    }
}

void Trainer::Session::removeCheckpointFiles(const std::pair<fs::path, fs::path>& files) {
    std::error_code ec;
    fs::remove(files.first, ec);
    fs::remove(files.second, ec);
    CheckpointEvent removed{files.first, files.second, 0, 0, false};
    if (const auto name = parseStateName(files.second.filename().string())) {
        removed.epoch = name->epoch;
        removed.step = name->step;
    }
    notifyObserver(trainer_.observer_, "checkpoint removal",
                   [&](TrainingObserver& o) { o.onCheckpointRemoved(removed); });
}

// Temporary files of checkpoint and snapshot writers that were cut off (a crash, a full disk).
// The run folder belongs to one trainer at a time (the caller holds the run's lock), so any left
// here is stale.
void Trainer::Session::removeTemporaryFiles() {
    std::error_code ec;
    std::vector<fs::path> folders = {options_.runFolder / "checkpoints", options_.runFolder / "erf"};
    // Snapshot folders hold their files' temporaries.
    for (const auto& entry : fs::directory_iterator(options_.runFolder / "erf", ec))
        if (entry.is_directory(ec)) folders.push_back(entry.path());
    ec.clear();
    for (const fs::path& folder : folders) {
        if (!fs::is_directory(folder, ec)) continue;
        std::vector<fs::path> stale;
        for (const auto& entry : fs::directory_iterator(folder, ec)) {
            const std::string name = entry.path().filename().string();
            const bool temporary = name.size() > 4 && name.compare(name.size() - 4, 4, ".tmp") == 0;
            if (temporary || name.rfind(".partial-", 0) == 0) stale.push_back(entry.path());
        }
        for (const auto& path : stale) fs::remove_all(path, ec);
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
    lastCheckpointStep_ = step_;
    torch::Tensor bestStep;
    std::optional<std::int64_t> savedBestStep;
    if (archive.try_read("best_step", bestStep) && bestStep.item<std::int64_t>() >= 0)
        savedBestStep = bestStep.item<std::int64_t>();
    adoptEarlierCheckpoints(savedBestStep);
    kept_.emplace_back(fs::path(weightsName), statePath);
    if (savedBestStep && *savedBestStep == step_) {
        bestFiles_ = kept_.back();
        bestStep_ = step_;
    }
    pruneCheckpoints();
    log("resumed from " + statePath.string() + " at step " + std::to_string(step_) + ", epoch " +
        std::to_string(epoch_));
}

// The checkpoints this run wrote before the one it resumes from join the keep-last list, so
// keepCheckpoints holds across resumes; files written after it (a kill between writing a
// checkpoint and recording it) are deleted, the run writes them again. Checkpoints of an older
// SegScope record no best step: then the earlier files are left alone, the best may be among them.
void Trainer::Session::adoptEarlierCheckpoints(std::optional<std::int64_t> bestStep) {
    if (options_.runFolder.empty() || !options_.resumeFrom) return;
    const fs::path folder = options_.resumeFrom->parent_path();
    std::error_code ec;
    std::vector<std::pair<CheckpointName, fs::path>> found;
    for (const auto& entry : fs::directory_iterator(folder, ec))
        if (const auto name = parseStateName(entry.path().filename().string())) found.emplace_back(*name, entry.path());
    std::sort(found.begin(), found.end(), [](const auto& a, const auto& b) { return a.first.step < b.first.step; });
    for (const auto& [name, state] : found) {
        const fs::path weights = folder / (checkpointStem(name.epoch, name.step) + ".safetensors");
        if (fs::equivalent(state, *options_.resumeFrom, ec)) continue;
        if (name.step > step_) {
            removeCheckpointFiles({weights, state});
            continue;
        }
        if (!bestStep) continue;
        if (name.step == *bestStep) {
            bestFiles_ = {weights, state};
            bestStep_ = name.step;
        }
        kept_.emplace_back(weights, state);
    }
}

Trainer::Trainer(Experiment experiment, TrainerOptions options, TrainingObserver* observer)
    : experiment_(std::move(experiment)), options_(std::move(options)), observer_(observer) {}

Trainer::~Trainer() {
    cancel();
    if (thread_.joinable()) thread_.join();
}

TrainingResult Trainer::run() {
    try {
        Session session(*this);
        result_ = session.execute();
    } catch (...) {
        // execute() catches everything; this is the last guard of the training thread.
        result_ = TrainingResult{};
        result_.outcome = TrainingOutcome::Failed;
        result_.message = "training failed: " + currentExceptionText();
    }
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
        notifyObserver(observer_, "pause", [](TrainingObserver& o) { o.onPaused(true); });
        lock.lock();
        pauseChanged_.wait(lock, [this] { return !paused_ || cancelled_; });
        lock.unlock();
        if (!cancelled_) notifyObserver(observer_, "resume", [](TrainingObserver& o) { o.onPaused(false); });
        lock.lock();
    }
    return cancelled_;
}

}  // namespace segscope::core
