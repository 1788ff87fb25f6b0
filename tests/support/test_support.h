#pragma once
// Helpers shared by the test suites: locations from the environment ctest sets, temp folders,
// and running segscope-cli.
#include <filesystem>
#include <string>

namespace segscope::test {

// Fixtures written by the Python scripts ($SEGSCOPE_TEST_DATA, else the build's test-data folder).
std::filesystem::path testData();
// The source tree ($SEGSCOPE_SOURCE_DIR, else the configured one): presets, scripts.
std::filesystem::path sourceDir();
// Python of the reference environment ($SEGSCOPE_PYTHON, else the configured one).
std::string pythonExecutable();
// segscope-cli ($SEGSCOPE_CLI, else the built one).
std::string cliExecutable();
// A fresh, empty folder under the system temp dir, unique per test; removed by ~TempDir.
class TempDir {
public:
    TempDir();
    ~TempDir();
    const std::filesystem::path& path() const { return path_; }
    std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

private:
    std::filesystem::path path_;
};

struct CommandResult {
    int exitCode = -1;
    std::string output;  // stdout only
};
// Runs segscope-cli with the given argument string (shell-quoted by the caller).
CommandResult runCli(const std::string& arguments);
// Runs a shell command, capturing stdout.
CommandResult runCommand(const std::string& command);
// `path` in single quotes, for the argument strings of runCli/runCommand.
std::string quoted(const std::filesystem::path& path);
// The whole file as bytes ("" when it cannot be read).
std::string readFileText(const std::filesystem::path& path);

}  // namespace segscope::test

#include <cstdint>
#include <opencv2/core.hpp>
#include <vector>

namespace segscope::test {
// testData()/formats/expected/NAME.bin as an 8-bit matrix of the given size (rows, cols, channels).
cv::Mat expectedMatrix(const std::string& name, int rows, int cols, int channels = 1);
// Number of pixels where two same-sized 8-bit matrices differ.
std::int64_t differingPixels(const cv::Mat& a, const cv::Mat& b);
// Largest absolute difference between two same-sized 8-bit matrices.
int maxAbsDifference(const cv::Mat& a, const cv::Mat& b);
}  // namespace segscope::test

#include "segscope/core/analysis/metrics.h"
#include "segscope/core/data/demo_data.h"
#include "segscope/core/experiment.h"
#include "segscope/core/runs/run_store.h"

namespace segscope::test {
// Shared fixtures: a small demo dataset and a tiny experiment that trains on it in seconds.

// The built-in demo dataset in `root`: `images` images (a quarter for validation) of
// width x height, the generator's default seed.
core::DemoSummary writeDemo(const std::filesystem::path& root, int images, int width, int height);
// The same, square: 40 images of 64x64 by default (30 train, 10 val).
core::DemoSummary writeDemo(const std::filesystem::path& root, int images = 40, int side = 64);
// SegFormer-B0 on the VOC-layout demo dataset at `demoRoot`, 64x64 crops, AdamW at lr 1e-3,
// 2 epochs of batch 4 (on writeDemo's 40 images: 7 steps an epoch), CPU, 1 thread, 1 worker,
// seed 0. Tests change what they exercise on the copy they get.
core::Experiment tinyExperiment(const std::filesystem::path& demoRoot);

// Run-store fixtures (no training): a queued SegFormer-B0 run named `name` on dataset
// "demo:/data/demo" with 3715429 parameters and a one-line experiment.
core::NewRun sampleRun(const std::string& name);
// Two-class metrics: background IoU `iou0`, circle IoU `iou1`, aAcc 0.9, mAcc 0.8, mDice 0.7.
core::SegmentationMetrics metricsWith(double iou0, double iou1);
// A run with everything the store records: steps (one of them NaN), two evaluations with class
// and image rows, checkpoints (one pruned), a resume that truncated, totals and a final status.
// Returns its id.
std::string recordFullRun(core::RunStore& store, const std::string& name);
// `n` bytes of a fixed pseudo-random sequence (seed 7).
std::string randomBytes(std::size_t n);
// Replaces the file's content by `bytes`.
void writeFileBytes(const std::filesystem::path& path, const std::string& bytes);

// The hand-computed metrics example (tests/core/test_metrics.cpp, tests/cli/test_cli_score.cpp), ten
// pixels as 2x5 masks, ignore index 255.
// Four classes: 0 and 1 present in ground truth and prediction, 2 only predicted, 3 absent from
// both (it appears in the prediction only under ignored pixels, which must not count).
//   index   0  1  2  3  4  5  6  7    8    9
//   target  0  0  0  0  1  1  1  255  255  0
//   pred    0  0  0  2  1  1  0  1    3    1
// Counted pairs (gt, pred): (0,0) x3, (0,2), (1,1) x2, (1,0), (0,1)  -> 8 pixels.
// Confusion matrix (rows gt, cols pred):
//        p0 p1 p2 p3 | gt
//   g0    3  1  1  0 |  5
//   g1    1  2  0  0 |  3
//   g2    0  0  0  0 |  0
//   g3    0  0  0  0 |  0
//  pred   4  3  1  0
// class 0: TP 3, FP 1, FN 2: IoU 3/6, Acc 3/5, Dice 6/9, Precision 3/4, share 5/8
// class 1: TP 2, FP 1, FN 1: IoU 2/4, Acc 2/3, Dice 4/6, Precision 2/3, share 3/8
// class 2: TP 0, FP 1, FN 0: IoU 0/1, Acc 0/0 (null), Dice 0/1, Precision 0/1, share 0
// class 3: nothing: IoU, Acc, Dice, Precision null, share 0
// aAcc 5/8; mIoU (1/2 + 1/2 + 0)/3 = 1/3; mAcc (3/5 + 2/3)/2 = 19/30; mDice (2/3 + 2/3 + 0)/3 = 4/9
inline const std::vector<std::int64_t> kTarget{0, 0, 0, 0, 1, 1, 1, 255, 255, 0};
inline const std::vector<std::int64_t> kPred{0, 0, 0, 2, 1, 1, 0, 1, 3, 1};
// Ten values as a 2x5 8-bit mask, row by row.
cv::Mat matOf(const std::vector<std::int64_t>& values);
}  // namespace segscope::test
