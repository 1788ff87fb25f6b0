#include "segscope/core/data/dataset_check.h"

#include "segscope/core/data/image_io.h"
#include "segscope/core/safe_text.h"

#include <nlohmann/json.hpp>

#include <exception>
#include <iomanip>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

namespace segscope::core {

std::size_t DatasetReport::errorCount() const {
    std::size_t n = 0;
    for (const auto& p : problems) n += p.severity == Severity::Error;
    return n;
}

std::size_t DatasetReport::warningCount() const {
    return problems.size() - errorCount();
}

bool DatasetReport::ok() const {
    return !cancelled && images > 0 && errorCount() == 0;
}

std::string DatasetReport::toJson(int indent) const {
    nlohmann::json problemsJson = nlohmann::json::array();
    for (const auto& p : problems)
        problemsJson.push_back({{"severity", p.severity == Severity::Error ? "error" : "warning"},
                                {"file", p.file},
                                {"message", p.message}});
    nlohmann::json j = {{"ok", ok()},
                        {"split", split},
                        {"images", images},
                        {"classes", classes},
                        {"class_pixels", classPixels},
                        {"ignore_pixels", ignorePixels},
                        {"class_images", classImages},
                        {"problems", problemsJson}};
    return dumpJson(j, indent);
}

std::string DatasetReport::toText(std::size_t maxProblems) const {
    std::ostringstream out;
    out << "split " << split << ": " << images << " images, " << errorCount() << " errors, " << warningCount()
        << " warnings" << (cancelled ? " (cancelled)" : "") << "\n";
    std::uint64_t total = ignorePixels;
    for (auto c : classPixels) total += c;
    std::size_t width = 5;
    for (const auto& name : classes) width = std::max(width, name.size());
    out << "  " << std::left << std::setw(int(width)) << "class" << std::right << std::setw(14) << "pixels"
        << std::setw(9) << "share" << std::setw(9) << "images"
        << "\n";
    for (std::size_t i = 0; i < classes.size(); ++i) {
        const double share = total ? 100.0 * double(classPixels[i]) / double(total) : 0.0;
        out << "  " << std::left << std::setw(int(width)) << classes[i] << std::right << std::setw(14) << classPixels[i]
            << std::setw(8) << std::fixed << std::setprecision(2) << share << "%" << std::setw(9) << classImages[i]
            << "\n";
    }
    out << "  " << std::left << std::setw(int(width)) << "(ignore)" << std::right << std::setw(14) << ignorePixels
        << "\n";
    for (std::size_t i = 0; i < problems.size() && i < maxProblems; ++i)
        out << (problems[i].severity == Severity::Error ? "error: " : "warning: ") << problems[i].file << ": "
            << problems[i].message << "\n";
    if (problems.size() > maxProblems) out << "... and " << problems.size() - maxProblems << " more problems\n";
    return out.str();
}

namespace {

struct SampleResult {
    std::vector<DatasetProblem> problems;
    std::vector<std::uint64_t> pixels;
    std::uint64_t ignore = 0;
};

SampleResult checkSample(const Dataset& dataset, const SampleFiles& s) {
    SampleResult r;
    const int classes = dataset.numClasses();
    r.pixels.assign(classes, 0);
    auto error = [&](const std::string& file, const std::string& message) {
        r.problems.push_back({Severity::Error, file, message});
    };
    if (s.image.empty() && s.mask.empty()) {
        error(s.expectedImage.string(), "id '" + s.id +
                                            "' is listed in the split but has no image and no mask (expected " +
                                            s.expectedImage.string() + " and " + s.expectedMask.string() + ")");
        return r;
    }
    if (s.image.empty()) error(s.expectedImage.string(), "id '" + s.id + "' has a mask but no image");
    if (s.mask.empty()) error(s.expectedMask.string(), "id '" + s.id + "' has an image but no mask");

    cv::Size imageSize;
    if (!s.image.empty()) {
        try {
            ImageInfo info;
            const cv::Mat image = readImageRgb(s.image, &info);
            imageSize = image.size();
            if (extensionMismatch(s.image, info.format))
                r.problems.push_back(
                    {Severity::Warning, s.image.string(),
                     std::string("contains ") + imageFormatName(info.format) + " data; decoded by content"});
        } catch (const FileError& e) {
            error(e.path(), e.reason());
        }
    }
    if (s.mask.empty()) return r;
    DecodedMask decoded;
    try {
        decoded = dataset.decodeMask(s.mask);
    } catch (const FileError& e) {
        error(e.path(), e.reason());
        return r;
    }
    if (decoded.unknownColorPixels > 0) {
        const Rgb c = decoded.firstUnknownColor;
        error(s.mask.string(), std::to_string(decoded.unknownColorPixels) +
                                   " pixels have colours outside the class table, e.g. (" + std::to_string(c.r) + ", " +
                                   std::to_string(c.g) + ", " + std::to_string(c.b) + ")");
    }
    if (decoded.invalidPixels > 0) {
        error(s.mask.string(), std::to_string(decoded.invalidPixels) + " pixels have label value " +
                                   std::to_string(decoded.firstInvalidValue) +
                                   (dataset.spec().kind == DatasetKind::Pets
                                        ? " (trimap values must be 1, 2 or 3)"
                                        : " outside [0, " + std::to_string(classes) + ") and not 255"));
    }
    if (!imageSize.empty() && decoded.label.size() != imageSize) {
        error(s.mask.string(), "mask is " + std::to_string(decoded.label.cols) + "x" +
                                   std::to_string(decoded.label.rows) + " but its image is " +
                                   std::to_string(imageSize.width) + "x" + std::to_string(imageSize.height));
    }
    std::uint64_t histogram[256] = {};
    for (int y = 0; y < decoded.label.rows; ++y) {
        const auto* row = decoded.label.ptr<std::uint8_t>(y);
        for (int x = 0; x < decoded.label.cols; ++x) ++histogram[row[x]];
    }
    for (int c = 0; c < classes; ++c) r.pixels[c] = histogram[c];
    r.ignore = histogram[kIgnoreIndex];
    return r;
}

// The split a split is usually paired with: training ids should not be validation ids.
std::string counterpartSplit(const std::string& split) {
    if (split == "train" || split == "trainaug" || split == "train_aug") return "val";
    if (split == "val") return "train";
    if (split == "trainval") return "test";
    if (split == "test") return "trainval";
    return {};
}

std::string quotedIds(const std::vector<std::string>& ids, std::size_t most) {
    std::string text;
    for (std::size_t i = 0; i < ids.size() && i < most; ++i)
        text += (i ? ", '" : "'") + truncateForMessage(ids[i]) + "'";
    if (ids.size() > most) text += ", ...";
    return text;
}

// Warnings about the listing itself: ids listed twice, and ids shared with the counterpart
// split (train/val, trainval/test), whose scores would then not be held out.
std::vector<DatasetProblem> listingProblems(const Dataset& dataset) {
    std::vector<DatasetProblem> problems;
    if (dataset.splitFile().empty()) return problems;  // carved splits are disjoint by construction
    const std::string file = dataset.splitFile().string();
    std::map<std::string, std::vector<std::size_t>> lines;
    std::vector<std::string> order;
    for (const auto& s : dataset.samples()) {
        auto& l = lines[s.id];
        if (l.empty()) order.push_back(s.id);
        l.push_back(s.line);
    }
    for (const auto& id : order) {
        const auto& l = lines[id];
        if (l.size() < 2) continue;
        std::string where;
        for (std::size_t i = 0; i < l.size() && i < 5; ++i) where += (i ? ", " : "") + std::to_string(l[i]);
        if (l.size() > 5) where += ", ...";
        problems.push_back({Severity::Warning, file,
                            "id '" + truncateForMessage(id) + "' is listed " + std::to_string(l.size()) +
                                " times (lines " + where + "); each listing counts as a separate sample"});
    }
    const std::string other = counterpartSplit(dataset.spec().split);
    if (other.empty()) return problems;
    std::shared_ptr<const Dataset> counterpart;
    try {
        DatasetSpec spec = dataset.spec();
        spec.split = other;
        counterpart = Dataset::open(spec);
    } catch (const std::exception&) {
        return problems;  // no such split: nothing to compare with
    }
    if (counterpart->splitFile().empty()) return problems;
    std::set<std::string> otherIds;
    for (const auto& s : counterpart->samples()) otherIds.insert(s.id);
    std::vector<std::string> shared;
    for (const auto& id : order)
        if (otherIds.count(id)) shared.push_back(id);
    if (!shared.empty())
        problems.push_back({Severity::Warning, file,
                            std::to_string(shared.size()) + " of its ids are also in split '" + other + "' (" +
                                counterpart->splitFile().string() + "), e.g. " + quotedIds(shared, 3) +
                                ": scores on them are not held out"});
    return problems;
}

}  // namespace

DatasetReport checkDataset(const Dataset& dataset, const CheckOptions& options) {
    DatasetReport report;
    report.split = dataset.spec().split;
    report.images = dataset.size();
    for (const auto& c : dataset.classes()) report.classes.push_back(c.name);
    const std::size_t classes = report.classes.size();
    report.classPixels.assign(classes, 0);
    report.classImages.assign(classes, 0);

    const auto& samples = dataset.samples();
    std::vector<SampleResult> results(samples.size());
    std::atomic<std::size_t> next{0}, done{0};
    std::atomic<bool> cancelled{false};
    std::mutex failureMutex;
    std::exception_ptr progressFailure;  // from the caller's progress callback: rethrown after the join
    auto work = [&] {
        for (std::size_t i = next++; i < samples.size(); i = next++) {
            if (options.cancel.cancelled()) {
                cancelled = true;
                return;
            }
            // Nothing may escape a worker thread (std::terminate): any failure of one sample,
            // cv::Exception and std::bad_alloc included, becomes that sample's error.
            try {
                results[i] = checkSample(dataset, samples[i]);
            } catch (const std::exception& e) {
                results[i] = {};
                results[i].problems.push_back(
                    {Severity::Error, samples[i].expectedImage.string(),
                     "id '" + samples[i].id + "' could not be checked: " + withoutBacktrace(e.what())});
            } catch (...) {
                results[i] = {};
                results[i].problems.push_back({Severity::Error, samples[i].expectedImage.string(),
                                               "id '" + samples[i].id + "' could not be checked"});
            }
            const std::size_t finished = ++done;
            if (options.progress) {
                try {
                    options.progress(finished, samples.size());
                } catch (...) {
                    std::lock_guard lock(failureMutex);
                    if (!progressFailure) progressFailure = std::current_exception();
                    cancelled = true;
                    next = samples.size();
                    return;
                }
            }
        }
    };
    int threads = options.threads > 0 ? options.threads : int(std::max(1u, std::thread::hardware_concurrency()));
    threads = std::min(threads, kMaxCheckThreads);
    threads = int(std::min<std::size_t>(threads, std::max<std::size_t>(1, samples.size())));
    std::vector<std::thread> pool;
    for (int t = 1; t < threads; ++t) pool.emplace_back(work);
    work();
    for (auto& t : pool) t.join();
    if (progressFailure) std::rethrow_exception(progressFailure);

    for (const auto& r : results) {
        report.problems.insert(report.problems.end(), r.problems.begin(), r.problems.end());
        if (r.pixels.empty()) continue;
        for (std::size_t c = 0; c < classes; ++c) {
            report.classPixels[c] += r.pixels[c];
            report.classImages[c] += r.pixels[c] > 0;
        }
        report.ignorePixels += r.ignore;
    }
    if (samples.empty())
        report.problems.push_back(
            {Severity::Error, dataset.resolvedRoot().string(), "split '" + report.split + "' lists no images"});
    for (auto& problem : listingProblems(dataset)) report.problems.push_back(std::move(problem));
    report.cancelled = cancelled;
    return report;
}

}  // namespace segscope::core
