#include "segscope/core/image_io.h"

#include "segscope/core/error.h"

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <spng.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <memory>
#include <unordered_map>

namespace segscope::core {
namespace {

struct SpngDeleter {
    void operator()(spng_ctx* ctx) const { spng_ctx_free(ctx); }
};
using SpngContext = std::unique_ptr<spng_ctx, SpngDeleter>;

std::string lowerExtension(const std::filesystem::path& path) {
    std::string ext = path.extension().string();
    std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
    return ext;
}

// Walks JPEG markers up to the first frame header; fills the component count.
// Returns false when the marker structure is cut short.
bool parseJpegFrame(const std::uint8_t* data, std::size_t size, ImageInfo* info) {
    std::size_t pos = 2;
    while (pos + 4 <= size) {
        if (data[pos] != 0xFF) return false;
        std::uint8_t marker = data[pos + 1];
        if (marker == 0xFF) { ++pos; continue; }  // fill bytes
        if (marker == 0xD8 || (marker >= 0xD0 && marker <= 0xD7) || marker == 0x01) { pos += 2; continue; }
        const std::size_t length = (std::size_t(data[pos + 2]) << 8) | data[pos + 3];
        if (length < 2 || pos + 2 + length > size) return false;
        const bool frame = marker >= 0xC0 && marker <= 0xCF && marker != 0xC4 && marker != 0xC8 && marker != 0xCC;
        if (frame) {
            if (length < 8) return false;
            info->channelsOnDisk = data[pos + 9];
            info->cmyk = info->channelsOnDisk == 4;
            return true;
        }
        pos += 2 + length;
    }
    return false;
}

bool jpegHasEndMarker(const std::uint8_t* data, std::size_t size) {
    // Real files sometimes carry padding after EOI; look in the tail only.
    const std::size_t window = std::min<std::size_t>(size, 64 * 1024);
    const std::size_t start = size - window;
    for (std::size_t i = size; i-- > start + 1;)
        if (data[i - 1] == 0xFF && data[i] == 0xD9) return true;
    return false;
}

bool pngHasEnd(const std::uint8_t* data, std::size_t size) {
    static const std::uint8_t iend[] = {'I', 'E', 'N', 'D'};
    const std::size_t window = std::min<std::size_t>(size, 4096);
    return std::search(data + size - window, data + size, iend, iend + 4) != data + size;
}

[[noreturn]] void throwSpng(const std::filesystem::path& path, const char* what, int code) {
    throw FileError(path.string(), std::string(what) + ": " + spng_strerror(code));
}

// Expands packed 1/2/4-bit samples to one byte per pixel.
cv::Mat unpackSamples(const std::vector<std::uint8_t>& packed, int width, int height, int depth) {
    cv::Mat out(height, width, CV_8UC1);
    const std::size_t rowBytes = (std::size_t(width) * depth + 7) / 8;
    const int mask = (1 << depth) - 1;
    for (int y = 0; y < height; ++y) {
        const std::uint8_t* row = packed.data() + y * rowBytes;
        auto* dst = out.ptr<std::uint8_t>(y);
        for (int x = 0; x < width; ++x) {
            const std::size_t bit = std::size_t(x) * depth;
            const int shift = 8 - depth - int(bit % 8);
            dst[x] = static_cast<std::uint8_t>((row[bit / 8] >> shift) & mask);
        }
    }
    return out;
}

} // namespace

ImageFormat sniffImageFormat(const std::uint8_t* data, std::size_t size) {
    if (size >= 3 && data[0] == 0xFF && data[1] == 0xD8 && data[2] == 0xFF) return ImageFormat::Jpeg;
    if (size >= 8 && std::memcmp(data, "\x89PNG\r\n\x1a\n", 8) == 0) return ImageFormat::Png;
    if (size >= 2 && data[0] == 'B' && data[1] == 'M') return ImageFormat::Bmp;
    if (size >= 4 && (std::memcmp(data, "II*\0", 4) == 0 || std::memcmp(data, "MM\0*", 4) == 0))
        return ImageFormat::Tiff;
    if (size >= 12 && std::memcmp(data, "RIFF", 4) == 0 && std::memcmp(data + 8, "WEBP", 4) == 0)
        return ImageFormat::Webp;
    return ImageFormat::Unknown;
}

const char* imageFormatName(ImageFormat format) {
    switch (format) {
    case ImageFormat::Jpeg: return "JPEG";
    case ImageFormat::Png: return "PNG";
    case ImageFormat::Bmp: return "BMP";
    case ImageFormat::Tiff: return "TIFF";
    case ImageFormat::Webp: return "WebP";
    case ImageFormat::Unknown: break;
    }
    return "unknown";
}

bool extensionMismatch(const std::filesystem::path& path, ImageFormat format) {
    static const std::unordered_map<std::string, ImageFormat> byExtension = {
        {".jpg", ImageFormat::Jpeg}, {".jpeg", ImageFormat::Jpeg}, {".png", ImageFormat::Png},
        {".bmp", ImageFormat::Bmp},  {".tif", ImageFormat::Tiff},  {".tiff", ImageFormat::Tiff},
        {".webp", ImageFormat::Webp}};
    const auto it = byExtension.find(lowerExtension(path));
    return it != byExtension.end() && it->second != format;
}

std::vector<std::uint8_t> readFileBytes(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary | std::ios::ate);
    if (!in) throw FileError(path.string(), std::filesystem::exists(path) ? "cannot be opened" : "does not exist");
    const std::streamsize size = in.tellg();
    if (size < 0) throw FileError(path.string(), "cannot be read");
    std::vector<std::uint8_t> bytes(static_cast<std::size_t>(size));
    in.seekg(0);
    if (size > 0 && !in.read(reinterpret_cast<char*>(bytes.data()), size))
        throw FileError(path.string(), "read failed");
    return bytes;
}

