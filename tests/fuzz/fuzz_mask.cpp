// The mask decoder: readMaskPng (libspng) and what Dataset::load does with its result
// (Dataset::decodeMask: palette/gray values checked against the class count, Pets trimaps
// mapped, RGB masks mapped through the class colours), for a VOC and a Pets dataset.
#include "fuzz_support.h"

#include "segscope/core/data/dataset.h"
#include "segscope/core/data/image_io.h"

#include <fstream>

using namespace segscope;
namespace fs = std::filesystem;

SEGSCOPE_FUZZ_PNG_CRC_MUTATOR

namespace {

// Two empty datasets in the scratch folder: only their class tables and kinds matter here.
struct Datasets {
    std::shared_ptr<const core::Dataset> voc, pets;
    Datasets() {
        const fs::path vocRoot = fuzz::scratchFile("voc");
        fs::create_directories(vocRoot / "ImageSets" / "Segmentation");
        std::ofstream(vocRoot / "ImageSets" / "Segmentation" / "train.txt") << "";
        voc = core::Dataset::open({core::DatasetKind::Voc, vocRoot, "train"});
        const fs::path petsRoot = fuzz::scratchFile("pets");
        fs::create_directories(petsRoot / "images");
        fs::create_directories(petsRoot / "annotations" / "trimaps");
        std::ofstream(petsRoot / "annotations" / "trainval.txt") << "";
        core::DatasetSpec petsSpec{core::DatasetKind::Pets, petsRoot, "trainval"};
        petsSpec.petsMode = core::PetsMode::Binary;
        pets = core::Dataset::open(petsSpec);
    }
};

void checkDecoded(const core::DecodedMask& decoded, const core::StoredMask& stored) {
    if (decoded.label.type() != CV_8UC1) fuzz::finding("decodeMask returned a non-8-bit label");
    if (decoded.label.size() != stored.values.size()) fuzz::finding("decodeMask changed the mask size");
    const std::uint64_t pixels = std::uint64_t(decoded.label.total());
    if (decoded.invalidPixels > pixels || decoded.unknownColorPixels > pixels)
        fuzz::finding("decodeMask counted more problem pixels than the mask has");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    fuzz::initialise();
    static const Datasets datasets;
    const fs::path path = fuzz::scratchFile("mask.png");
    fuzz::writeFile(path, data, size);

    core::StoredMask stored;
    if (!fuzz::expectCleanOutcome(path, [&] { stored = core::readMaskPng(path); })) return 0;
    const int expectedType = stored.encoding == core::MaskEncoding::Rgb ? CV_8UC3 : CV_8UC1;
    if (stored.values.empty() || stored.values.type() != expectedType)
        fuzz::finding("readMaskPng returned an empty matrix or one of the wrong type");

    core::DecodedMask decoded;
    if (fuzz::expectCleanOutcome(path, [&] { decoded = datasets.voc->decodeMask(path); }))
        checkDecoded(decoded, stored);
    if (fuzz::expectCleanOutcome(path, [&] { decoded = datasets.pets->decodeMask(path); })) {
        checkDecoded(decoded, stored);
        if (stored.encoding == core::MaskEncoding::Rgb) fuzz::finding("a Pets dataset accepted an RGB trimap");
    }
    return 0;
}
