// segscope-cli: the headless face of SegScope. Links segscope_core only.
#include "arguments.h"

#include "segscope/core/dataset_check.h"
#include "segscope/core/demo_data.h"
#include "segscope/core/error.h"
#include "segscope/core/runtime.h"

#include <iostream>
#include <string>
#include <vector>

namespace core = segscope::core;
using segscope::cli::Arguments;
using segscope::cli::UsageError;

namespace {

const char* kUsage = R"(usage: segscope-cli [--threads N] COMMAND [options]

commands:
  --version                       versions of SegScope, LibTorch and OpenCV, threads, CUDA devices
  demo-data --out DIR [--images N] [--size W H] [--seed S]
                                  write the synthetic demo dataset (VOC layout)
  check-dataset --kind voc|pets|folder --root DIR [--split NAME]
                [--pets-mode trimap|binary|binary-border-fg] [--threads N] [--json]
                                  decode every file of a split and report counts and problems;
                                  exits 0 when the split is trainable
)";

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

} // namespace

int main(int argc, char** argv) {
    std::vector<std::string> args(argv + 1, argv + argc);
    try {
        // Global options come before the command.
        int threads = 0;
        while (!args.empty() && args[0] == "--threads") {
            if (args.size() < 2) throw UsageError("--threads needs a value");
            try {
                threads = std::stoi(args[1]);
            } catch (const std::exception&) {
                throw UsageError("--threads expects an integer");
            }
            args.erase(args.begin(), args.begin() + 2);
        }
        core::setIntraOpThreads(threads);
        if (args.empty() || args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
            std::cout << kUsage;
            return args.empty() ? 2 : 0;
        }
        const std::string command = args[0];
        const std::vector<std::string> rest(args.begin() + 1, args.end());
        if (command == "--version" || command == "version") {
            std::cout << core::formatRuntimeInfo(core::runtimeInfo());
            return 0;
        }
        if (command == "demo-data") return commandDemoData(Arguments(rest, {}, {"size"}));
        if (command == "check-dataset") return commandCheckDataset(Arguments(rest, {"json"}));
        throw UsageError("unknown command '" + command + "'");
    } catch (const UsageError& e) {
        std::cerr << "segscope-cli: " << e.what() << "\n\n" << kUsage;
        return 2;
    } catch (const std::exception& e) {
        std::cerr << "segscope-cli: error: " << e.what() << "\n";
        return 1;
    }
}