cv::Mat decodeImageRgb(const std::vector<std::uint8_t>& bytes, const std::string& name, ImageInfo* infoOut) {
    if (bytes.empty()) throw FileError(name, "empty file");
    ImageInfo info;
    info.format = sniffImageFormat(bytes.data(), bytes.size());
    switch (info.format) {
    case ImageFormat::Unknown:
        throw FileError(name, "not an image (unrecognised content)");
    case ImageFormat::Jpeg:
        if (!parseJpegFrame(bytes.data(), bytes.size(), &info))
            throw FileError(name, "truncated or corrupt JPEG (no frame header)");
        if (!jpegHasEndMarker(bytes.data(), bytes.size()))
            throw FileError(name, "truncated JPEG (no end-of-image marker)");
        break;
    case ImageFormat::Png:
        if (bytes.size() < 33) throw FileError(name, "truncated PNG (no header)");
        if (!pngHasEnd(bytes.data(), bytes.size())) throw FileError(name, "truncated PNG (no IEND chunk)");
        switch (bytes[25]) {  // IHDR colour type
        case 0: info.channelsOnDisk = 1; break;
        case 4: info.channelsOnDisk = 2; break;
        case 6: info.channelsOnDisk = 4; break;
        default: info.channelsOnDisk = 3; break;
        }
        break;
    default:
        break;
    }
    cv::Mat bgr;
    try {
        bgr = cv::imdecode(bytes, cv::IMREAD_COLOR | cv::IMREAD_IGNORE_ORIENTATION);
    } catch (const cv::Exception& e) {
        throw FileError(name, std::string("cannot decode ") + imageFormatName(info.format) + " data: " + e.what());
    }
    if (bgr.empty() || bgr.type() != CV_8UC3)
        throw FileError(name, std::string("cannot decode ") + imageFormatName(info.format) + " data");
    cv::Mat rgb;
    cv::cvtColor(bgr, rgb, cv::COLOR_BGR2RGB);
    if (infoOut) *infoOut = info;
    return rgb;
}

cv::Mat readImageRgb(const std::filesystem::path& path, ImageInfo* info) {
    return decodeImageRgb(readFileBytes(path), path.string(), info);
}

