#pragma once
// The built-in synthetic demo: a deterministic, seeded generator that writes a real VOC-layout
// dataset (JPEG images, palette PNG labels with a void ring around objects, split files, and a
// classes.txt naming its classes) that small models learn in a few CPU minutes.
#include "segscope/core/classes.h"

#include <cstdint>
#include <filesystem>
#include <vector>

namespace segscope::core {

struct DemoOptions {
    int images = 240;       // total; split into train and val
    int width = 128;
    int height = 128;
    std::uint64_t seed = 7;
    double validationFraction = 0.25;
};

struct DemoSummary {
    int trainImages = 0;
    int valImages = 0;
};

// background, circle, square, triangle, cross: five classes.
std::vector<ClassInfo> demoClasses();

// Writes the dataset under `root` (created if needed): JPEGImages/, SegmentationClass/,
// ImageSets/Segmentation/{train,val,trainval}.txt and classes.txt. Same options, same bytes.
// Throws FileError when the folder cannot be written.
DemoSummary writeDemoDataset(const std::filesystem::path& root, const DemoOptions& options = {});

// True when `root` holds a complete demo dataset (all split files present).
bool isDemoDataset(const std::filesystem::path& root);

} // namespace segscope::core
