#pragma once
// Datasets on disk: PASCAL VOC 2012 layout (also the built-in demo), Oxford-IIIT Pets, and a
// plain folder layout for users' own data.
//
// A Dataset lists the samples of one split and decodes them on demand. Opening validates the
// layout (root, split file, class table) and throws Error when it is unusable; per-file problems
// surface when a sample is loaded (FileError) or, for a whole split, through checkDataset().
// A Dataset is immutable after open() and safe to use from several threads.
#include "segscope/core/data/classes.h"
#include "segscope/core/error.h"

#include <opencv2/core.hpp>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace segscope::core {

enum class DatasetKind { Voc, Pets, Folder };
enum class PetsMode { Trimap, Binary, BinaryBorderForeground };

const char* datasetKindName(DatasetKind kind);  // "voc", "pets", "folder"
std::optional<DatasetKind> parseDatasetKind(const std::string& text);
const char* petsModeName(PetsMode mode);  // "trimap", "binary", "binary-border-fg"
std::optional<PetsMode> parsePetsMode(const std::string& text);

struct DatasetSpec {
    DatasetKind kind = DatasetKind::Voc;
    std::filesystem::path root;
    std::string split = "train";
    PetsMode petsMode = PetsMode::Trimap;
    // Pets and folder datasets without split files: "train" and "val" are carved from the whole
    // list (Pets: trainval) by a seeded shuffle; this fraction goes to "val".
    double validationFraction = 0.1;
    std::uint64_t validationSeed = 0;
};

struct SampleFiles {
    std::string id;
    std::filesystem::path image;          // empty when no image file exists for the id
    std::filesystem::path mask;           // empty when no mask file exists for the id
    std::filesystem::path expectedImage;  // where the image was looked for
    std::filesystem::path expectedMask;
    std::size_t line = 0;  // line of the split file that lists the id; 0 for carved and derived splits
};

struct LabeledImage {
    std::string id;
    cv::Mat image;  // CV_8UC3, RGB
    cv::Mat label;  // CV_8UC1, class indices, kIgnoreIndex for ignored pixels
};

// Result of decoding a mask file into class indices, before validation.
struct DecodedMask {
    cv::Mat label;                    // CV_8UC1; unmapped values are kept as stored
    std::uint64_t invalidPixels = 0;  // values outside [0, classes) and not 255
    int firstInvalidValue = -1;
    std::uint64_t unknownColorPixels = 0;  // RGB masks: colours not in the class table
    Rgb firstUnknownColor;
};

class Dataset {
public:
    // Opens the split. Throws Error naming the missing, unreadable or malformed path. Split names
    // and the ids in split files are file names, never paths: an id with '/', '\\', a control
    // character, or "." / "..", is refused with the split file and line. A UTF-8 byte-order mark
    // is dropped; VOC and folder split files hold one whole id per line (spaces included), Pets
    // lists the id as the first field.
    static std::shared_ptr<const Dataset> open(const DatasetSpec& spec);

    const DatasetSpec& spec() const { return spec_; }
    const std::filesystem::path& resolvedRoot() const { return resolvedRoot_; }
    // The split file the ids were read from; empty for carved splits and folder datasets' "all".
    const std::filesystem::path& splitFile() const { return splitFile_; }
    const std::vector<ClassInfo>& classes() const { return classes_; }
    int numClasses() const { return static_cast<int>(classes_.size()); }
    const std::vector<SampleFiles>& samples() const { return samples_; }
    std::size_t size() const { return samples_.size(); }

    // Decodes a mask file into class indices as this dataset's format defines them.
    // Throws FileError when the file cannot be read; value problems are counted, not thrown.
    DecodedMask decodeMask(const std::filesystem::path& path) const;

    // Loads sample `index`: RGB image and validated label. Throws FileError naming the file for
    // a missing or undecodable file, a size mismatch, label values outside [0, classes) ∪ {255}
    // or unknown mask colours.
    LabeledImage load(std::size_t index) const;

private:
    Dataset() = default;
    DatasetSpec spec_;
    std::filesystem::path resolvedRoot_;
    std::filesystem::path splitFile_;
    std::vector<ClassInfo> classes_;
    std::vector<SampleFiles> samples_;
};

// Names of the splits a dataset offers (from split files, plus carved ones), for pickers.
std::vector<std::string> availableSplits(DatasetKind kind, const std::filesystem::path& root);

// Deterministic carve of ids into (train, val): a seeded Fisher-Yates shuffle, the first
// round(fraction * n) ids go to val; both halves keep the original order.
void carveValidation(const std::vector<std::string>& ids, double fraction, std::uint64_t seed,
                     std::vector<std::string>* train, std::vector<std::string>* val);

}  // namespace segscope::core
