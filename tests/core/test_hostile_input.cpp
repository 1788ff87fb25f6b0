// Hostile and careless input (issues 18 and 20): split ids that are paths, images whose headers
// declare huge sizes, corrupt chunks, deeply nested or overflowing JSON, file names that are not
// UTF-8, demo data written over a user's files, unbounded counts on the command line, and
// messages that must name the file or field. Fixtures are written byte by byte here.
#include "segscope/core/analysis/metrics.h"
#include "segscope/core/data/dataset.h"
#include "segscope/core/data/dataset_check.h"
#include "segscope/core/data/demo_data.h"
#include "segscope/core/data/image_io.h"
#include "segscope/core/experiment.h"
#include "segscope/core/models/weights.h"
#include "segscope/core/runtime.h"
#include "segscope/core/safe_text.h"

#include "test_support.h"

#include <ATen/Parallel.h>
#include <c10/util/Exception.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <unistd.h>

#include <fstream>
#include <functional>
#include <sstream>
#include <thread>

using namespace segscope::core;
using segscope::test::runCli;
using segscope::test::runCommand;
using segscope::test::TempDir;
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

// --- byte-level fixtures -------------------------------------------------------------------

std::uint32_t testCrc(const std::string& bytes) {
    std::uint32_t crc = 0xFFFFFFFFu;
    for (unsigned char c : bytes) {
        crc ^= c;
        for (int k = 0; k < 8; ++k) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
    }
    return ~crc;
}

std::string be32(std::uint32_t v) {
    return {char(v >> 24), char((v >> 16) & 0xFF), char((v >> 8) & 0xFF), char(v & 0xFF)};
}
std::string le32(std::uint32_t v) {
    return {char(v & 0xFF), char((v >> 8) & 0xFF), char((v >> 16) & 0xFF), char(v >> 24)};
}
std::string le16(std::uint16_t v) {
    return {char(v & 0xFF), char(v >> 8)};
}

std::string pngChunk(const std::string& type, const std::string& data) {
    return be32(std::uint32_t(data.size())) + type + data + be32(testCrc(type + data));
}

// A PNG whose IHDR declares width x height (8-bit, the given colour type) and whose IDAT holds
// an empty zlib stream: 8 + 25 + 20 + 12 = 65 bytes.
std::string hugePng(std::uint32_t width, std::uint32_t height, int colorType = 0) {
    const std::string ihdr = be32(width) + be32(height) + std::string{8, char(colorType), 0, 0, 0};
    const std::string zlibEmpty("\x78\x9c\x03\x00\x00\x00\x00\x01", 8);
    return std::string("\x89PNG\r\n\x1a\n", 8) + pngChunk("IHDR", ihdr) + pngChunk("IDAT", zlibEmpty) +
           pngChunk("IEND", "");
}

// SOI, a baseline frame header declaring width x height (3 components), EOI.
std::string hugeJpeg(std::uint16_t width, std::uint16_t height) {
    std::string sof = {char(0xFF),       char(0xC0),         0, 17, 8, char(height >> 8), char(height & 0xFF),
                       char(width >> 8), char(width & 0xFF), 3};
    for (int c = 1; c <= 3; ++c) sof += std::string{char(c), 0x11, 0};
    return std::string("\xFF\xD8", 2) + sof + std::string("\xFF\xD9", 2);
}

std::string hugeBmp(std::int32_t width, std::int32_t height) {
    std::string header = "BM" + le32(54) + le32(0) + le32(54);
    header += le32(40) + le32(std::uint32_t(width)) + le32(std::uint32_t(height)) + le16(1) + le16(24) + le32(0);
    header += le32(0) + le32(2835) + le32(2835) + le32(0) + le32(0);
    return header;
}

std::string hugeTiff(std::uint32_t width, std::uint32_t height) {
    std::string t = std::string("II*\0", 4) + le32(8) + le16(2);
    t += le16(256) + le16(4) + le32(1) + le32(width);
    t += le16(257) + le16(4) + le32(1) + le32(height);
    return t + le32(0);
}

std::string hugeWebp(std::uint32_t width, std::uint32_t height) {
    std::string vp8x = std::string{0x10, 0, 0, 0};
    for (std::uint32_t v : {width - 1, height - 1})
        vp8x += std::string{char(v & 0xFF), char((v >> 8) & 0xFF), char(v >> 16)};
    std::string chunk = "VP8X" + le32(10) + vp8x;
    return "RIFF" + le32(std::uint32_t(4 + chunk.size())) + "WEBP" + chunk;
}

std::vector<std::uint8_t> bytes(const std::string& s) {
    return {s.begin(), s.end()};
}

void writeFile(const fs::path& path, const std::string& content) {
    fs::create_directories(path.parent_path());
    std::ofstream(path, std::ios::binary) << content;
}

std::string readText(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::string reasonOf(const std::function<void()>& f) {
    try {
        f();
    } catch (const FileError& e) {
        return e.reason();
    } catch (const std::exception& e) {
        return std::string("not a FileError: ") + e.what();
    }
    return "no error";
}

bool contains(const std::string& text, const std::string& part) {
    return text.find(part) != std::string::npos;
}

// Peak resident memory since the last reset, in MiB (/proc/self/clear_refs "5" resets it).
void resetPeakMemory() {
    std::ofstream("/proc/self/clear_refs") << "5";
}
long peakMemoryMiB() {
    std::ifstream in("/proc/self/status");
    for (std::string line; std::getline(in, line);)
        if (line.rfind("VmHWM:", 0) == 0) return std::stol(line.substr(6)) / 1024;
    return -1;
}
long currentMemoryMiB() {
    std::ifstream in("/proc/self/status");
    for (std::string line; std::getline(in, line);)
        if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6)) / 1024;
    return -1;
}

