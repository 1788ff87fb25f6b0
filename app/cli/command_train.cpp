// segscope-cli train: runs an experiment headless, recording it in the workspace.
#include "commands.h"

#include "segscope/core/experiment.h"
#include "segscope/core/runs/run_lock.h"
#include "segscope/core/runs/run_recorder.h"
#include "segscope/core/runs/run_store.h"
#include "segscope/core/training/trainer.h"

#include <nlohmann/json.hpp>

#include <unistd.h>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <iomanip>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace segscope::cli {
namespace core = segscope::core;

namespace {

std::atomic<bool> interrupted{false};
extern "C" void onInterrupt(int) {
    interrupted = true;
}

std::string formatDuration(double seconds) {
    const long s = long(seconds + 0.5);
    std::ostringstream out;
    if (s >= 3600) out << s / 3600 << "h";
    out << std::setw(s >= 3600 ? 2 : 1) << std::setfill('0') << (s / 60) % 60 << "m" << std::setw(2) << s % 60 << "s";
    return out.str();
}

// Progress on a terminal (one rewritten line), plain lines elsewhere.
class ConsoleProgress : public core::TrainingObserver {
public:
    explicit ConsoleProgress(bool terminal) : terminal_(terminal) {}

    void onStarted(const core::TrainingStart& start) override {
        start_ = start;
        std::cout << "training " << start.modelId << " (" << start.parameters << " parameters) on " << start.device
                  << ": " << start.trainImages << " train / " << start.valImages << " val images, batch "
                  << start.batchSize << ", " << start.totalSteps << " steps (" << start.totalEpochs << " epochs)"
                  << std::endl;
    }
    void onStep(const core::StepEvent& e) override {
        const double remaining =
            e.imagesPerSecond > 0 ? double(start_.totalSteps - e.step) * start_.batchSize / e.imagesPerSecond : 0.0;
        std::ostringstream line;
        line << "epoch " << e.epoch + 1 << "/" << start_.totalEpochs << " step " << e.step << "/" << start_.totalSteps
             << " loss " << std::fixed << std::setprecision(4) << e.loss << " lr " << std::scientific
             << std::setprecision(2) << e.learningRate << " " << std::fixed << std::setprecision(1) << e.imagesPerSecond
             << " img/s ETA " << formatDuration(remaining);
        if (terminal_) {
            const int width = 28;
            const int filled = int(width * double(e.step) / double(std::max<std::int64_t>(1, start_.totalSteps)));
            std::cout << "\r[" << std::string(filled, '#') << std::string(width - filled, '.') << "] " << line.str()
                      << "\033[K" << std::flush;
        } else {
            const auto now = std::chrono::steady_clock::now();
            if (e.step == 1 || e.step == start_.totalSteps || now - lastPrint_ > std::chrono::seconds(2)) {
                std::cout << line.str() << std::endl;
                lastPrint_ = now;
            }
        }
    }
    void onValidation(const core::ValidationEvent& e) override {
        endLine();
        std::cout << "validation after epoch " << e.epoch << " (step " << e.step << "): mIoU " << std::fixed
                  << std::setprecision(4) << e.metrics.mIoU.value_or(std::nan("")) << "  aAcc "
                  << e.metrics.aAcc.value_or(std::nan("")) << "  mAcc " << e.metrics.mAcc.value_or(std::nan(""))
                  << (e.best ? "  (best)" : "") << std::endl;
        last_ = e.metrics;
    }
    void onLog(const std::string& line) override {
        endLine();
        std::cerr << line << std::endl;
    }
    void onFinished(core::TrainingOutcome, const std::string&) override { endLine(); }
    const std::optional<core::SegmentationMetrics>& lastMetrics() const { return last_; }

private:
    void endLine() {
        if (terminal_) std::cout << "\r\033[K" << std::flush;
    }
    bool terminal_;
    core::TrainingStart start_;
    std::chrono::steady_clock::time_point lastPrint_{};
    std::optional<core::SegmentationMetrics> last_;
};

// A run recorded as running (or paused) whose lock we hold is not being trained by anyone: its
// process died without the store noticing (its pid now belongs to another process, or another
// host). It is marked interrupted after the user agrees (--force, or "y" on a terminal).
void takeOverStaleRun(core::RunStore& store, const core::RunRecord& run, bool force) {
    if (run.status != core::RunStatus::Running && run.status != core::RunStatus::Paused) return;
    const long pid = long(run.pid.value_or(0));
    std::string owner = "process " + std::to_string(pid);
    if (!run.hostname.empty()) owner += " on " + run.hostname;
    const std::string command = core::processCommand(pid);
    if (!command.empty()) owner += " (now '" + command + "')";
    const std::string question = "run " + run.id + " is recorded as " + core::runStatusName(run.status) + " by " +
                                 owner + ", but no process holds its lock " +
                                 core::RunLock::lockFile(run.folder).string() +
                                 ", so that process is not training it (it ended, and its pid may have been reused)";
    if (!force) {
        if (!isatty(STDIN_FILENO) || !isatty(STDERR_FILENO))
            throw core::Error(question + "; pass --force to mark it interrupted and resume it");
        std::cerr << question << ".\nMark it interrupted and resume it? [y/N] " << std::flush;
        std::string answer;
        std::getline(std::cin, answer);
        if (answer != "y" && answer != "Y" && answer != "yes")
            throw core::Error("run " + run.id + " left as it is (answer was not 'y')");
    }
    store.updateStatus(run.id, core::RunStatus::Interrupted,
                       "its process " + std::to_string(pid) + " ended unrecorded");
}

// Forgets checkpoint rows whose state file is gone (pruned by the keep-last policy, also by a
// process that died before recording the deletion).
void forgetDeletedCheckpoints(core::RunStore& store, const std::string& runId) {
    for (const auto& checkpoint : store.checkpoints(runId)) {
        std::error_code ec;
        if (!std::filesystem::exists(checkpoint.path, ec) && !ec) store.removeCheckpoint(runId, checkpoint.path);
    }
}

struct TrainOptions {
    std::optional<std::string> config, workspace, resume, name, keepCheckpoints;
    std::vector<std::string> overrides;
    bool force = false;
};

int train(const TrainOptions& args) {
    // Usage first: a wrong command line must not create a workspace.
    if (args.resume && args.config) throw UsageError("--resume and --config exclude each other");
    if (!args.resume && !args.config) throw UsageError("missing --config");
    core::TrainerOptions options;
    options.keepCheckpoints = int(integerValue("keep-checkpoints", args.keepCheckpoints, options.keepCheckpoints));
    const std::filesystem::path workspace = args.workspace.value_or(core::defaultWorkspace().string());
    const auto store = core::RunStore::open(workspace);
    store->markInterrupted();

    core::Experiment experiment;
    std::string runId;
    // Held until the process ends: one process trains a run at a time.
    std::optional<core::RunLock> lock;
    if (const auto& resume = args.resume) {
        runId = *resume;
        const auto recorded = store->run(runId);
        if (!recorded) throw core::Error("no run '" + runId + "' in workspace " + workspace.string());
        try {
            lock.emplace(core::RunLock::acquire(recorded->folder));
        } catch (const core::RunLockedError& e) {
            throw core::Error("run " + runId + " is being trained by another process: " + e.what());
        }
        takeOverStaleRun(*store, *recorded, args.force);
        const core::ResumePoint point = core::prepareResume(*store, runId);
        forgetDeletedCheckpoints(*store, runId);
        experiment = point.experiment;
        options.resumeFrom = point.checkpoint;
        std::cout << "resuming run " << runId
                  << (point.checkpoint ? " from " + point.checkpoint->string() : std::string(" from the start"))
                  << std::endl;
    } else {
        experiment = core::loadExperiment(*args.config);
        for (const auto& assignment : args.overrides) core::applyOverride(experiment, assignment);
        if (const auto& name = args.name) experiment.name = *name;
        runId = core::createRecordedRun(*store, experiment);
        lock.emplace(core::RunLock::acquire(store->run(runId)->folder));
        std::cout << "run " << runId << " in " << workspace.string() << std::endl;
    }
    options.runFolder = store->run(runId)->folder;

    ConsoleProgress progress(isatty(STDOUT_FILENO));
    core::RunRecorder recorder(*store, runId, &progress);
    core::Trainer trainer(experiment, options, &recorder);
    interrupted = false;
    std::signal(SIGINT, onInterrupt);
    std::signal(SIGTERM, onInterrupt);
    trainer.start();
    std::atomic<bool> done{false};
    std::thread watcher([&] {
        while (!done) {
            if (interrupted) trainer.cancel();
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
        }
    });
    const core::TrainingResult result = trainer.wait();
    done = true;
    watcher.join();
    std::signal(SIGINT, SIG_DFL);
    std::signal(SIGTERM, SIG_DFL);
    bool recorded = true;
    try {
        recorder.recordResult(result);
        forgetDeletedCheckpoints(*store, runId);
    } catch (const std::exception& e) {
        // A full database: the run is resumable from its last recorded checkpoint.
        std::cerr << "segscope-cli: error: could not record the end of run " << runId << ": " << e.what() << std::endl;
        recorded = false;
    }

    if (progress.lastMetrics()) std::cout << core::metricsToText(*progress.lastMetrics());
    std::cout << core::trainingOutcomeName(result.outcome) << ": " << result.message << std::endl;
    if (result.bestMiou)
        std::cout << "best mIoU " << std::fixed << std::setprecision(4) << *result.bestMiou << " at epoch "
                  << result.bestEpoch << "; run " << runId << std::endl;
    return result.outcome == core::TrainingOutcome::Finished && recorded ? 0 : 1;
}

}  // namespace

