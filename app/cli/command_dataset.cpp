// segscope-cli demo-data and check-dataset.
#include "commands.h"

#include "segscope/core/data/dataset_check.h"
#include "segscope/core/data/demo_data.h"
#include "segscope/core/error.h"
#include "segscope/core/runtime.h"
#include "segscope/core/safe_text.h"

#include <iostream>

namespace segscope::cli {
namespace core = segscope::core;

int commandDemoData(const Arguments& args) {
    args.allowOnly({"out", "images", "size", "seed", "threads"});
    core::DemoOptions options;
    // Checked before narrowing to int: 99999999999 must not wrap into a smaller, still huge count.
    const long images = args.integer("images", options.images);
    if (images < 2 || images > core::kMaxDemoImages)
        throw UsageError("--images must be between 2 and " + std::to_string(core::kMaxDemoImages) + ", got " +
                         std::to_string(images));
    options.images = static_cast<int>(images);
    const long seed = args.integer("seed", static_cast<long>(options.seed));
    if (seed < 0) throw UsageError("--seed must be >= 0, got " + std::to_string(seed));
    options.seed = static_cast<std::uint64_t>(seed);
    const auto& size = args.all("size");
    if (!size.empty()) {
        const std::string bound = "--size expects two integers W H, each from 32 to " +
                                  std::to_string(core::kMaxDemoSide);
        try {
            std::size_t usedWidth = 0, usedHeight = 0;
            const long long width = std::stoll(size[0], &usedWidth), height = std::stoll(size[1], &usedHeight);
            if (usedWidth != size[0].size() || usedHeight != size[1].size() || width < 32 || height < 32 ||
                width > core::kMaxDemoSide || height > core::kMaxDemoSide)
                throw UsageError(bound);
            options.width = static_cast<int>(width);
            options.height = static_cast<int>(height);
        } catch (const UsageError&) {
            throw;
        } catch (const std::exception&) {
            throw UsageError(bound);
        }
    }
    const std::string out = args.required("out");
    const core::DemoSummary summary = core::writeDemoDataset(out, options);
    std::cout << "demo dataset written to " << out << ": " << summary.trainImages << " train, "
              << summary.valImages << " val images of " << options.width << "x" << options.height << "\n";
    return 0;
}

int commandCheckDataset(const Arguments& args) {
    args.allowOnly({"kind", "root", "split", "pets-mode", "json", "threads"});
    core::DatasetSpec spec;
    const std::string kind = args.required("kind");
    const auto parsedKind = core::parseDatasetKind(kind);
    if (!parsedKind) throw UsageError("--kind must be voc, pets or folder, not '" + kind + "'");
    spec.kind = *parsedKind;
    spec.root = args.required("root");
    spec.split = args.value("split").value_or(spec.kind == core::DatasetKind::Pets ? "trainval" : "train");
    if (auto mode = args.value("pets-mode")) {
        const auto parsed = core::parsePetsMode(*mode);
        if (!parsed) throw UsageError("--pets-mode must be trimap, binary or binary-border-fg, not '" + *mode + "'");
        spec.petsMode = *parsed;
    }
    const bool json = args.has("json");
    core::CheckOptions options;
    if (auto threads = args.value("threads"))
        options.threads = Arguments::threadCount("threads", *threads, core::kMaxCheckThreads);
    core::DatasetReport report;
    try {
        const auto dataset = core::Dataset::open(spec);
        report = core::checkDataset(*dataset, options);
    } catch (const core::Error& e) {
        // An unusable layout is itself a report with one error, so --json stays parseable.
        report.split = spec.split;
        report.problems.push_back({core::Severity::Error, spec.root.string(), e.what()});
    }
    if (json) {
        const std::string text = report.toJson();
        std::cout << text << std::endl;
        if (text.find(core::kReplacedBytesKey) != std::string::npos)
            std::cerr << "segscope-cli: note: some file names are not valid UTF-8; in the JSON their invalid bytes "
                         "are replaced by U+FFFD (see \""
                      << core::kReplacedBytesKey << "\")\n";
    } else {
        std::cout << report.toText();
    }
    return report.ok() ? 0 : 1;
}

} // namespace segscope::cli