StoredMask readMaskPng(const std::filesystem::path& path) {
    const std::vector<std::uint8_t> bytes = readFileBytes(path);
    if (bytes.empty()) throw FileError(path.string(), "empty file");
    if (sniffImageFormat(bytes.data(), bytes.size()) != ImageFormat::Png)
        throw FileError(path.string(), "mask is not a PNG");
    SpngContext ctx(spng_ctx_new(0));
    if (!ctx) throw FileError(path.string(), "out of memory");
    spng_set_image_limits(ctx.get(), 1 << 16, 1 << 16);
    if (int rc = spng_set_png_buffer(ctx.get(), bytes.data(), bytes.size())) throwSpng(path, "PNG", rc);
    spng_ihdr ihdr{};
    if (int rc = spng_get_ihdr(ctx.get(), &ihdr)) throwSpng(path, "PNG header", rc);
    const int width = static_cast<int>(ihdr.width), height = static_cast<int>(ihdr.height);
    if (ihdr.bit_depth == 16) throw FileError(path.string(), "16-bit masks are not supported (expected 8-bit indices)");

    auto decode = [&](int format) {
        std::size_t size = 0;
        if (int rc = spng_decoded_image_size(ctx.get(), format, &size)) throwSpng(path, "PNG", rc);
        std::vector<std::uint8_t> out(size);
        if (int rc = spng_decode_image(ctx.get(), out.data(), out.size(), format, 0)) throwSpng(path, "PNG data", rc);
        return out;
    };

    StoredMask mask;
    switch (ihdr.color_type) {
    case SPNG_COLOR_TYPE_INDEXED:
    case SPNG_COLOR_TYPE_GRAYSCALE: {
        mask.encoding = ihdr.color_type == SPNG_COLOR_TYPE_INDEXED ? MaskEncoding::Indexed : MaskEncoding::Gray;
        // SPNG_FMT_PNG keeps the stored sample values: palette indices stay indices.
        const std::vector<std::uint8_t> raw = decode(SPNG_FMT_PNG);
        if (ihdr.bit_depth == 8)
            mask.values = cv::Mat(height, width, CV_8UC1, const_cast<std::uint8_t*>(raw.data())).clone();
        else
            mask.values = unpackSamples(raw, width, height, ihdr.bit_depth);
        break;
    }
    case SPNG_COLOR_TYPE_GRAYSCALE_ALPHA: {
        mask.encoding = MaskEncoding::Gray;
        const std::vector<std::uint8_t> raw = decode(SPNG_FMT_GA8);
        mask.values.create(height, width, CV_8UC1);
        for (int y = 0; y < height; ++y)
            for (int x = 0; x < width; ++x)
                mask.values.at<std::uint8_t>(y, x) = raw[(std::size_t(y) * width + x) * 2];
        break;
    }
    default: {
        mask.encoding = MaskEncoding::Rgb;
        const std::vector<std::uint8_t> raw = decode(SPNG_FMT_RGB8);
        mask.values = cv::Mat(height, width, CV_8UC3, const_cast<std::uint8_t*>(raw.data())).clone();
        break;
    }
    }
    return mask;
}

cv::Mat colorMaskToIndices(const cv::Mat& rgb, const std::vector<ClassInfo>& classes,
                           std::uint64_t* unknownPixels, Rgb* firstUnknown) {
    CV_Assert(rgb.type() == CV_8UC3);
    std::unordered_map<std::uint32_t, std::uint8_t> table;
    auto key = [](std::uint8_t r, std::uint8_t g, std::uint8_t b) {
        return (std::uint32_t(r) << 16) | (std::uint32_t(g) << 8) | b;
    };
    for (std::size_t i = 0; i < classes.size(); ++i)
        table.emplace(key(classes[i].color.r, classes[i].color.g, classes[i].color.b), static_cast<std::uint8_t>(i));
    table.emplace(key(kVocVoidColor.r, kVocVoidColor.g, kVocVoidColor.b), kIgnoreIndex);
    cv::Mat out(rgb.size(), CV_8UC1);
    std::uint64_t unknown = 0;
    for (int y = 0; y < rgb.rows; ++y) {
        const auto* src = rgb.ptr<std::uint8_t>(y);
        auto* dst = out.ptr<std::uint8_t>(y);
        for (int x = 0; x < rgb.cols; ++x) {
            const auto it = table.find(key(src[3 * x], src[3 * x + 1], src[3 * x + 2]));
            if (it != table.end()) {
                dst[x] = it->second;
            } else {
                if (unknown == 0 && firstUnknown) *firstUnknown = {src[3 * x], src[3 * x + 1], src[3 * x + 2]};
                ++unknown;
                dst[x] = kIgnoreIndex;
            }
        }
    }
    if (unknownPixels) *unknownPixels = unknown;
    return out;
}

