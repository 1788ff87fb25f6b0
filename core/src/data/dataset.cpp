#include "segscope/core/data/dataset.h"

#include "segscope/core/data/image_io.h"
#include "segscope/core/data/random.h"
#include "segscope/core/safe_text.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <map>
#include <sstream>

namespace segscope::core {
namespace fs = std::filesystem;

const char* datasetKindName(DatasetKind kind) {
    switch (kind) {
        case DatasetKind::Voc:
            return "voc";
        case DatasetKind::Pets:
            return "pets";
        case DatasetKind::Folder:
            return "folder";
    }
    return "voc";
}

std::optional<DatasetKind> parseDatasetKind(const std::string& text) {
    if (text == "voc") return DatasetKind::Voc;
    if (text == "pets") return DatasetKind::Pets;
    if (text == "folder") return DatasetKind::Folder;
    return std::nullopt;
}

const char* petsModeName(PetsMode mode) {
    switch (mode) {
        case PetsMode::Trimap:
            return "trimap";
        case PetsMode::Binary:
            return "binary";
        case PetsMode::BinaryBorderForeground:
            return "binary-border-fg";
    }
    return "trimap";
}

std::optional<PetsMode> parsePetsMode(const std::string& text) {
    if (text == "trimap") return PetsMode::Trimap;
    if (text == "binary") return PetsMode::Binary;
    if (text == "binary-border-fg") return PetsMode::BinaryBorderForeground;
    return std::nullopt;
}

void carveValidation(const std::vector<std::string>& ids, double fraction, std::uint64_t seed,
                     std::vector<std::string>* train, std::vector<std::string>* val) {
    std::vector<std::size_t> order(ids.size());
    for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
    Random random(mixSeed(seed, 0x5e9u));
    shuffleInPlace(order, random);
    const auto valCount = static_cast<std::size_t>(std::llround(std::clamp(fraction, 0.0, 1.0) * ids.size()));
    std::vector<bool> isVal(ids.size(), false);
    for (std::size_t i = 0; i < valCount; ++i) isVal[order[i]] = true;
    for (std::size_t i = 0; i < ids.size(); ++i) (isVal[i] ? val : train)->push_back(ids[i]);
}

namespace {

struct ListedId {
    std::string id;
    std::size_t line = 0;
};

// Why `path` cannot be looked at, when it exists but is not accessible (permission denied, an
// I/O error); nullopt when it is fine or simply absent.
std::optional<std::string> accessProblem(const fs::path& path) {
    std::error_code ec;
    (void)fs::status(path, ec);
    if (!ec || ec == std::errc::no_such_file_or_directory || ec == std::errc::not_a_directory) return std::nullopt;
    return ec.message();
}

void throwIfUnreadable(const fs::path& path, const std::string& what) {
    if (auto problem = accessProblem(path)) throw Error(what + " " + path.string() + " cannot be read: " + *problem);
}

// The ids of a split file: one per non-empty line that is not a comment ('#'). VOC and folder
// lists hold one id per line, taken whole (an id may contain spaces); Pets lists carry class
// columns after the id, so only their first field is the id. A UTF-8 byte-order mark before the
// first id is dropped. Ids name files inside the dataset: one holding a path separator, a
// control character, or being "." or "..", is refused with the file and line.
std::vector<ListedId> readIdList(const fs::path& path, bool firstFieldOnly) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        throwIfUnreadable(path, "split file");
        throw Error("split file " + path.string() + " cannot be opened");
    }
    std::vector<ListedId> ids;
    std::string line;
    std::size_t number = 0;
    while (std::getline(in, line)) {
        ++number;
        if (number == 1 && line.rfind("\xEF\xBB\xBF", 0) == 0) line.erase(0, 3);
        const auto isSpace = [](char c) {
            return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
        };
        std::size_t begin = 0, end = line.size();
        while (begin < end && isSpace(line[begin])) ++begin;
        while (end > begin && isSpace(line[end - 1])) --end;
        if (begin == end || line[begin] == '#') continue;
        std::string id = line.substr(begin, end - begin);
        if (firstFieldOnly) {
            std::size_t cut = 0;
            while (cut < id.size() && !isSpace(id[cut])) ++cut;
            id.resize(cut);
        }
        const std::string where = path.string() + ":" + std::to_string(number);
        const bool hasSeparator = id.find('/') != std::string::npos || id.find('\\') != std::string::npos;
        const bool hasControl =
            std::any_of(id.begin(), id.end(), [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7F; });
        if (hasSeparator || id == "." || id == ".." || hasControl)
            throw Error(where + ": id '" + truncateForMessage(id) +
                        "' is not a file name: split ids name files inside the dataset and must not contain '/', "
                        "'\\' or control characters, or be '.' or '..'");
        ids.push_back({std::move(id), number});
    }
    if (in.bad()) throw Error("split file " + path.string() + " cannot be read");
    return ids;
}

