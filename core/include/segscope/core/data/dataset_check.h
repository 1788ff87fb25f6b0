#pragma once
// Whole-split validation: what `segscope-cli check-dataset` prints and the GUI's dataset report.
#include "segscope/core/cancel.h"
#include "segscope/core/data/dataset.h"

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace segscope::core {

enum class Severity { Warning, Error };

struct DatasetProblem {
    Severity severity = Severity::Error;
    std::string file;  // path of the file at fault, or the split file for listing problems
    std::string message;
};

struct DatasetReport {
    std::string split;
    std::size_t images = 0;  // ids listed in the split
    std::vector<std::string> classes;
    std::vector<std::uint64_t> classPixels;  // per class, ignore pixels excluded
    std::uint64_t ignorePixels = 0;
    std::vector<std::uint64_t> classImages;  // images containing each class at least once
    std::vector<DatasetProblem> problems;    // in sample order
    bool cancelled = false;

    std::size_t errorCount() const;
    std::size_t warningCount() const;
    // Trainable: no errors, at least one image, not cancelled.
    bool ok() const;
    // {"ok", "images", "classes", "class_pixels", "ignore_pixels", "class_images", "problems"}.
    std::string toJson(int indent = 2) const;
    // Human-readable summary: counts table plus the problem list (at most maxProblems lines).
    std::string toText(std::size_t maxProblems = 50) const;
};

// The most worker threads checkDataset() starts, whatever CheckOptions::threads asks.
inline constexpr int kMaxCheckThreads = 256;

struct CheckOptions {
    int threads = 0;  // 0: hardware concurrency; at most kMaxCheckThreads
    // Called from worker threads with (done, total) after each sample; may be empty.
    std::function<void(std::size_t, std::size_t)> progress;
    // Polled by the worker threads before each sample (a poll must be thread-safe).
    CancelToken cancel;
};

// Decodes every image and mask of the dataset's split and reports per-class counts and every
// problem: missing files, unreadable or truncated files, size mismatches, label values outside
// [0, classes) ∪ {255}, unknown mask colours, corrupt PNG chunks (CRC), images declaring more
// pixels than their bytes can hold or than imagePixelLimit(), content/extension mismatches
// (warning), ids listed twice and ids shared with the counterpart split (train/val,
// trainval/test) (warnings, on the split file). Never throws for per-file problems: nothing a
// file does escapes a worker thread. An exception thrown by options.progress stops the check
// and is rethrown on the calling thread.
DatasetReport checkDataset(const Dataset& dataset, const CheckOptions& options = {});

}  // namespace segscope::core
