#pragma once
// The built-in synthetic demo: a deterministic, seeded generator that writes a real VOC-layout
// dataset (JPEG images, palette PNG labels with a void ring around objects, split files, and a
// classes.txt naming its classes) that small models learn in a few CPU minutes.
#include "segscope/core/data/classes.h"

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace segscope::core {

// Bounds writeDemoDataset() enforces before it writes anything.
inline constexpr int kMaxDemoImages = 100000;
inline constexpr int kMaxDemoSide = 4096;
// The file that marks a folder as written by writeDemoDataset() (JSON: generator, options, and
// whether the write completed). Only an empty folder or one holding it is ever written into.
inline constexpr const char* kDemoMarkerFile = ".segscope-demo";

struct DemoOptions {
    int images = 240;  // total; split into train and val; 2 .. kMaxDemoImages
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

// Bytes writeDemoDataset() expects to write for `options` (an estimate from measured sizes,
// rounded up), which it compares with the free space before writing.
std::uint64_t estimatedDemoBytes(const DemoOptions& options);

// Writes the dataset under `root` (created if needed): JPEGImages/, SegmentationClass/,
// ImageSets/Segmentation/{train,val,trainval}.txt, classes.txt and the marker file
// kDemoMarkerFile. Same options, same bytes.
//
// Never overwrites a user's files: `root` must be absent, empty, marked by an earlier
// writeDemoDataset(), or a demo dataset of an older SegScope (which wrote no marker: only the
// demo's folders, its classes.txt and demo_NNNNN ids). Anything else is refused with FileError
// naming the folder and one of its entries. Also refused before writing (Error/FileError): images
// outside [2, kMaxDemoImages], sides outside [32, kMaxDemoSide], and an estimated size above the
// free space of the file system. Throws FileError when the folder cannot be written.
DemoSummary writeDemoDataset(const std::filesystem::path& root, const DemoOptions& options = {});

// True when `root` holds a complete demo dataset: its marker says the write completed (or it is
// an unmarked demo dataset of an older SegScope) and all split files and classes.txt are present.
bool isDemoDataset(const std::filesystem::path& root);

// Where the demo dataset lives when an experiment names no root: $XDG_CACHE_HOME/segscope/demo,
// else ~/.cache/segscope/demo (else the temporary directory's segscope/demo).
std::filesystem::path defaultDemoRoot();
// Writes the demo dataset into `root` unless isDemoDataset(root) already; writeDemoDataset()'s
// refusals and FileError apply.
void ensureDemoDataset(const std::filesystem::path& root);

}  // namespace segscope::core