std::vector<std::string> idsOf(const std::vector<ListedId>& listed) {
    std::vector<std::string> ids;
    ids.reserve(listed.size());
    for (const auto& l : listed) ids.push_back(l.id);
    return ids;
}

// A split name becomes a file name (SPLIT.txt): the same rule as ids.
void checkSplitName(const std::string& split) {
    if (split.empty()) throw Error("split name is empty");
    if (split.size() > 200 || split.find('/') != std::string::npos || split.find('\\') != std::string::npos ||
        split == "." || split == ".." ||
        std::any_of(split.begin(), split.end(), [](char c) { return static_cast<unsigned char>(c) < 0x20; }))
        throw Error("split '" + truncateForMessage(split) +
                    "' is not a split name: it must be a file name without '/', '\\' or control characters");
}

// The file when it is there, and also when it cannot be looked at (so that reading it reports
// why, e.g. permission denied, rather than calling it missing); empty when it does not exist.
fs::path existingOrEmpty(const fs::path& path) {
    std::error_code ec;
    if (fs::is_regular_file(path, ec)) return path;
    return accessProblem(path) ? path : fs::path();
}

fs::path resolveVocRoot(const fs::path& root) {
    for (const fs::path& candidate : {root, root / "VOC2012", root / "VOCdevkit" / "VOC2012"}) {
        std::error_code ec;
        if (fs::is_directory(candidate / "ImageSets" / "Segmentation", ec)) return candidate;
        for (const fs::path& part : {candidate, candidate / "ImageSets", candidate / "ImageSets" / "Segmentation"})
            throwIfUnreadable(part, "dataset folder");
    }
    throw Error("no VOC layout under " + root.string() +
                ": expected ImageSets/Segmentation in it, in VOC2012/ or in VOCdevkit/VOC2012/");
}

fs::path resolvePetsRoot(const fs::path& root) {
    for (const fs::path& candidate : {root, root / "oxford-iiit-pet"}) {
        std::error_code ec;
        if (fs::is_directory(candidate / "annotations", ec) && fs::is_directory(candidate / "images", ec))
            return candidate;
        for (const fs::path& part : {candidate, candidate / "annotations", candidate / "images"})
            throwIfUnreadable(part, "dataset folder");
    }
    throw Error("no Oxford-IIIT Pets layout under " + root.string() + ": expected images/ and annotations/");
}

const std::vector<std::string> kImageExtensions = {".jpg", ".jpeg", ".png", ".bmp", ".JPG", ".JPEG", ".PNG"};

// Stem -> file for every image in a folder.
std::map<std::string, fs::path> indexFolder(const fs::path& dir) {
    std::map<std::string, fs::path> byStem;
    std::error_code ec;
    fs::directory_iterator it(dir, ec);
    if (ec) throw Error("dataset folder " + dir.string() + " cannot be read: " + ec.message());
    for (const auto& entry : it) {
        if (!entry.is_regular_file()) continue;
        const auto ext = entry.path().extension().string();
        if (std::find(kImageExtensions.begin(), kImageExtensions.end(), ext) == kImageExtensions.end()) continue;
        byStem.emplace(entry.path().stem().string(), entry.path());
    }
    return byStem;
}

