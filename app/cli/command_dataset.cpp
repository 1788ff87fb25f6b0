// segscope-cli demo-data and check-dataset.
#include "commands.h"

#include "segscope/core/dataset_check.h"
#include "segscope/core/demo_data.h"
#include "segscope/core/error.h"

#include <iostream>

namespace segscope::cli {
namespace core = segscope::core;

int commandDemoData(const Arguments& args) {
    args.allowOnly({"out", "images", "size", "seed", "threads"});
    core::DemoOptions options;
    options.images = static_cast<int>(args.integer("images", options.images));
    options.seed = static_cast<std::uint64_t>(args.integer("seed", static_cast<long>(options.seed)));
    const auto& size = args.all("size");
    if (!size.empty()) {
        try {
            options.width = std::stoi(size[0]);
            options.height = std::stoi(size[1]);
        } catch (const std::exception&) {
            throw UsageError("--size expects two integers W H");
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
    core::DatasetReport report;
    try {
        const auto dataset = core::Dataset::open(spec);
        core::CheckOptions options;
        options.threads = static_cast<int>(args.integer("threads", 0));
        report = core::checkDataset(*dataset, options);
    } catch (const core::Error& e) {
        // An unusable layout is itself a report with one error, so --json stays parseable.
        report.split = spec.split;
        report.problems.push_back({core::Severity::Error, spec.root.string(), e.what()});
    }
    if (json) std::cout << report.toJson() << std::endl;
    else std::cout << report.toText();
    return report.ok() ? 0 : 1;
}

} // namespace segscope::cli
