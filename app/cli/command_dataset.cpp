// segscope-cli demo-data and check-dataset.
#include "commands.h"

#include "segscope/core/data/dataset_check.h"
#include "segscope/core/data/demo_data.h"
#include "segscope/core/error.h"
#include "segscope/core/runtime.h"
#include "segscope/core/safe_text.h"

#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace segscope::cli {
namespace core = segscope::core;

namespace {

struct DemoDataOptions {
    std::string out;
    std::optional<std::string> images, seed, threads;
    std::vector<std::string> size;
};

int demoData(const DemoDataOptions& args) {
    core::DemoOptions options;
    // Checked before narrowing to int: 99999999999 must not wrap into a smaller, still huge count.
    const long images = integerValue("images", args.images, options.images);
    if (images < 2 || images > core::kMaxDemoImages)
        throw UsageError("--images must be between 2 and " + std::to_string(core::kMaxDemoImages) + ", got " +
                         std::to_string(images));
    options.images = static_cast<int>(images);
    const long seed = integerValue("seed", args.seed, static_cast<long>(options.seed));
    if (seed < 0) throw UsageError("--seed must be >= 0, got " + std::to_string(seed));
    options.seed = static_cast<std::uint64_t>(seed);
    const auto& size = args.size;
    if (!size.empty()) {
        const std::string bound =
            "--size expects two integers W H, each from 32 to " + std::to_string(core::kMaxDemoSide);
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
    const std::string& out = args.out;
    const core::DemoSummary summary = core::writeDemoDataset(out, options);
    std::cout << "demo dataset written to " << out << ": " << summary.trainImages << " train, " << summary.valImages
              << " val images of " << options.width << "x" << options.height << "\n";
    return 0;
}

struct CheckDatasetOptions {
    std::string kind, root;
    std::optional<std::string> split, petsMode, threads;
    bool json = false;
};

int checkDatasetCommand(const CheckDatasetOptions& args) {
    core::DatasetSpec spec;
    const std::string& kind = args.kind;
    const auto parsedKind = core::parseDatasetKind(kind);
    if (!parsedKind) throw UsageError("--kind must be voc, pets or folder, not '" + kind + "'");
    spec.kind = *parsedKind;
    spec.root = args.root;
    spec.split = args.split.value_or(spec.kind == core::DatasetKind::Pets ? "trainval" : "train");
    if (const auto& mode = args.petsMode) {
        const auto parsed = core::parsePetsMode(*mode);
        if (!parsed) throw UsageError("--pets-mode must be trimap, binary or binary-border-fg, not '" + *mode + "'");
        spec.petsMode = *parsed;
    }
    const bool json = args.json;
    core::CheckOptions options;
    if (const auto& threads = args.threads) options.threads = threadCount("threads", *threads, core::kMaxCheckThreads);
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

}  // namespace

Command addDemoDataCommand(CLI::App& cli) {
    const auto options = std::make_shared<DemoDataOptions>();
    const core::DemoOptions defaults;
    CLI::App* app = cli.add_subcommand("demo-data", "write the synthetic demo dataset (VOC layout)");
    app->footer("Writes into an empty folder, or one demo-data wrote before (it refuses to write over other files).");
    app->add_option("--out", options->out, "the dataset folder")->required()->type_name("DIR");
    addIntegerOption(*app, "--images", options->images, "images in all, 2 to " + std::to_string(core::kMaxDemoImages),
                     defaults.images);
    app->add_option("--size", options->size,
                    "image width and height, each 32 to " + std::to_string(core::kMaxDemoSide) + " (default " +
                        std::to_string(defaults.width) + " " + std::to_string(defaults.height) + ")")
        ->expected(2)
        ->type_name("W H");
    addIntegerOption(*app, "--seed", options->seed, "random seed, >= 0", static_cast<long>(defaults.seed));
    // Accepted (and unused) as before, so scripts that pass it keep working.
    app->add_option("--threads", options->threads)->group("");
    return {app, [options] { return demoData(*options); }, false};
}

Command addCheckDatasetCommand(CLI::App& cli) {
    const auto options = std::make_shared<CheckDatasetOptions>();
    CLI::App* app = cli.add_subcommand("check-dataset", "decode every file of a split and report counts and problems");
    app->footer(
        "Exits 0 when the split is trainable, 1 when it is not (also when the root is unusable: that is a "
        "report with one error, so --json stays parseable).");
    app->add_option("--kind", options->kind, "voc, pets or folder")->required()->type_name("voc|pets|folder");
    app->add_option("--root", options->root, "the dataset's root folder")->required()->type_name("DIR");
    app->add_option("--split", options->split, "the split to check (default: train; trainval for pets)")
        ->type_name("NAME");
    app->add_option("--pets-mode", options->petsMode, "how Oxford-IIIT Pets trimaps become classes (default trimap)")
        ->type_name("trimap|binary|binary-border-fg");
    app->add_option("--threads", options->threads,
                    "decoding threads, 0 (all cores) to " + std::to_string(core::kMaxCheckThreads))
        ->type_name("N");
    app->add_flag("--json", options->json, "the report as JSON");
    return {app, [options] { return checkDatasetCommand(*options); }, false};
}

}  // namespace segscope::cli