// A small VOC layout: 16x12 images and masks for `ids`, split files given as text.
fs::path writeVoc(const fs::path& root, const std::vector<std::string>& ids,
                  const std::vector<std::pair<std::string, std::string>>& splits) {
    cv::Mat image(12, 16, CV_8UC3, cv::Scalar(40, 90, 160));
    cv::Mat label(12, 16, CV_8UC1, cv::Scalar(0));
    label(cv::Rect(2, 2, 6, 5)).setTo(1);
    fs::create_directories(root / "JPEGImages");
    fs::create_directories(root / "SegmentationClass");
    for (const auto& id : ids) {
        writeImageRgb(root / "JPEGImages" / (id + ".jpg"), image);
        writePalettePng(root / "SegmentationClass" / (id + ".png"), label, {});
    }
    for (const auto& [split, text] : splits) writeFile(root / "ImageSets" / "Segmentation" / (split + ".txt"), text);
    return root;
}

DatasetSpec voc(const fs::path& root, const std::string& split) {
    DatasetSpec spec;
    spec.kind = DatasetKind::Voc;
    spec.root = root;
    spec.split = split;
    return spec;
}

std::string quoted(const fs::path& p) {
    return "'" + p.string() + "'";
}

}  // namespace

// --- issue 18.4: split ids are names, not paths --------------------------------------------

TEST(HostileSplitIds, PathIdsAreRefusedNamingTheSplitFileAndLine) {
    TempDir dir;
    const fs::path root = writeVoc(dir / "voc", {"a"}, {{"train", "a\n../../etc/passwd\n"}});
    const fs::path list = root / "ImageSets/Segmentation/train.txt";
    try {
        Dataset::open(voc(root, "train"));
        FAIL() << "a path id was accepted";
    } catch (const Error& e) {
        EXPECT_EQ(std::string(e.what()),
                  list.string() +
                      ":2: id '../../etc/passwd' is not a file name: split ids name files inside the "
                      "dataset and must not contain '/', '\\' or control characters, or be '.' or '..'");
    }
    for (const std::string& bad :
         std::vector<std::string>{"..", ".", "sub/a", "a\\b", "/etc/passwd", std::string("a\x01", 2)}) {
        writeFile(list, "a\n# comment\n" + bad + "\n");
        try {
            Dataset::open(voc(root, "train"));
            ADD_FAILURE() << "accepted " << bad;
        } catch (const Error& e) {
            EXPECT_TRUE(contains(e.what(), list.string() + ":3: id '")) << e.what();
        }
    }
    // Pets lists: the first field is the id, and the same rule applies.
    const fs::path pets = dir / "pets";
    fs::create_directories(pets / "images");
    writeFile(pets / "annotations" / "trainval.txt", "cat_1 1 1 1\n../cat_2 1 1 1\n");
    DatasetSpec spec;
    spec.kind = DatasetKind::Pets;
    spec.root = pets;
    spec.split = "trainval";
    try {
        Dataset::open(spec);
        FAIL();
    } catch (const Error& e) {
        EXPECT_TRUE(contains(e.what(), (pets / "annotations/trainval.txt").string() + ":2: id '../cat_2'")) << e.what();
    }
}

TEST(HostileSplitIds, SplitNamesAreNamesToo) {
    TempDir dir;
    const fs::path root = writeVoc(dir / "voc", {"a"}, {{"train", "a\n"}});
    writeFile(dir / "outside.txt", "a\n");
    try {
        Dataset::open(voc(root, "../../../outside"));
        FAIL() << "a split name with separators was accepted";
    } catch (const Error& e) {
        EXPECT_EQ(std::string(e.what()),
                  "split '../../../outside' is not a split name: it must be a file name without '/', '\\' or "
                  "control characters");
    }
}

TEST(HostileSplitIds, CheckDatasetCliReportsThePathIdWithFileAndLine) {
    TempDir dir;
    const fs::path root = writeVoc(dir / "voc", {"a"}, {{"train", "a\n../../etc/passwd\n"}});
    const auto result = runCli("check-dataset --kind voc --root " + quoted(root) + " --json");
    ASSERT_EQ(result.exitCode, 1) << result.output;
    const json report = json::parse(result.output);
    ASSERT_EQ(report["problems"].size(), 1u);
    EXPECT_TRUE(contains(report["problems"][0]["message"].get<std::string>(),
                         (root / "ImageSets/Segmentation/train.txt").string() + ":2: id '../../etc/passwd'"));
}

// --- issue 20.16: datasets ------------------------------------------------------------------

TEST(HostileDatasets, ByteOrderMarkIsDroppedAndIdsWithSpacesStayWhole) {
    TempDir dir;
    const fs::path root = writeVoc(dir / "voc", {"a", "my image"},
                                   {{"train",
                                     "\xEF\xBB\xBF"
                                     "a\r\nmy image\r\nghost one\n"}});
    const auto dataset = Dataset::open(voc(root, "train"));
    ASSERT_EQ(dataset->size(), 3u);
    EXPECT_EQ(dataset->samples()[0].id, "a");
    EXPECT_EQ(dataset->samples()[1].id, "my image");
    EXPECT_EQ(dataset->samples()[2].id, "ghost one");
    EXPECT_EQ(dataset->samples()[2].line, 3u);
    EXPECT_NO_THROW(dataset->load(0));
    EXPECT_NO_THROW(dataset->load(1));
    const DatasetReport report = checkDataset(*dataset, {1, {}, nullptr});
    ASSERT_EQ(report.problems.size(), 1u);
    EXPECT_EQ(report.problems[0].message,
              "id 'ghost one' is listed in the split but has no image and no mask (expected " +
                  (root / "JPEGImages/ghost one.jpg").string() + " and " +
                  (root / "SegmentationClass/ghost one.png").string() + ")");
}