std::vector<std::string> carvedSplit(const std::vector<std::string>& all, const DatasetSpec& spec,
                                     const std::string& split) {
    std::vector<std::string> train, val;
    carveValidation(all, spec.validationFraction, spec.validationSeed, &train, &val);
    return split == "val" ? val : train;
}

}  // namespace

std::vector<std::string> availableSplits(DatasetKind kind, const fs::path& root) {
    std::vector<std::string> splits;
    try {
        switch (kind) {
            case DatasetKind::Voc: {
                const fs::path dir = resolveVocRoot(root) / "ImageSets" / "Segmentation";
                for (const auto& entry : fs::directory_iterator(dir))
                    if (entry.path().extension() == ".txt") splits.push_back(entry.path().stem().string());
                std::sort(splits.begin(), splits.end());
                break;
            }
            case DatasetKind::Pets:
                resolvePetsRoot(root);
                splits = {"train", "val", "trainval", "test"};
                break;
            case DatasetKind::Folder: {
                const fs::path dir = root / "splits";
                std::error_code ec;
                if (fs::is_directory(dir, ec)) {
                    for (const auto& entry : fs::directory_iterator(dir))
                        if (entry.path().extension() == ".txt") splits.push_back(entry.path().stem().string());
                    std::sort(splits.begin(), splits.end());
                } else {
                    splits = {"train", "val", "all"};
                }
                break;
            }
        }
    } catch (const std::exception&) {
        splits.clear();
    }
    return splits;
}

