#include "segscope/core/data/demo_data.h"

#include "segscope/core/data/image_io.h"
#include "segscope/core/data/random.h"
#include "segscope/core/error.h"

#include <nlohmann/json.hpp>
#include <opencv2/imgproc.hpp>

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <set>

namespace segscope::core {
namespace fs = std::filesystem;

std::vector<ClassInfo> demoClasses() {
    return {{"background", vocColor(0)},
            {"circle", vocColor(1)},
            {"square", vocColor(2)},
            {"triangle", vocColor(3)},
            {"cross", vocColor(4)}};
}

namespace {

// Each shape class has its own hue band; shape and colour together make it learnable fast.
const double kHueCentre[] = {0, 0, 120, 60, 280};  // OpenCV hue is degrees / 2 below

cv::Vec3b hsvToRgb(double hueDegrees, double saturation, double value) {
    cv::Mat hsv(1, 1, CV_8UC3, cv::Scalar(std::fmod(hueDegrees + 360.0, 360.0) / 2.0, saturation * 255, value * 255));
    cv::Mat rgb;
    cv::cvtColor(hsv, rgb, cv::COLOR_HSV2RGB);
    return rgb.at<cv::Vec3b>(0, 0);
}

cv::Mat texturedBackground(int width, int height, Random& random) {
    cv::Mat image(height, width, CV_8UC3);
    const cv::Vec3b base = hsvToRgb(random.uniform(0, 360), random.uniform(0.0, 0.25), random.uniform(0.35, 0.75));
    const double fx = random.uniform(0.05, 0.35), fy = random.uniform(0.05, 0.35), phase = random.uniform(0, 6.3);
    const double amplitude = random.uniform(8, 30);
    for (int y = 0; y < height; ++y) {
        auto* row = image.ptr<cv::Vec3b>(y);
        for (int x = 0; x < width; ++x) {
            const double stripe = amplitude * std::sin(fx * x + fy * y + phase);
            const double noise = (random.uniform() - 0.5) * 24.0;
            for (int c = 0; c < 3; ++c) row[x][c] = cv::saturate_cast<std::uint8_t>(base[c] + stripe + noise);
        }
    }
    return image;
}

void drawShape(cv::Mat& mask, int cls, cv::Point2d centre, double radius, double angle) {
    const cv::Scalar on(255);
    auto rotated = [&](const std::vector<cv::Point2d>& pts) {
        std::vector<cv::Point> out;
        const double c = std::cos(angle), s = std::sin(angle);
        for (const auto& p : pts)
            out.emplace_back(int(std::lround(centre.x + c * p.x - s * p.y)),
                             int(std::lround(centre.y + s * p.x + c * p.y)));
        return out;
    };
    switch (cls) {
        case 1:
            cv::circle(mask, cv::Point(int(std::lround(centre.x)), int(std::lround(centre.y))),
                       int(std::lround(radius)), on, cv::FILLED, cv::LINE_8);
            break;
        case 2: {
            const double r = radius * 0.85;
            cv::fillPoly(mask, std::vector<std::vector<cv::Point>>{rotated({{-r, -r}, {r, -r}, {r, r}, {-r, r}})}, on);
            break;
        }
        case 3: {
            std::vector<cv::Point2d> pts;
            for (int k = 0; k < 3; ++k) {
                const double a = -M_PI / 2 + k * 2 * M_PI / 3;
                pts.emplace_back(radius * std::cos(a), radius * std::sin(a));
            }
            cv::fillPoly(mask, std::vector<std::vector<cv::Point>>{rotated(pts)}, on);
            break;
        }
        default: {
            const double r = radius, t = radius * 0.33;
            cv::fillPoly(mask, std::vector<std::vector<cv::Point>>{rotated({{-r, -t}, {r, -t}, {r, t}, {-r, t}})}, on);
            cv::fillPoly(mask, std::vector<std::vector<cv::Point>>{rotated({{-t, -r}, {t, -r}, {t, r}, {-t, r}})}, on);
            break;
        }
    }
}

void writeList(const fs::path& path, const std::vector<std::string>& ids) {
    std::ofstream out(path);
    for (const auto& id : ids) out << id << '\n';
    if (!out) throw FileError(path.string(), "cannot write split file");
}

bool isDemoId(const std::string& id) {
    if (id.size() != 10 || id.rfind("demo_", 0) != 0) return false;
    for (std::size_t i = 5; i < id.size(); ++i)
        if (!std::isdigit(static_cast<unsigned char>(id[i]))) return false;
    return true;
}

// An unmarked folder an older SegScope's demo generator wrote: nothing but the demo's entries,
// its class table, and split files of demo ids only.
bool isLegacyDemoFolder(const fs::path& root) {
    std::error_code ec;
    const std::set<std::string> allowed = {"JPEGImages", "SegmentationClass", "ImageSets", "classes.txt"};
    for (const auto& entry : fs::directory_iterator(root, ec))
        if (!allowed.count(entry.path().filename().string())) return false;
    if (ec || !fs::is_regular_file(root / "classes.txt", ec)) return false;
    try {
        const auto classes = readClassesFile(root / "classes.txt");
        const auto demo = demoClasses();
        if (classes.size() != demo.size()) return false;
        for (std::size_t i = 0; i < demo.size(); ++i)
            if (classes[i].name != demo[i].name) return false;
    } catch (const std::exception&) {
        return false;
    }
    for (const auto& entry : fs::directory_iterator(root / "ImageSets" / "Segmentation", ec)) {
        const std::string name = entry.path().filename().string();
        if (name != "train.txt" && name != "val.txt" && name != "trainval.txt") return false;
        std::ifstream in(entry.path());
        for (std::string id; std::getline(in, id);)
            if (!isDemoId(id)) return false;
    }
    return !ec;
}

std::optional<nlohmann::json> readMarker(const fs::path& root) {
    std::error_code ec;
    if (!fs::is_regular_file(root / kDemoMarkerFile, ec)) return std::nullopt;
    std::ifstream in(root / kDemoMarkerFile);
    nlohmann::json marker = nlohmann::json::parse(in, nullptr, false);
    if (marker.is_discarded() || !marker.is_object()) return nlohmann::json::object();  // marked, but unreadable
    return marker;
}

// Throws unless writing into `root` can only replace files an earlier demo write made.
void requireGeneratedOrEmpty(const fs::path& root) {
    std::error_code ec;
    const fs::file_status status = fs::status(root, ec);
    if (ec && ec != std::errc::no_such_file_or_directory)
        throw FileError(root.string(), "cannot be read: " + ec.message());
    if (!fs::exists(status)) return;
    if (!fs::is_directory(status))
        throw FileError(root.string(), "exists and is not a folder; refusing to write demo data");
    fs::directory_iterator it(root, ec);
    if (ec) throw FileError(root.string(), "cannot be read: " + ec.message());
    if (it == fs::directory_iterator()) return;  // empty
    if (readMarker(root) || isLegacyDemoFolder(root)) return;
    throw FileError(root.string(),
                    "holds files SegScope did not generate (e.g. " + it->path().filename().string() +
                        "); demo data is written only into an empty folder or one written by demo-data (marked by " +
                        kDemoMarkerFile + "): choose another folder");
}

void writeMarker(const fs::path& root, const DemoOptions& options, bool complete) {
    const nlohmann::json marker = {{"generator", "segscope demo-data"},
                                   {"complete", complete},
                                   {"images", options.images},
                                   {"width", options.width},
                                   {"height", options.height},
                                   {"seed", options.seed},
                                   {"validation_fraction", options.validationFraction}};
    std::ofstream out(root / kDemoMarkerFile);
    out << marker.dump(2) << "\n";
    if (!out) throw FileError((root / kDemoMarkerFile).string(), "cannot write");
}

}  // namespace

std::uint64_t estimatedDemoBytes(const DemoOptions& options) {
    // Measured: a 128x128 image is about 9 KB of JPEG (quality 92, textured) and 0.5 KB of PNG;
    // 2 bytes per pixel and 8 KiB of file-system overhead per image bound both with room to spare.
    const std::uint64_t pixels = std::uint64_t(std::max(0, options.width)) * std::uint64_t(std::max(0, options.height));
    return std::uint64_t(std::max(0, options.images)) * (2 * pixels + 8192) + (1 << 20);
}

DemoSummary writeDemoDataset(const fs::path& root, const DemoOptions& options) {
    if (options.images < 2 || options.images > kMaxDemoImages)
        throw Error("demo dataset needs between 2 and " + std::to_string(kMaxDemoImages) + " images, got " +
                    std::to_string(options.images));
    if (options.width < 32 || options.height < 32 || options.width > kMaxDemoSide || options.height > kMaxDemoSide)
        throw Error("demo images must be between 32x32 and " + std::to_string(kMaxDemoSide) + "x" +
                    std::to_string(kMaxDemoSide) + ", got " + std::to_string(options.width) + "x" +
                    std::to_string(options.height));
    requireGeneratedOrEmpty(root);
    std::error_code ec;
    // Free space where the folder is, or where it will be created.
    fs::path existing = root.empty() ? fs::path(".") : root;
    while (!existing.empty() && !fs::exists(existing, ec)) existing = existing.parent_path();
    if (existing.empty()) existing = ".";
    const fs::space_info space = fs::space(existing, ec);
    const std::uint64_t needed = estimatedDemoBytes(options);
    if (!ec && space.available != static_cast<std::uintmax_t>(-1) && needed > space.available)
        throw FileError(root.string(), "the demo dataset needs about " + std::to_string(needed >> 20) + " MB, only " +
                                           std::to_string(space.available >> 20) + " MB are free there");
    ec.clear();
    for (const char* dir : {"JPEGImages", "SegmentationClass", "ImageSets/Segmentation"}) {
        fs::create_directories(root / dir, ec);
        if (ec) throw FileError((root / dir).string(), "cannot create folder: " + ec.message());
    }
    writeMarker(root, options, false);
    const auto classes = demoClasses();
    std::vector<Rgb> palette;
    for (const auto& c : classes) palette.push_back(c.color);
    const int w = options.width, h = options.height;
    const int valEvery =
        options.validationFraction > 0 ? std::max(2, int(std::lround(1.0 / options.validationFraction))) : 0;
    std::vector<std::string> train, val, all;
    for (int i = 0; i < options.images; ++i) {
        Random random(mixSeed(options.seed, std::uint64_t(i)));
        cv::Mat image = texturedBackground(w, h, random);
        cv::Mat label(h, w, CV_8UC1, cv::Scalar(0));
        const int objects = 1 + int(random.below(3));
        for (int k = 0; k < objects; ++k) {
            const int cls = 1 + int(random.below(classes.size() - 1));
            const double radius = random.uniform(0.12, 0.24) * std::min(w, h);
            const cv::Point2d centre(random.uniform(radius * 0.6, w - radius * 0.6),
                                     random.uniform(radius * 0.6, h - radius * 0.6));
            cv::Mat shape(h, w, CV_8UC1, cv::Scalar(0));
            drawShape(shape, cls, centre, radius, random.uniform(0, M_PI));
            const cv::Vec3b colour =
                hsvToRgb(kHueCentre[cls] + random.uniform(-25, 25), random.uniform(0.6, 1.0), random.uniform(0.6, 1.0));
            for (int y = 0; y < h; ++y) {
                const auto* s = shape.ptr<std::uint8_t>(y);
                auto* px = image.ptr<cv::Vec3b>(y);
                auto* lb = label.ptr<std::uint8_t>(y);
                for (int x = 0; x < w; ++x) {
                    if (!s[x]) continue;
                    const double noise = (random.uniform() - 0.5) * 30.0;
                    for (int c = 0; c < 3; ++c) px[x][c] = cv::saturate_cast<std::uint8_t>(colour[c] + noise);
                    lb[x] = static_cast<std::uint8_t>(cls);
                }
            }
        }
        // VOC marks object boundaries as void: pixels whose 3x3 neighbourhood holds two labels.
        cv::Mat dilated, eroded;
        const cv::Mat kernel = cv::getStructuringElement(cv::MORPH_RECT, {3, 3});
        cv::dilate(label, dilated, kernel, {-1, -1}, 1, cv::BORDER_REPLICATE);
        cv::erode(label, eroded, kernel, {-1, -1}, 1, cv::BORDER_REPLICATE);
        label.setTo(cv::Scalar(kIgnoreIndex), dilated != eroded);

        char id[32];
        std::snprintf(id, sizeof id, "demo_%05d", i);
        writeImageRgb(root / "JPEGImages" / (std::string(id) + ".jpg"), image, 92);
        writePalettePng(root / "SegmentationClass" / (std::string(id) + ".png"), label, palette);
        all.push_back(id);
        (valEvery && i % valEvery == valEvery - 1 ? val : train).push_back(id);
    }
    writeClassesFile(root / "classes.txt", classes);
    writeList(root / "ImageSets" / "Segmentation" / "train.txt", train);
    writeList(root / "ImageSets" / "Segmentation" / "val.txt", val);
    writeList(root / "ImageSets" / "Segmentation" / "trainval.txt", all);
    writeMarker(root, options, true);
    return {int(train.size()), int(val.size())};
}

bool isDemoDataset(const fs::path& root) {
    std::error_code ec;
    for (const char* split : {"train", "val", "trainval"})
        if (!fs::is_regular_file(root / "ImageSets" / "Segmentation" / (std::string(split) + ".txt"), ec)) return false;
    if (!fs::is_regular_file(root / "classes.txt", ec)) return false;
    if (const auto marker = readMarker(root)) {
        const auto complete = marker->find("complete");
        return complete != marker->end() && complete->is_boolean() && complete->get<bool>();
    }
    return isLegacyDemoFolder(root);
}

std::filesystem::path defaultDemoRoot() {
    if (const char* cache = std::getenv("XDG_CACHE_HOME"); cache && *cache)
        return std::filesystem::path(cache) / "segscope" / "demo";
    if (const char* home = std::getenv("HOME"); home && *home)
        return std::filesystem::path(home) / ".cache" / "segscope" / "demo";
    return std::filesystem::temp_directory_path() / "segscope" / "demo";
}

void ensureDemoDataset(const fs::path& root) {
    if (!isDemoDataset(root)) writeDemoDataset(root);
}

}  // namespace segscope::core