TEST(HostileDatasets, DuplicateIdsAndTrainValOverlapAreWarnings) {
    TempDir dir;
    const fs::path root = writeVoc(dir / "voc", {"a", "b", "c"}, {{"train", "a\nb\na\nc\n"}, {"val", "c\nb\n"}});
    const fs::path train = root / "ImageSets/Segmentation/train.txt";
    const fs::path val = root / "ImageSets/Segmentation/val.txt";
    const DatasetReport report = checkDataset(*Dataset::open(voc(root, "train")), {2, {}, nullptr});
    EXPECT_TRUE(report.ok());  // warnings only
    ASSERT_EQ(report.problems.size(), 2u);
    EXPECT_EQ(report.problems[0].severity, Severity::Warning);
    EXPECT_EQ(report.problems[0].file, train.string());
    EXPECT_EQ(report.problems[0].message,
              "id 'a' is listed 2 times (lines 1, 3); each listing counts as a separate sample");
    EXPECT_EQ(report.problems[1].severity, Severity::Warning);
    EXPECT_EQ(report.problems[1].message, "2 of its ids are also in split 'val' (" + val.string() +
                                              "), e.g. 'b', 'c': scores on them are not held out");
    // And from the other side.
    const DatasetReport fromVal = checkDataset(*Dataset::open(voc(root, "val")), {1, {}, nullptr});
    ASSERT_EQ(fromVal.problems.size(), 1u);
    EXPECT_EQ(fromVal.problems[0].message, "2 of its ids are also in split 'train' (" + train.string() +
                                               "), e.g. 'c', 'b': scores on them are not held out");
}

TEST(HostileDatasets, CorruptIdatCrcAloneIsReported) {
    TempDir dir;
    const fs::path root = writeVoc(dir / "voc", {"a", "b"}, {{"train", "a\nb\n"}});
    // Flip one byte inside the IDAT data of a's mask and of b's image (a PNG named .jpg), CRCs untouched.
    auto corruptIdat = [](const fs::path& path) {
        std::string png = readText(path);
        std::size_t pos = 8;
        while (png.compare(pos + 4, 4, "IDAT") != 0) {
            const std::uint32_t length = (std::uint32_t(std::uint8_t(png[pos])) << 24) |
                                         (std::uint32_t(std::uint8_t(png[pos + 1])) << 16) |
                                         (std::uint32_t(std::uint8_t(png[pos + 2])) << 8) | std::uint8_t(png[pos + 3]);
            pos += 12 + length;
        }
        png[pos + 8 + 3] = char(png[pos + 8 + 3] ^ 0x20);
        writeFile(path, png);
        return pos;
    };
    const std::size_t maskAt = corruptIdat(root / "SegmentationClass/a.png");
    cv::Mat image(12, 16, CV_8UC3, cv::Scalar(1, 2, 3));
    writeImageRgb(root / "JPEGImages/b.png", image);
    fs::rename(root / "JPEGImages/b.png", root / "JPEGImages/b.jpg");
    const std::size_t imageAt = corruptIdat(root / "JPEGImages/b.jpg");
    const DatasetReport report = checkDataset(*Dataset::open(voc(root, "train")), {1, {}, nullptr});
    std::vector<std::string> errors;
    for (const auto& p : report.problems)
        if (p.severity == Severity::Error) errors.push_back(p.file + ": " + p.message);
    ASSERT_EQ(errors.size(), 2u);
    EXPECT_EQ(errors[0], (root / "SegmentationClass/a.png").string() + ": corrupt PNG (chunk IDAT at byte " +
                             std::to_string(maskAt) + " fails its CRC check)");
    EXPECT_EQ(errors[1], (root / "JPEGImages/b.jpg").string() + ": corrupt PNG (chunk IDAT at byte " +
                             std::to_string(imageAt) + " fails its CRC check)");
}

// --- issues 18.5, 20.11: declared sizes are checked before anything is allocated -------------

TEST(HostileImages, PixelLimitFollowsTheMachine) {
    const std::uint64_t limit = imagePixelLimit();
    EXPECT_LE(limit, std::uint64_t(1) << 27);
    const long pages = sysconf(_SC_PHYS_PAGES), pageSize = sysconf(_SC_PAGE_SIZE);
    EXPECT_LE(limit, std::max<std::uint64_t>(1 << 20, std::uint64_t(pages) * std::uint64_t(pageSize) / 32));
    EXPECT_GE(limit, std::uint64_t(1) << 20);
    EXPECT_NO_THROW(checkImagePixels("x.png", 4000, 3000));
    EXPECT_EQ(reasonOf([] { checkImagePixels("x.png", 20000, 20000); }),
              "declares 20000x20000 pixels, more than the limit of " + std::to_string(limit) +
                  " pixels for this machine (set SEGSCOPE_MAX_IMAGE_PIXELS to change it)");
    EXPECT_EQ(reasonOf([] { checkImagePixels("x.png", 0, 10); }), "declares an empty image (0x10)");
}