std::shared_ptr<const Dataset> Dataset::open(const DatasetSpec& spec) {
    if (spec.root.empty()) throw Error("dataset root is empty");
    std::error_code ec;
    if (!fs::is_directory(spec.root, ec)) {
        if (auto problem = accessProblem(spec.root))
            throw Error("dataset root " + spec.root.string() + " cannot be read: " + *problem);
        throw Error("dataset root " + spec.root.string() + " is not a folder");
    }
    checkSplitName(spec.split);
    std::shared_ptr<Dataset> dataset(new Dataset());
    dataset->spec_ = spec;
    auto& samples = dataset->samples_;

    switch (spec.kind) {
        case DatasetKind::Voc: {
            const fs::path root = resolveVocRoot(spec.root);
            dataset->resolvedRoot_ = root;
            const fs::path classesFile = root / "classes.txt";
            dataset->classes_ = fs::is_regular_file(classesFile, ec) ? readClassesFile(classesFile) : vocClasses();
            // SBD's augmented set ships its own list and grayscale index masks.
            const bool aug = spec.split == "trainaug" || spec.split == "train_aug";
            fs::path listFile = root / "ImageSets" / "Segmentation" / (spec.split + ".txt");
            if (aug && !fs::is_regular_file(listFile, ec)) {
                for (const char* name : {"trainaug.txt", "train_aug.txt"})
                    if (fs::is_regular_file(root / "ImageSets" / "Segmentation" / name, ec))
                        listFile = root / "ImageSets" / "Segmentation" / name;
            }
            if (!fs::is_regular_file(listFile, ec)) {
                throwIfUnreadable(listFile, "split file");
                throw Error("split '" + spec.split + "' not found: " + listFile.string() + " does not exist");
            }
            dataset->splitFile_ = listFile;
            const fs::path maskDir = root / (aug ? "SegmentationClassAug" : "SegmentationClass");
            for (const ListedId& listed : readIdList(listFile, false)) {
                const std::string& id = listed.id;
                SampleFiles s;
                s.id = id;
                s.line = listed.line;
                s.expectedImage = root / "JPEGImages" / (id + ".jpg");
                s.expectedMask = maskDir / (id + ".png");
                s.image = existingOrEmpty(s.expectedImage);
                s.mask = existingOrEmpty(s.expectedMask);
                samples.push_back(std::move(s));
            }
            break;
        }
        case DatasetKind::Pets: {
            const fs::path root = resolvePetsRoot(spec.root);
            dataset->resolvedRoot_ = root;
            if (spec.petsMode == PetsMode::Trimap)
                dataset->classes_ = {{"background", vocColor(0)}, {"pet", vocColor(1)}, {"border", vocColor(2)}};
            else
                dataset->classes_ = {{"background", vocColor(0)}, {"pet", vocColor(1)}};
            std::vector<ListedId> ids;
            if (spec.split == "trainval" || spec.split == "test") {
                dataset->splitFile_ = root / "annotations" / (spec.split + ".txt");
                ids = readIdList(dataset->splitFile_, true);
            } else if (spec.split == "train" || spec.split == "val") {
                for (const std::string& id :
                     carvedSplit(idsOf(readIdList(root / "annotations" / "trainval.txt", true)), spec, spec.split))
                    ids.push_back({id, 0});
            } else {
                throw Error("Pets split '" + spec.split + "' is unknown: use train, val, trainval or test");
            }
            for (const ListedId& listed : ids) {
                const std::string& id = listed.id;
                SampleFiles s;
                s.id = id;
                s.line = listed.line;
                s.expectedImage = root / "images" / (id + ".jpg");
                s.expectedMask = root / "annotations" / "trimaps" / (id + ".png");
                s.image = existingOrEmpty(s.expectedImage);
                s.mask = existingOrEmpty(s.expectedMask);
                samples.push_back(std::move(s));
            }
            break;
        }
        case DatasetKind::Folder: {
            const fs::path root = spec.root;
            dataset->resolvedRoot_ = root;
            for (const fs::path& part : {root / "images", root / "masks"}) throwIfUnreadable(part, "dataset folder");
            if (!fs::is_directory(root / "images", ec) || !fs::is_directory(root / "masks", ec))
                throw Error("folder dataset " + root.string() + " needs images/ and masks/ subfolders");
            const fs::path classesFile = root / "classes.txt";
            throwIfUnreadable(classesFile, "classes file");
            if (!fs::is_regular_file(classesFile, ec))
                throw Error("folder dataset " + root.string() + " needs classes.txt (one class name per line)");
            dataset->classes_ = readClassesFile(classesFile);
            const auto images = indexFolder(root / "images");
            std::vector<std::string> all;
            for (const auto& [stem, path] : images) all.push_back(stem);
            std::vector<ListedId> ids;
            const fs::path splitFile = root / "splits" / (spec.split + ".txt");
            throwIfUnreadable(splitFile, "split file");
            if (fs::is_regular_file(splitFile, ec)) {
                dataset->splitFile_ = splitFile;
                ids = readIdList(splitFile, false);
            } else if (spec.split == "all" || spec.split == "train" || spec.split == "val") {
                for (const std::string& id : spec.split == "all" ? all : carvedSplit(all, spec, spec.split))
                    ids.push_back({id, 0});
            } else {
                throw Error("split '" + spec.split + "' not found: " + splitFile.string() + " does not exist");
            }
            for (const ListedId& listed : ids) {
                const std::string& id = listed.id;
                SampleFiles s;
                s.id = id;
                s.line = listed.line;
                const auto it = images.find(id);
                s.expectedImage = it != images.end() ? it->second : root / "images" / (id + ".jpg");
                s.expectedMask = root / "masks" / (id + ".png");
                s.image = existingOrEmpty(s.expectedImage);
                s.mask = existingOrEmpty(s.expectedMask);
                samples.push_back(std::move(s));
            }
            break;
        }
    }
    return dataset;
}