Command addTrainCommand(CLI::App& cli) {
    const auto options = std::make_shared<TrainOptions>();
    const core::TrainerOptions defaults;
    CLI::App* app = cli.add_subcommand("train", "train an experiment, or continue an interrupted run exactly");
    app->footer(
        "Records the run in the workspace and prints the metrics table at the end. One process trains a run "
        "at a time (RUN/train.lock); --force resumes a run recorded as running whose process no longer "
        "trains it. Exits 0 when training finished, 1 otherwise (Ctrl-C stops at the next step, resumable).");
    app->add_option("--config", options->config, "the experiment file")->type_name("EXPERIMENT.json");
    app->add_option("--resume", options->resume, "continue this run from its last checkpoint")->type_name("RUN_ID");
    app->add_option("--workspace", options->workspace, "the workspace folder")->type_name("DIR");
    app->add_option("--set", options->overrides, "change one setting of the experiment, e.g. training.epochs=4")
        ->type_name("path=value")
        ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
    app->add_option("--name", options->name, "the run's name (default: the experiment's)")->type_name("NAME");
    addIntegerOption(*app, "--keep-checkpoints", options->keepCheckpoints, "checkpoints kept besides the best",
                     defaults.keepCheckpoints)
        ->type_name("N");
    app->add_flag("--force", options->force, "--resume: take over a run whose process ended unrecorded");
    return {app, [options] { return train(*options); }, true};
}

}  // namespace segscope::cli