TEST(HostileImages, HugePngMaskOfAFewDozenBytesIsRefusedWithoutAllocating) {
    TempDir dir;
    const std::string png = hugePng(30000, 30000, 3);
    ASSERT_EQ(png.size(), 65u);
    writeFile(dir / "huge.png", png);
    const std::string limit = std::to_string(imagePixelLimit());
    resetPeakMemory();
    const long before = currentMemoryMiB();
    EXPECT_EQ(reasonOf([&] { readMaskPng(dir / "huge.png"); }),
              "declares 30000x30000 pixels, more than the limit of " + limit +
                  " pixels for this machine (set SEGSCOPE_MAX_IMAGE_PIXELS to change it)");
    EXPECT_EQ(reasonOf([&] { readImageRgb(dir / "huge.png"); }),
              "declares 30000x30000 pixels, more than the limit of " + limit +
                  " pixels for this machine (set SEGSCOPE_MAX_IMAGE_PIXELS to change it)");
    // 60000^2 (the 7.4 GB case) and the 20000^2 image given to predict: the same.
    EXPECT_TRUE(contains(reasonOf([] { decodeImageRgb(bytes(hugePng(60000, 60000, 2)), "big.png"); }),
                         "declares 60000x60000 pixels, more than the limit"));
    EXPECT_TRUE(contains(reasonOf([] { decodeImageRgb(bytes(hugePng(20000, 20000, 2)), "big.png"); }),
                         "declares 20000x20000 pixels, more than the limit"));
    const long peak = peakMemoryMiB();
    if (before >= 0 && peak >= 0) {
        EXPECT_LT(peak - before, 32) << "peak " << peak << " MiB, before " << before;
    }
}

TEST(HostileImages, PngSmallerThanDeflateCanExpandIsRefused) {
    // 8000 x 8000 gray is under the pixel limit, but 64 MB of rows cannot come from 8 bytes of IDAT.
    const std::string reason = reasonOf([] { decodeImageRgb(bytes(hugePng(8000, 8000, 0)), "x.png"); });
    EXPECT_EQ(reason,
              "PNG declares 8000x8000 pixels (64008000 bytes of rows) but holds only 8 bytes of image data, "
              "which can hold at most 8256 (corrupt or hostile file)");
    TempDir dir;
    writeFile(dir / "m.png", hugePng(8000, 8000, 3));
    EXPECT_EQ(reasonOf([&] { readMaskPng(dir / "m.png"); }),
              "PNG declares 8000x8000 pixels (64008000 bytes of rows) but holds only 8 bytes of image data, which "
              "can hold at most 8256 (corrupt or hostile file)");
}

TEST(HostileImages, EveryOpenCvFormatIsCheckedBeforeDecoding) {
    const std::string limit = std::to_string(imagePixelLimit());
    EXPECT_TRUE(contains(reasonOf([] { decodeImageRgb(bytes(hugeJpeg(20000, 20000)), "x.jpg"); }),
                         "declares 20000x20000 pixels, more than the limit"));
    // Under the pixel limit, but a Huffman-coded JPEG spends at least a bit per 8x8 block.
    const std::string jpeg = hugeJpeg(8000, 8000);
    EXPECT_EQ(reasonOf([&] { decodeImageRgb(bytes(jpeg), "x.jpg"); }),
              "JPEG declares 8000x8000 pixels but its " + std::to_string(jpeg.size()) + " bytes can hold at most " +
                  std::to_string(512 * jpeg.size()) + " (corrupt or hostile file)");
    EXPECT_TRUE(contains(reasonOf([] { decodeImageRgb(bytes(hugeBmp(30000, -30000)), "x.bmp"); }),
                         "declares 30000x30000 pixels, more than the limit"));
    EXPECT_EQ(reasonOf([] { decodeImageRgb(bytes(hugeBmp(5000, 5000)), "x.bmp"); }),
              "truncated BMP (declares 5000x5000 pixels, 75000000 bytes, but holds 0)");
    EXPECT_TRUE(contains(reasonOf([] { decodeImageRgb(bytes(hugeTiff(40000, 40000)), "x.tif"); }),
                         "declares 40000x40000 pixels, more than the limit"));
    EXPECT_TRUE(contains(reasonOf([] { decodeImageRgb(bytes(hugeWebp(16384, 16384)), "x.webp"); }),
                         "declares 16384x16384 pixels, more than the limit"));
}

TEST(HostileImages, CheckDatasetWorkersContainHugeFilesAndFailingCallbacks) {
    TempDir dir;
    const fs::path root = writeVoc(dir / "voc", {"a", "b", "c", "d"}, {{"train", "a\nb\nc\nd\n"}});
    writeFile(root / "SegmentationClass/b.png", hugePng(60000, 60000, 3));
    writeFile(root / "JPEGImages/c.jpg", hugePng(60000, 60000, 2));
    const DatasetReport report = checkDataset(*Dataset::open(voc(root, "train")), {3, {}, nullptr});
    ASSERT_EQ(report.errorCount(), 2u);
    EXPECT_TRUE(contains(report.problems[0].message, "declares 60000x60000 pixels")) << report.problems[0].message;
    EXPECT_EQ(report.problems[0].file, (root / "SegmentationClass/b.png").string());
    EXPECT_EQ(report.problems[1].file, (root / "JPEGImages/c.jpg").string());
    // A progress callback that throws on worker threads: rethrown on the caller, no std::terminate.
    CheckOptions options;
    options.threads = 3;
    options.progress = [](std::size_t, std::size_t) { throw std::runtime_error("progress failed"); };
    try {
        checkDataset(*Dataset::open(voc(root, "train")), options);
        FAIL() << "the callback's exception was swallowed";
    } catch (const std::runtime_error& e) {
        EXPECT_STREQ(e.what(), "progress failed");
    }
}