DecodedMask Dataset::decodeMask(const fs::path& path) const {
    StoredMask stored = readMaskPng(path);
    DecodedMask decoded;
    const int classes = numClasses();
    if (stored.encoding == MaskEncoding::Rgb) {
        if (spec_.kind == DatasetKind::Pets) throw FileError(path.string(), "Pets trimaps must be single-channel PNGs");
        decoded.label =
            colorMaskToIndices(stored.values, classes_, &decoded.unknownColorPixels, &decoded.firstUnknownColor);
        return decoded;
    }
    cv::Mat& label = stored.values;
    if (spec_.kind == DatasetKind::Pets) {
        // Trimap values: 1 pet, 2 background, 3 border.
        std::uint8_t lut[256];
        for (int v = 0; v < 256; ++v) lut[v] = static_cast<std::uint8_t>(v == 0 ? 254 : 253);  // invalid markers
        lut[1] = 1;
        lut[2] = 0;
        switch (spec_.petsMode) {
            case PetsMode::Trimap:
                lut[3] = 2;
                break;
            case PetsMode::Binary:
                lut[3] = kIgnoreIndex;
                break;
            case PetsMode::BinaryBorderForeground:
                lut[3] = 1;
                break;
        }
        for (int y = 0; y < label.rows; ++y) {
            auto* row = label.ptr<std::uint8_t>(y);
            for (int x = 0; x < label.cols; ++x) {
                const std::uint8_t stored = row[x];
                const bool valid = stored >= 1 && stored <= 3;
                if (!valid) {
                    if (decoded.invalidPixels == 0) decoded.firstInvalidValue = stored;
                    ++decoded.invalidPixels;
                    row[x] = kIgnoreIndex;
                } else {
                    row[x] = lut[stored];
                }
            }
        }
    } else {
        for (int y = 0; y < label.rows; ++y) {
            const auto* row = label.ptr<std::uint8_t>(y);
            for (int x = 0; x < label.cols; ++x) {
                const int v = row[x];
                if (v >= classes && v != kIgnoreIndex) {
                    if (decoded.invalidPixels == 0) decoded.firstInvalidValue = v;
                    ++decoded.invalidPixels;
                }
            }
        }
    }
    decoded.label = std::move(label);
    return decoded;
}

LabeledImage Dataset::load(std::size_t index) const {
    const SampleFiles& s = samples_.at(index);
    if (s.image.empty()) throw FileError(s.expectedImage.string(), "image listed in the split does not exist");
    if (s.mask.empty()) throw FileError(s.expectedMask.string(), "mask listed in the split does not exist");
    LabeledImage out;
    out.id = s.id;
    out.image = readImageRgb(s.image);
    DecodedMask decoded = decodeMask(s.mask);
    if (decoded.unknownColorPixels > 0) {
        const Rgb c = decoded.firstUnknownColor;
        throw FileError(s.mask.string(), std::to_string(decoded.unknownColorPixels) +
                                             " pixels have colours outside the class table, e.g. (" +
                                             std::to_string(c.r) + ", " + std::to_string(c.g) + ", " +
                                             std::to_string(c.b) + ")");
    }
    if (decoded.invalidPixels > 0) {
        throw FileError(s.mask.string(), std::to_string(decoded.invalidPixels) + " pixels have label value " +
                                             std::to_string(decoded.firstInvalidValue) +
                                             (spec_.kind == DatasetKind::Pets
                                                  ? " (trimap values must be 1, 2 or 3)"
                                                  : " outside [0, " + std::to_string(numClasses()) + ") and not 255"));
    }
    if (decoded.label.size() != out.image.size()) {
        throw FileError(s.mask.string(), "mask is " + std::to_string(decoded.label.cols) + "x" +
                                             std::to_string(decoded.label.rows) + " but its image is " +
                                             std::to_string(out.image.cols) + "x" + std::to_string(out.image.rows));
    }
    out.label = std::move(decoded.label);
    return out;
}

}  // namespace segscope::core