namespace {
void encodePng(const std::filesystem::path& path, const cv::Mat& indices, const std::vector<Rgb>* palette) {
    CV_Assert(indices.type() == CV_8UC1);
    const cv::Mat data = indices.isContinuous() ? indices : indices.clone();
    SpngContext ctx(spng_ctx_new(SPNG_CTX_ENCODER));
    if (!ctx) throw FileError(path.string(), "out of memory");
    spng_set_option(ctx.get(), SPNG_ENCODE_TO_BUFFER, 1);
    spng_ihdr ihdr{};
    ihdr.width = static_cast<std::uint32_t>(data.cols);
    ihdr.height = static_cast<std::uint32_t>(data.rows);
    ihdr.bit_depth = 8;
    ihdr.color_type = palette ? SPNG_COLOR_TYPE_INDEXED : SPNG_COLOR_TYPE_GRAYSCALE;
    if (int rc = spng_set_ihdr(ctx.get(), &ihdr)) throwSpng(path, "PNG header", rc);
    if (palette) {
        spng_plte plte{};
        plte.n_entries = 256;
        for (int i = 0; i < 256; ++i) {
            const Rgb c = i < static_cast<int>(palette->size()) ? (*palette)[i] : (i == 255 ? kVocVoidColor : vocColor(i));
            plte.entries[i] = {c.r, c.g, c.b, 0};
        }
        if (int rc = spng_set_plte(ctx.get(), &plte)) throwSpng(path, "PNG palette", rc);
    }
    if (int rc = spng_encode_image(ctx.get(), data.data, data.total(), SPNG_FMT_PNG, SPNG_ENCODE_FINALIZE))
        throwSpng(path, "PNG encode", rc);
    std::size_t size = 0;
    int error = 0;
    std::unique_ptr<void, decltype(&std::free)> buffer(spng_get_png_buffer(ctx.get(), &size, &error), &std::free);
    if (!buffer) throwSpng(path, "PNG encode", error);
    std::ofstream out(path, std::ios::binary);
    out.write(static_cast<const char*>(buffer.get()), static_cast<std::streamsize>(size));
    if (!out) throw FileError(path.string(), "cannot write");
}
} // namespace

void writePalettePng(const std::filesystem::path& path, const cv::Mat& indices, const std::vector<Rgb>& palette) {
    encodePng(path, indices, &palette);
}

void writeGrayPng(const std::filesystem::path& path, const cv::Mat& indices) { encodePng(path, indices, nullptr); }

void writeImageRgb(const std::filesystem::path& path, const cv::Mat& rgb, int jpegQuality) {
    cv::Mat bgr;
    cv::cvtColor(rgb, bgr, cv::COLOR_RGB2BGR);
    std::vector<int> params;
    const std::string ext = lowerExtension(path);
    if (ext == ".jpg" || ext == ".jpeg") params = {cv::IMWRITE_JPEG_QUALITY, jpegQuality};
    bool ok = false;
    try {
        ok = cv::imwrite(path.string(), bgr, params);
    } catch (const cv::Exception& e) {
        throw FileError(path.string(), std::string("cannot write image: ") + e.what());
    }
    if (!ok) throw FileError(path.string(), "cannot write image");
}

} // namespace segscope::core