TEST(HostileImages, CliRefusesAHugeMaskWithoutASignalAndHonoursTheOverride) {
    TempDir dir;
    const fs::path root = writeVoc(dir / "voc", {"a", "b"}, {{"train", "a\nb\n"}});
    writeFile(root / "SegmentationClass/b.png", hugePng(30000, 30000, 3));
    const auto result = runCli("check-dataset --kind voc --root " + quoted(root) + " --threads 2 --json");
    ASSERT_EQ(result.exitCode, 1) << result.output;
    const json report = json::parse(result.output);
    ASSERT_EQ(report["problems"].size(), 1u);
    EXPECT_EQ(report["problems"][0]["file"], (root / "SegmentationClass/b.png").string());
    // SEGSCOPE_MAX_IMAGE_PIXELS lowers (or raises) the limit: 16x12 images are over 100 pixels.
    const auto strict = runCommand("SEGSCOPE_MAX_IMAGE_PIXELS=100 '" + segscope::test::cliExecutable() +
                                   "' check-dataset --kind voc --root " + quoted(root) + " --json");
    ASSERT_EQ(strict.exitCode, 1);
    const json strictReport = json::parse(strict.output);
    ASSERT_EQ(strictReport["problems"].size(), 4u);  // a's image and mask, b's image, b's huge mask
    EXPECT_EQ(strictReport["problems"][0]["message"],
              "declares 16x12 pixels, more than the limit of 100 pixels for this machine (set "
              "SEGSCOPE_MAX_IMAGE_PIXELS to change it)");
}

// --- issue 20.13: misleading messages -------------------------------------------------------

TEST(HostileMessages, DirectoriesAndSpecialFilesAreNamedAsSuch) {
    TempDir dir;
    EXPECT_EQ(reasonOf([&] { readFileBytes(dir.path()); }), "is a directory, not a file");
    EXPECT_EQ(reasonOf([&] { readFileBytes("/dev/null"); }), "is not a regular file");
    EXPECT_EQ(reasonOf([&] { readFileBytes(dir / "missing.png"); }), "does not exist");
    // Weights: a directory given as pretrained weights (was std::bad_alloc).
    EXPECT_EQ(reasonOf([&] { readWeightsFile(dir.path()); }), "is a directory, not a file");
    EXPECT_EQ(reasonOf([&] { loadExperiment(dir.path()); }), "is a directory, not an experiment file");
    EXPECT_EQ(reasonOf([&] { loadExperiment(dir / "nope.json"); }), "the experiment file does not exist");
}

TEST(HostileMessages, CliConfigDirectoryAndUnpickleErrorsReadCleanly) {
    TempDir dir;
    auto train = runCli("train --config " + quoted(dir.path()) + " --workspace " + quoted(dir / "ws") + " 2>&1");
    EXPECT_EQ(train.exitCode, 1) << train.output;
    EXPECT_EQ(train.output,
              "segscope-cli: error: " + dir.path().string() + ": is a directory, not an experiment file\n");
    // A torch.save archive that is not one: LibTorch's message, never its C++ backtrace.
    writeFile(dir / "bad.pth", std::string("PK\x03\x04", 4) + std::string(200, 'x'));
    writeFile(dir / "in.safetensors", "");
    auto forward =
        runCli("forward --model fcn-resnet50 --classes 2 --weights " + quoted(dir / "bad.pth") + " --input " +
               quoted(dir / "in.safetensors") + " --output " + quoted(dir / "out.safetensors") + " 2>&1");
    EXPECT_EQ(forward.exitCode, 1) << forward.output;
    EXPECT_TRUE(contains(forward.output, (dir / "bad.pth").string())) << forward.output;
    EXPECT_FALSE(contains(forward.output, "frame #")) << forward.output;
    EXPECT_FALSE(contains(forward.output, "Exception raised from")) << forward.output;
    EXPECT_EQ(std::count(forward.output.begin(), forward.output.end(), '\n'), 1) << forward.output;
}

TEST(HostileMessages, LibTorchBacktraceIsCut) {
    try {
        TORCH_CHECK(false, "shape overflow in layer x");
        FAIL();
    } catch (const c10::Error& e) {
        EXPECT_EQ(withoutBacktrace(e.what()), "shape overflow in layer x");
    }
    EXPECT_EQ(withoutBacktrace("cannot unpickle: bad opcode\nException raised from parse at x.cpp:1 (most recent "
                               "call first):\nframe #0: f()\nframe #1: g()\n"),
              "cannot unpickle: bad opcode");
    EXPECT_EQ(withoutBacktrace("plain message"), "plain message");
}

TEST(HostileMessages, UnreadableFoldersAreReportedAsUnreadable) {
    // As root, permission bits do not apply unless the capabilities that bypass them are dropped.
    std::string prefix;
    if (geteuid() == 0) {
        if (runCommand("command -v setpriv >/dev/null").exitCode != 0) GTEST_SKIP() << "root without setpriv";
        prefix = "setpriv --inh-caps=-all --bounding-set=-dac_override,-dac_read_search ";
    }
    TempDir dir;
    const fs::path root = writeVoc(dir / "voc", {"a", "b"}, {{"train", "a\nb\n"}});
    fs::permissions(root / "JPEGImages" / "b.jpg", fs::perms::none);
    auto check = runCommand(prefix + "'" + segscope::test::cliExecutable() + "' check-dataset --kind voc --root " +
                            quoted(root) + " --json");
    ASSERT_EQ(check.exitCode, 1) << check.output;
    json report = json::parse(check.output);
    ASSERT_EQ(report["problems"].size(), 1u) << check.output;
    EXPECT_EQ(report["problems"][0]["file"], (root / "JPEGImages/b.jpg").string());
    EXPECT_EQ(report["problems"][0]["message"], "cannot be read: Permission denied");
    fs::permissions(root / "JPEGImages" / "b.jpg", fs::perms::owner_read | fs::perms::owner_write);

    fs::permissions(root / "ImageSets", fs::perms::none);
    check = runCommand(prefix + "'" + segscope::test::cliExecutable() + "' check-dataset --kind voc --root " +
                       quoted(root) + " --json");
    fs::permissions(root / "ImageSets", fs::perms::owner_all);
    ASSERT_EQ(check.exitCode, 1) << check.output;
    report = json::parse(check.output);
    ASSERT_EQ(report["problems"].size(), 1u);
    EXPECT_EQ(report["problems"][0]["message"],
              "dataset folder " + (root / "ImageSets/Segmentation").string() + " cannot be read: Permission denied");
}

