// segscope-cli score: index-PNG predictions against index-PNG ground truth.
#include "commands.h"

#include "segscope/core/analysis/metrics.h"
#include "segscope/core/data/classes.h"
#include "segscope/core/data/image_io.h"
#include "segscope/core/error.h"

#include <algorithm>
#include <filesystem>
#include <iostream>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace segscope::cli {
namespace core = segscope::core;
namespace fs = std::filesystem;

namespace {

std::set<std::string> pngNames(const fs::path& dir) {
    std::error_code ec;
    if (!fs::is_directory(dir, ec)) throw core::FileError(dir.string(), "not a folder");
    std::set<std::string> names;
    for (const auto& entry : fs::directory_iterator(dir)) {
        if (!entry.is_regular_file()) continue;
        std::string ext = entry.path().extension().string();
        std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
        if (ext == ".png") names.insert(entry.path().filename().string());
    }
    return names;
}

cv::Mat readIndexMask(const fs::path& path) {
    const core::StoredMask mask = core::readMaskPng(path);
    if (mask.encoding == core::MaskEncoding::Rgb)
        throw core::FileError(path.string(), "an RGB PNG; score needs palette or grayscale index PNGs");
    return mask.values;
}

struct ScoreOptions {
    std::string pred, gt;
    std::optional<std::string> classes, ignore, names;
    bool json = false;
};

int score(const ScoreOptions& args) {
    const fs::path predDir = args.pred;
    const fs::path gtDir = args.gt;
    const long classes = integerValue("classes", args.classes, 0);
    if (classes < 1 || classes > 255) throw UsageError("--classes must be an integer in [1, 255]");
    const long ignore = integerValue("ignore", args.ignore, core::kIgnoreIndex);
    if (ignore < -1 || ignore > 255) throw UsageError("--ignore must be in [0, 255] (or -1 for none)");

    std::vector<std::string> names;
    if (const auto& file = args.names) {
        for (const auto& c : core::readClassesFile(*file)) names.push_back(c.name);
        if (static_cast<long>(names.size()) != classes)
            throw core::FileError(
                *file, "names " + std::to_string(names.size()) + " classes, --classes is " + std::to_string(classes));
    }

    const auto predNames = pngNames(predDir);
    const auto gtNames = pngNames(gtDir);
    std::vector<std::string> problems;
    for (const auto& n : gtNames)
        if (!predNames.count(n))
            problems.push_back((predDir / n).string() + ": missing prediction for " + (gtDir / n).string());
    for (const auto& n : predNames)
        if (!gtNames.count(n))
            problems.push_back((gtDir / n).string() + ": missing ground truth for " + (predDir / n).string());
    if (gtNames.empty() && problems.empty()) problems.push_back(gtDir.string() + ": no PNG files");

    core::ConfusionMatrix matrix(static_cast<int>(classes), static_cast<int>(ignore));
    for (const auto& n : gtNames) {
        if (!predNames.count(n)) continue;
        try {
            const cv::Mat pred = readIndexMask(predDir / n);
            const cv::Mat gt = readIndexMask(gtDir / n);
            if (pred.size() != gt.size()) {
                problems.push_back((predDir / n).string() + ": prediction is " + std::to_string(pred.cols) + "x" +
                                   std::to_string(pred.rows) + ", ground truth is " + std::to_string(gt.cols) + "x" +
                                   std::to_string(gt.rows));
                continue;
            }
            matrix.update(pred, gt);
        } catch (const core::FileError& e) {
            problems.push_back(e.what());
        } catch (const core::Error& e) {
            problems.push_back((predDir / n).string() + ": " + e.what());
        }
    }
    if (!problems.empty()) {
        for (const auto& p : problems) std::cerr << "segscope-cli: error: " << p << "\n";
        return 1;
    }
    const core::SegmentationMetrics metrics = core::computeMetrics(matrix, names);
    if (args.json)
        std::cout << core::metricsToJson(metrics) << std::endl;
    else
        std::cout << gtNames.size() << " images\n" << core::metricsToText(metrics);
    return 0;
}

}  // namespace

Command addScoreCommand(CLI::App& cli) {
    const auto options = std::make_shared<ScoreOptions>();
    CLI::App* app = cli.add_subcommand("score", "score index-PNG predictions against index-PNG ground truth");
    app->footer("Files are matched by name; prints aAcc, mIoU, mAcc, mDice and the per-class figures.");
    app->add_option("--pred", options->pred, "folder of predicted index PNGs")->required()->type_name("DIR");
    app->add_option("--gt", options->gt, "folder of ground-truth index PNGs")->required()->type_name("DIR");
    addIntegerOption(*app, "--classes", options->classes, "number of classes, 1 to 255")->required()->type_name("K");
    addIntegerOption(*app, "--ignore", options->ignore, "label value left out of the scores, 0 to 255 or -1 for none",
                     core::kIgnoreIndex);
    app->add_option("--names", options->names, "class names, one a line")->type_name("classes.txt");
    app->add_flag("--json", options->json, "the metrics as JSON");
    return {app, [options] { return score(*options); }, false};
}

}  // namespace segscope::cli
