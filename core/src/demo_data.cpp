#include "segscope/core/demo_data.h"

#include "segscope/core/error.h"
#include "segscope/core/image_io.h"
#include "segscope/core/random.h"

#include <opencv2/imgproc.hpp>

#include <cmath>
#include <fstream>

namespace segscope::core {
namespace fs = std::filesystem;

std::vector<ClassInfo> demoClasses() {
    return {{"background", vocColor(0)}, {"circle", vocColor(1)}, {"square", vocColor(2)},
            {"triangle", vocColor(3)},   {"cross", vocColor(4)}};
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
            out.emplace_back(int(std::lround(centre.x + c * p.x - s * p.y)), int(std::lround(centre.y + s * p.x + c * p.y)));
        return out;
    };
    switch (cls) {
    case 1:
        cv::circle(mask, cv::Point(int(std::lround(centre.x)), int(std::lround(centre.y))), int(std::lround(radius)), on,
                   cv::FILLED, cv::LINE_8);
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

} // namespace

DemoSummary writeDemoDataset(const fs::path& root, const DemoOptions& options) {
    if (options.images < 2) throw Error("demo dataset needs at least 2 images");
    if (options.width < 32 || options.height < 32) throw Error("demo images must be at least 32x32");
    std::error_code ec;
    for (const char* dir : {"JPEGImages", "SegmentationClass", "ImageSets/Segmentation"}) {
        fs::create_directories(root / dir, ec);
        if (ec) throw FileError((root / dir).string(), "cannot create folder: " + ec.message());
    }
    const auto classes = demoClasses();
    std::vector<Rgb> palette;
    for (const auto& c : classes) palette.push_back(c.color);
    const int w = options.width, h = options.height;
    const int valEvery = options.validationFraction > 0 ? std::max(2, int(std::lround(1.0 / options.validationFraction))) : 0;
    std::vector<std::string> train, val, all;
    for (int i = 0; i < options.images; ++i) {
        Random random(mixSeed(options.seed, std::uint64_t(i)));
        cv::Mat image = texturedBackground(w, h, random);
        cv::Mat label(h, w, CV_8UC1, cv::Scalar(0));
        const int objects = 1 + int(random.below(3));
        for (int k = 0; k < objects; ++k) {
            const int cls = 1 + int(random.below(classes.size() - 1));
            const double radius = random.uniform(0.12, 0.24) * std::min(w, h);
            const cv::Point2d centre(random.uniform(radius * 0.6, w - radius * 0.6), random.uniform(radius * 0.6, h - radius * 0.6));
            cv::Mat shape(h, w, CV_8UC1, cv::Scalar(0));
            drawShape(shape, cls, centre, radius, random.uniform(0, M_PI));
            const cv::Vec3b colour = hsvToRgb(kHueCentre[cls] + random.uniform(-25, 25), random.uniform(0.6, 1.0),
                                              random.uniform(0.6, 1.0));
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
    return {int(train.size()), int(val.size())};
}

bool isDemoDataset(const fs::path& root) {
    std::error_code ec;
    for (const char* split : {"train", "val", "trainval"})
        if (!fs::is_regular_file(root / "ImageSets" / "Segmentation" / (std::string(split) + ".txt"), ec)) return false;
    return fs::is_regular_file(root / "classes.txt", ec);
}

} // namespace segscope::core
