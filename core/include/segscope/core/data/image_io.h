#pragma once
// Image and mask decoding by content, independent of file extensions.
//
// Images decode to 8-bit RGB (3 channels) whatever they were on disk: grayscale, CMYK and
// alpha images are converted. Masks are read with libspng so palette PNGs yield their indices
// (OpenCV would expand them to colour). All functions are thread-safe and throw FileError
// naming the file.
//
// Hostile files are contained: before any decoder allocates, the size a file declares in its
// header (PNG IHDR, JPEG frame header, BMP, TIFF and WebP headers) is checked against
// imagePixelLimit() and against what the file's bytes can possibly hold (deflate expands at
// most 1032:1, a Huffman-coded JPEG block takes at least one bit, uncompressed BMP/TIFF need
// their rows). Every PNG chunk's CRC is verified. Out-of-memory in a decoder becomes FileError.
#include "segscope/core/data/classes.h"

#include <opencv2/core.hpp>

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace segscope::core {

enum class ImageFormat { Unknown, Jpeg, Png, Bmp, Tiff, Webp };

struct ImageInfo {
    ImageFormat format = ImageFormat::Unknown;
    int channelsOnDisk = 0;  // 1 gray, 3 colour, 4 CMYK (JPEG) or RGBA (PNG)
    bool cmyk = false;       // a CMYK/YCCK JPEG
    int width = 0;           // as the header declares
    int height = 0;
};

// The most pixels one image or mask may declare: min(2^27, usable memory / 32 bytes), where
// usable memory is the machine's physical memory or, when lower, its cgroup limit. The
// environment variable SEGSCOPE_MAX_IMAGE_PIXELS (a positive integer) replaces it. Computed once.
std::uint64_t imagePixelLimit();

// Throws FileError(name, "declares WxH pixels, more than the limit ...") when width x height
// exceeds imagePixelLimit(), and when either side is 0.
void checkImagePixels(const std::string& name, std::uint64_t width, std::uint64_t height);

ImageFormat sniffImageFormat(const std::uint8_t* data, std::size_t size);
const char* imageFormatName(ImageFormat format);
// True when the file name's extension disagrees with the content (e.g. PNG named .jpg).
bool extensionMismatch(const std::filesystem::path& path, ImageFormat format);

// The whole file. Throws FileError: "does not exist", "is a directory", "is not a regular file"
// (a FIFO or device is never read), "cannot be read: REASON" (e.g. permission denied).
std::vector<std::uint8_t> readFileBytes(const std::filesystem::path& path);

// Decodes into RGB order (not OpenCV's BGR), CV_8UC3. Truncated JPEG/PNG data is an error.
cv::Mat decodeImageRgb(const std::vector<std::uint8_t>& bytes, const std::string& nameForErrors,
                       ImageInfo* info = nullptr);
cv::Mat readImageRgb(const std::filesystem::path& path, ImageInfo* info = nullptr);

enum class MaskEncoding { Indexed, Gray, Rgb };

// A mask as stored: Indexed and Gray give the stored values (CV_8UC1); Rgb gives colours
// (CV_8UC3 in R,G,B order, alpha dropped).
struct StoredMask {
    MaskEncoding encoding = MaskEncoding::Gray;
    cv::Mat values;
};

// Reads a PNG mask with libspng. 1/2/4/8-bit palette and grayscale PNGs give their values;
// 8-bit RGB(A) gives colours. 16-bit masks are rejected.
StoredMask readMaskPng(const std::filesystem::path& path);

// Maps colours to class indices through a colour table; kVocVoidColor maps to 255. Colours not
// in the table become 255 and are counted in unknownPixels (firstUnknown gets one of them).
cv::Mat colorMaskToIndices(const cv::Mat& rgb, const std::vector<ClassInfo>& classes, std::uint64_t* unknownPixels,
                           Rgb* firstUnknown);

// Writes an 8-bit palette PNG whose pixel values are the indices in `indices` (CV_8UC1).
// The palette has 256 entries: the given colours, then the VOC colour map.
void writePalettePng(const std::filesystem::path& path, const cv::Mat& indices, const std::vector<Rgb>& palette);
// Writes an 8-bit grayscale PNG of `indices` (CV_8UC1).
void writeGrayPng(const std::filesystem::path& path, const cv::Mat& indices);
// Writes an RGB image (CV_8UC3, R,G,B order) as PNG or JPEG according to the extension.
void writeImageRgb(const std::filesystem::path& path, const cv::Mat& rgb, int jpegQuality = 92);

}  // namespace segscope::core
