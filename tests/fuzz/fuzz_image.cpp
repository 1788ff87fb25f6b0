// The image decoder (image_io.cpp decodeImageRgb): sniffing, the JPEG/PNG structure checks and
// OpenCV's decoders behind them, on arbitrary bytes.
#include "fuzz_support.h"

#include "segscope/core/data/image_io.h"

#include <vector>

using namespace segscope;

SEGSCOPE_FUZZ_PNG_CRC_MUTATOR

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    fuzz::initialise();
    const std::vector<std::uint8_t> bytes(data, data + size);
    const std::filesystem::path name = "fuzz-input.img";
    cv::Mat rgb;
    core::ImageInfo info;
    const bool decoded =
        fuzz::expectCleanOutcome(name, [&] { rgb = core::decodeImageRgb(bytes, name.string(), &info); });
    if (decoded) {
        if (rgb.empty() || rgb.type() != CV_8UC3) fuzz::finding("decodeImageRgb returned an empty or non-RGB matrix");
        if (info.format == core::ImageFormat::Unknown) fuzz::finding("decoded an image of unknown format");
    }
    return 0;
}