TEST(HostileMessages, OutOfRangeNumberNamesTheFieldAndFile) {
    TempDir dir;
    writeFile(dir / "e.json", R"({"version": 1, "dataset": {"kind": "demo"}, "model": {"id": "m"},
  "optimizer": {"betas": [0.9, 1e400]}, "training": {"epochs": 1}})");
    try {
        loadExperiment(dir / "e.json");
        FAIL();
    } catch (const ExperimentError& e) {
        ASSERT_EQ(e.errors().size(), 1u);
        EXPECT_EQ(e.errors()[0].path, "optimizer.betas[1]");
        EXPECT_EQ(e.errors()[0].message,
                  "number 1e400 at line 2 is out of range (larger than any number a double holds)");
        EXPECT_TRUE(contains(e.what(), (dir / "e.json").string())) << e.what();
    }
    Experiment experiment = parseExperiment(json::parse(R"({"version": 1, "dataset": {"kind": "demo"},
        "model": {"id": "m"}, "training": {"epochs": 1}})"));
    try {
        applyOverride(experiment, "optimizer.lr=1e400");
        FAIL();
    } catch (const ExperimentError& e) {
        ASSERT_EQ(e.errors().size(), 1u);
        EXPECT_EQ(e.errors()[0].path, "optimizer.lr");
    }
}

TEST(HostileMessages, LongValuesAreTruncatedInMessages) {
    json doc =
        json::parse(R"({"version": 1, "dataset": {"kind": "demo"}, "model": {"id": "m"}, "training": {"epochs": 1}})");
    doc["name"] = std::string(1 << 20, 'n');
    doc["training"]["batch_size"] = std::string(1 << 20, '7');
    try {
        parseExperiment(doc);
        FAIL();
    } catch (const ExperimentError& e) {
        ASSERT_EQ(e.errors().size(), 2u);
        EXPECT_EQ(e.errors()[0].path, "name");
        EXPECT_EQ(e.errors()[0].message.rfind("must be at most 1000 bytes, got 1048576: \"nnn", 0), 0u);
        EXPECT_EQ(e.errors()[1].path, "training.batch_size");
        EXPECT_LT(std::string(e.what()).size(), 600u);
    }
    // A 1 GB experiment (the 1 GB run name): refused by its size before it is read.
    TempDir dir;
    writeFile(dir / "huge.json", "{\"name\": \"");
    fs::resize_file(dir / "huge.json", std::uintmax_t(1) << 30);  // sparse
    EXPECT_EQ(reasonOf([&] { loadExperiment(dir / "huge.json"); }),
              "is 1073741824 bytes; an experiment file is at most 4 MiB");
    EXPECT_EQ(truncateForMessage("abcdef", 4), "abcd\xE2\x80\xA6 (6 bytes)");
    EXPECT_EQ(truncateForMessage("\xC3\xA9\xC3\xA9", 3), "\xC3\xA9\xE2\x80\xA6 (4 bytes)");  // never splits é
    EXPECT_EQ(jsonForMessage(json::parse("[1,[2,[3,[4]]],{\"a\":{\"b\":{}}}]")), "[1,[2,[...]],{\"a\":{...}}]");
}

// --- issue 20.10: deeply nested JSON --------------------------------------------------------

TEST(HostileJson, HundredThousandLevelsAreRefusedWhileParsing) {
    TempDir dir;
    const std::string deep = std::string(100000, '[') + std::string(100000, ']');
    writeFile(dir / "deep.json", deep);
    std::string path;
    for (int i = 0; i < 64; ++i) path += "[0]";
    EXPECT_EQ(reasonOf([&] { loadExperiment(dir / "deep.json"); }),
              "not valid JSON: " + path + ": nested deeper than 64 levels at line 1 (an experiment is 3 levels deep)");
    writeFile(dir / "deep-root.json", R"({"version": 1, "dataset": {"kind": "demo", "root": )" + deep + "}}");
    const std::string reason = reasonOf([&] { loadExperiment(dir / "deep-root.json"); });
    EXPECT_EQ(reason.rfind("not valid JSON: dataset.root[0][0]", 0), 0u) << reason.substr(0, 200);
    // A document built in memory (not through the file parser): the echo stays bounded.
    json value = 1;
    for (int i = 0; i < 100000; ++i) {
        json wrapper = json::array();
        wrapper.push_back(std::move(value));
        value = std::move(wrapper);
    }
    json doc =
        json::parse(R"({"version": 1, "dataset": {"kind": "demo"}, "model": {"id": "m"}, "training": {"epochs": 1}})");
    doc["name"] = std::move(value);
    try {
        parseExperiment(doc);
        FAIL();
    } catch (const ExperimentError& e) {
        ASSERT_EQ(e.errors().size(), 1u);
        EXPECT_EQ(e.errors()[0].message, "must be a string, got [[[...]]]");
    }
    // --set with a deep array value.
    Experiment experiment = parseExperiment(json::parse(R"({"version": 1, "dataset": {"kind": "demo"},
        "model": {"id": "m"}, "training": {"epochs": 1}})"));
    try {
        applyOverride(experiment, "training.class_weights=" + deep);
        FAIL();
    } catch (const ExperimentError& e) {
        EXPECT_EQ(e.errors()[0].path, "training.class_weights");
    }
}

TEST(HostileJson, CliTrainOnDeepJsonExitsCleanly) {
    TempDir dir;
    writeFile(dir / "deep.json", std::string(100000, '{'));
    const auto result =
        runCli("train --config " + quoted(dir / "deep.json") + " --workspace " + quoted(dir / "ws") + " 2>&1");
    EXPECT_EQ(result.exitCode, 1) << result.output.substr(0, 500);
    EXPECT_TRUE(contains(result.output, (dir / "deep.json").string() + ": not valid JSON: "))
        << result.output.substr(0, 500);
    EXPECT_LT(result.output.size(), 1000u);
}

// --- issue 20.14: file names that are not UTF-8 ---------------------------------------------

TEST(HostileUtf8, ValidationAndReplacement) {
    EXPECT_TRUE(isValidUtf8("plain \xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80"));
    for (const std::string bad : {"\xFF", "\xC0\xAF", "\xED\xA0\x80", "\xF4\x90\x80\x80", "\xE2\x82", "\x80"})
        EXPECT_FALSE(isValidUtf8(bad)) << bad;
    std::size_t replaced = 0;
    EXPECT_EQ(toValidUtf8("a\xFF"
                          "b\xC3",
                          &replaced),
              "a\xEF\xBF\xBD"
              "b\xEF\xBF\xBD");
    EXPECT_EQ(replaced, 2u);
    const json doc = {{"file", "img\xFF.png"}, {"ok", true}};
    EXPECT_THROW((void)doc.dump(), json::type_error);
    std::size_t count = 0;
    EXPECT_EQ(dumpJson(doc, -1, &count),
              "{\"file\":\"img\xEF\xBF\xBD.png\",\"invalid_utf8_bytes_replaced\":1,\"ok\":true}");
    EXPECT_EQ(count, 1u);
    EXPECT_EQ(dumpJson(json{{"file", "fine.png"}}), "{\"file\":\"fine.png\"}");
}

TEST(HostileUtf8, MetricsJsonSurvivesANonUtf8ClassName) {
    ConfusionMatrix matrix(2);
    matrix.update(torch::tensor({0, 1, 1}, torch::kLong), torch::tensor({0, 1, 0}, torch::kLong));
    const json j = json::parse(metricsToJson(computeMetrics(matrix, {"background", "caf\xE9"})));
    EXPECT_EQ(j["per_class"][1]["name"], "caf\xEF\xBF\xBD");
    EXPECT_EQ(j["invalid_utf8_bytes_replaced"], 1);
    EXPECT_EQ(j["per_class"][0]["name"], "background");
}

TEST(HostileUtf8, CheckDatasetJsonSurvivesANonUtf8FileName) {
    TempDir dir;
    const std::string id = "img\xFF\xFE";
    const fs::path root = writeVoc(dir / "voc", {"a", id}, {{"train", "a\n" + id + "\nmissing\xC3\n"}});
    const auto result = runCli("check-dataset --kind voc --root " + quoted(root) + " --json 2>/dev/null");
    ASSERT_EQ(result.exitCode, 1) << result.output;
    const json report = json::parse(result.output);  // throws if the output is not valid JSON
    EXPECT_EQ(report["images"], 3);
    EXPECT_EQ(report["invalid_utf8_bytes_replaced"], 4);  // \xC3 in the file name and three times in the message
    ASSERT_EQ(report["problems"].size(), 1u);
    EXPECT_EQ(report["problems"][0]["file"], (root / "JPEGImages").string() + "/missing\xEF\xBF\xBD.jpg");
    const auto note = runCli("check-dataset --kind voc --root " + quoted(root) + " --json 2>&1 >/dev/null");
    EXPECT_TRUE(contains(note.output, "not valid UTF-8")) << note.output;
}

// --- issue 20.1: generated data never overwrites a user's files -----------------------------

TEST(HostileDemo, DemoDataGoesOnlyIntoEmptyOrMarkedFolders) {
    TempDir dir;
    DemoOptions options;
    options.images = 4;
    options.width = options.height = 32;
    // A user's VOC dataset, with their own classes.txt and a file named like a demo image.
    const fs::path user = writeVoc(dir / "user", {"demo_00000"}, {{"train", "demo_00000\n"}});
    writeFile(user / "classes.txt", "background\nperson\n");
    const std::string image = readText(user / "JPEGImages/demo_00000.jpg");
    EXPECT_EQ(reasonOf([&] { writeDemoDataset(user, options); }),
              "holds files SegScope did not generate (e.g. " +
                  fs::directory_iterator(user)->path().filename().string() +
                  "); demo data is written only into an empty folder or one written by demo-data (marked by "
                  ".segscope-demo): choose another folder");
    EXPECT_EQ(readText(user / "classes.txt"), "background\nperson\n");
    EXPECT_EQ(readText(user / "ImageSets/Segmentation/train.txt"), "demo_00000\n");
    EXPECT_EQ(readText(user / "JPEGImages/demo_00000.jpg"), image);
    EXPECT_FALSE(isDemoDataset(user));
    // dataset.kind demo with that root: refused the same way, nothing touched.
    Experiment e = parseExperiment(json::parse(R"({"version": 1, "dataset": {"kind": "demo"}, "model": {"id": "m"},
        "training": {"epochs": 1}})"));
    e.dataset.root = user;
    EXPECT_TRUE(contains(reasonOf([&] { prepareDemoDataset(e); }), "holds files SegScope did not generate"));
    EXPECT_EQ(readText(user / "ImageSets/Segmentation/train.txt"), "demo_00000\n");
    // A file in the way, an empty folder, a marked folder, an older SegScope's unmarked demo.
    writeFile(dir / "file", "x");
    EXPECT_EQ(reasonOf([&] { writeDemoDataset(dir / "file", options); }),
              "exists and is not a folder; refusing to write demo data");
    fs::create_directories(dir / "empty");
    EXPECT_NO_THROW(writeDemoDataset(dir / "empty", options));
    const json marker = json::parse(readText(dir / "empty" / kDemoMarkerFile));
    EXPECT_EQ(marker["complete"], true);
    EXPECT_EQ(marker["images"], 4);
    EXPECT_TRUE(isDemoDataset(dir / "empty"));
    options.seed = 9;
    EXPECT_NO_THROW(writeDemoDataset(dir / "empty", options));  // marked: rewritten
    fs::remove(dir / "empty" / kDemoMarkerFile);
    EXPECT_TRUE(isDemoDataset(dir / "empty"));  // an unmarked demo of an older SegScope
    EXPECT_NO_THROW(writeDemoDataset(dir / "empty", options));
    // A marker left by an interrupted write: present but not complete, so it is regenerated.
    writeFile(dir / "empty" / kDemoMarkerFile, R"({"generator": "segscope demo-data", "complete": false})");
    EXPECT_FALSE(isDemoDataset(dir / "empty"));
    writeFile(dir / "empty" / kDemoMarkerFile, R"({"complete": "yes"})");  // hand-edited: not complete
    EXPECT_FALSE(isDemoDataset(dir / "empty"));
    writeFile(dir / "empty" / kDemoMarkerFile, "not json");  // marked but unreadable: may be rewritten
    EXPECT_NO_THROW(writeDemoDataset(dir / "empty", options));
    EXPECT_TRUE(isDemoDataset(dir / "empty"));
}

TEST(HostileDemo, CliDemoDataRefusesAUsersFolderNamingIt) {
    TempDir dir;
    const fs::path user = writeVoc(dir / "user", {"demo_00000"}, {{"train", "demo_00000\n"}});
    const std::string image = readText(user / "JPEGImages/demo_00000.jpg");
    const auto result = runCli("demo-data --out " + quoted(user) + " --images 4 --size 32 32 2>&1");
    EXPECT_EQ(result.exitCode, 1);
    EXPECT_EQ(
        result.output.rfind("segscope-cli: error: " + user.string() + ": holds files SegScope did not generate", 0), 0u)
        << result.output;
    EXPECT_EQ(readText(user / "JPEGImages/demo_00000.jpg"), image);
}

// --- issue 20.11: counts on the command line are bounded before anything is allocated -------

TEST(HostileCounts, ThreadsAreBoundedWithAMessage) {
    const int most = maxIntraOpThreads();
    EXPECT_EQ(most, std::clamp(4 * int(std::max(1u, std::thread::hardware_concurrency())), 16, 1024));
    const auto huge = runCli("--threads 99999999 --version 2>&1");
    EXPECT_EQ(huge.exitCode, 2);
    EXPECT_EQ(huge.output.rfind("segscope-cli: --threads must be an integer from 0 (all cores) to " +
                                    std::to_string(most) + " (4 per hardware thread of this machine), got '99999999'",
                                0),
              0u)
        << huge.output.substr(0, 300);
    EXPECT_EQ(runCli("--threads -3 --version 2>/dev/null").exitCode, 2);
    EXPECT_EQ(runCli("--threads " + std::to_string(most) + " --version").exitCode, 0);
    TempDir dir;
    const auto check = runCli("check-dataset --kind voc --root " + quoted(dir.path()) + " --threads 99999999 2>&1");
    EXPECT_EQ(check.exitCode, 2);
    EXPECT_TRUE(contains(check.output, "--threads must be an integer from 0 (all cores) to 256")) << check.output;
    // The core clamps too.
    const int original = at::get_num_threads();
    setIntraOpThreads(99999999);
    EXPECT_EQ(at::get_num_threads(), most);
    at::set_num_threads(original);
}

TEST(HostileCounts, DemoImagesAndSizeAreBoundedBeforeWriting) {
    TempDir dir;
    const auto images = runCli("demo-data --out " + quoted(dir / "d") + " --images 99999999999 2>&1");
    EXPECT_EQ(images.exitCode, 2);
    EXPECT_EQ(images.output.rfind("segscope-cli: --images must be between 2 and 100000, got 99999999999", 0), 0u)
        << images.output;
    const auto size = runCli("demo-data --out " + quoted(dir / "d") + " --size 99999 32 2>&1");
    EXPECT_EQ(size.exitCode, 2);
    EXPECT_EQ(size.output.rfind("segscope-cli: --size expects two integers W H, each from 32 to 4096", 0), 0u);
    EXPECT_FALSE(fs::exists(dir / "d"));
    // Within the bounds but more than the disk holds: refused before the first file.
    DemoOptions options;
    options.images = kMaxDemoImages;
    options.width = options.height = kMaxDemoSide;
    const std::uint64_t needed = estimatedDemoBytes(options);
    EXPECT_EQ(needed, 100000ull * (2ull * 4096 * 4096 + 8192) + (1ull << 20));
    const auto space = fs::space(dir.path());
    if (space.available < needed) {
        const std::string reason = reasonOf([&] { writeDemoDataset(dir / "d", options); });
        EXPECT_EQ(reason.rfind("the demo dataset needs about " + std::to_string(needed >> 20) + " MB, only ", 0), 0u)
            << reason;
        EXPECT_TRUE(contains(reason, " MB are free there")) << reason;
        EXPECT_FALSE(fs::exists(dir / "d"));
    }
    options.images = kMaxDemoImages + 1;
    EXPECT_THROW(writeDemoDataset(dir / "d", options), Error);
    EXPECT_FALSE(fs::exists(dir / "d"));
}
