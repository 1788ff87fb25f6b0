#include "segscope/core/data/image_io.h"

#include "segscope/core/error.h"

#include <spng.h>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <new>
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

// Walks JPEG markers up to the first frame header; fills the component count, the declared
// size and whether the frame is arithmetic-coded. Returns false when the marker structure is
// cut short.
bool parseJpegFrame(const std::uint8_t* data, std::size_t size, ImageInfo* info, bool* arithmetic) {
    std::size_t pos = 2;
    while (pos + 4 <= size) {
        if (data[pos] != 0xFF) return false;
        std::uint8_t marker = data[pos + 1];
        if (marker == 0xFF) {
            ++pos;
            continue;
        }  // fill bytes
        if (marker == 0xD8 || (marker >= 0xD0 && marker <= 0xD7) || marker == 0x01) {
            pos += 2;
            continue;
        }
        const std::size_t length = (std::size_t(data[pos + 2]) << 8) | data[pos + 3];
        if (length < 2 || pos + 2 + length > size) return false;
        const bool frame = marker >= 0xC0 && marker <= 0xCF && marker != 0xC4 && marker != 0xC8 && marker != 0xCC;
        if (frame) {
            if (length < 8) return false;
            info->height = (int(data[pos + 5]) << 8) | data[pos + 6];
            info->width = (int(data[pos + 7]) << 8) | data[pos + 8];
            info->channelsOnDisk = data[pos + 9];
            info->cmyk = info->channelsOnDisk == 4;
            *arithmetic = marker >= 0xC9;
            return true;
        }
        pos += 2 + length;
    }
    return false;
}

std::uint32_t readBe32(const std::uint8_t* p) {
    return (std::uint32_t(p[0]) << 24) | (std::uint32_t(p[1]) << 16) | (std::uint32_t(p[2]) << 8) | p[3];
}
std::uint32_t readLe32(const std::uint8_t* p) {
    return (std::uint32_t(p[3]) << 24) | (std::uint32_t(p[2]) << 16) | (std::uint32_t(p[1]) << 8) | p[0];
}
std::uint16_t readLe16(const std::uint8_t* p) {
    return static_cast<std::uint16_t>(p[0] | (p[1] << 8));
}

std::uint32_t crc32(const std::uint8_t* data, std::size_t size) {
    static const auto table = [] {
        std::array<std::uint32_t, 256> t{};
        for (std::uint32_t n = 0; n < 256; ++n) {
            std::uint32_t c = n;
            for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
            t[n] = c;
        }
        return t;
    }();
    std::uint32_t c = 0xFFFFFFFFu;
    for (std::size_t i = 0; i < size; ++i) c = table[(c ^ data[i]) & 0xFF] ^ (c >> 8);
    return c ^ 0xFFFFFFFFu;
}

std::string chunkName(const std::uint8_t* type) {
    std::string name;
    for (int i = 0; i < 4; ++i) name += std::isalpha(type[i]) ? char(type[i]) : '?';
    return name;
}

struct PngLayout {
    std::uint32_t width = 0, height = 0;
    int bitDepth = 0, colorType = 0;
    std::uint64_t idatBytes = 0;
};

// Walks every chunk: IHDR first, lengths inside the file, every CRC right, IDAT present, IEND
// reached. Throws FileError naming the first problem.
PngLayout inspectPng(const std::uint8_t* data, std::size_t size, const std::string& name) {
    if (size < 8 || std::memcmp(data, "\x89PNG\r\n\x1a\n", 8) != 0) throw FileError(name, "not a PNG");
    PngLayout layout;
    std::size_t pos = 8;
    bool header = false;
    while (true) {
        if (size - pos < 12) throw FileError(name, "truncated PNG (no IEND chunk)");
        const std::uint32_t length = readBe32(data + pos);
        const std::uint8_t* type = data + pos + 4;
        const std::string at = " at byte " + std::to_string(pos);
        if (length > 0x7FFFFFFFu)
            throw FileError(name, "corrupt PNG (chunk" + at + " declares length " + std::to_string(length) + ")");
        if (length > size - pos - 12)
            throw FileError(name, "truncated PNG (chunk " + chunkName(type) + at + " runs past the end of the file)");
        if (readBe32(data + pos + 8 + length) != crc32(type, std::size_t(length) + 4))
            throw FileError(name, "corrupt PNG (chunk " + chunkName(type) + at + " fails its CRC check)");
        if (!header) {
            if (std::memcmp(type, "IHDR", 4) != 0 || length != 13)
                throw FileError(name, "corrupt PNG (the first chunk is not a 13-byte IHDR)");
            layout.width = readBe32(type + 4);
            layout.height = readBe32(type + 8);
            layout.bitDepth = type[12];
            layout.colorType = type[13];
            header = true;
        } else if (std::memcmp(type, "IDAT", 4) == 0) {
            layout.idatBytes += length;
        } else if (std::memcmp(type, "IEND", 4) == 0) {
            break;
        }
        pos += 12 + std::size_t(length);
    }
    if (layout.idatBytes == 0) throw FileError(name, "PNG holds no image data (no IDAT chunk)");
    return layout;
}

int pngChannels(int colorType) {
    switch (colorType) {
        case 0:
            return 1;  // gray
        case 2:
            return 3;  // RGB
        case 3:
            return 1;  // palette
        case 4:
            return 2;  // gray + alpha
        case 6:
            return 4;  // RGBA
        default:
            return 0;
    }
}

// Deflate writes at most 1032 output bytes per input byte (a 258-byte match in 2 bits).
constexpr std::uint64_t kDeflateMaxRatio = 1032;

void checkPngLayout(const PngLayout& layout, const std::string& name) {
    checkImagePixels(name, layout.width, layout.height);
    const int channels = pngChannels(layout.colorType);
    if (channels == 0) throw FileError(name, "corrupt PNG (colour type " + std::to_string(layout.colorType) + ")");
    const std::uint64_t rowBytes = (std::uint64_t(layout.width) * channels * std::max(1, layout.bitDepth) + 7) / 8;
    const std::uint64_t rawBytes = std::uint64_t(layout.height) * (1 + rowBytes);
    if (rawBytes > kDeflateMaxRatio * layout.idatBytes)
        throw FileError(name, "PNG declares " + std::to_string(layout.width) + "x" + std::to_string(layout.height) +
                                  " pixels (" + std::to_string(rawBytes) + " bytes of rows) but holds only " +
                                  std::to_string(layout.idatBytes) + " bytes of image data, which can hold at most " +
                                  std::to_string(kDeflateMaxRatio * layout.idatBytes) + " (corrupt or hostile file)");
}

// Declared sizes of the formats OpenCV decodes besides JPEG and PNG, checked against the pixel
// limit and, for uncompressed data, against the bytes the file holds.
void checkBmp(const std::uint8_t* data, std::size_t size, const std::string& name, ImageInfo& info) {
    if (size < 26) throw FileError(name, "truncated BMP (no header)");
    const std::uint32_t dataOffset = readLe32(data + 10);
    const std::uint32_t headerSize = readLe32(data + 14);
    std::int64_t width = 0, height = 0;
    std::uint32_t bitsPerPixel = 0, compression = 0;
    if (headerSize == 12) {
        width = readLe16(data + 18);
        height = readLe16(data + 20);
        bitsPerPixel = readLe16(data + 24);
    } else {
        if (size < 34) throw FileError(name, "truncated BMP (no header)");
        width = static_cast<std::int32_t>(readLe32(data + 18));
        height = static_cast<std::int32_t>(readLe32(data + 22));
        bitsPerPixel = readLe16(data + 28);
        compression = readLe32(data + 30);
    }
    if (height < 0) height = -height;  // top-down rows
    if (width <= 0 || height <= 0)
        throw FileError(name, "corrupt BMP (declares " + std::to_string(width) + "x" + std::to_string(height) + ")");
    checkImagePixels(name, std::uint64_t(width), std::uint64_t(height));
    info.width = int(width);
    info.height = int(height);
    const bool uncompressed = compression == 0 || compression == 3 || compression == 6;
    if (uncompressed && bitsPerPixel > 0) {
        const std::uint64_t stride = ((std::uint64_t(width) * bitsPerPixel + 31) / 32) * 4;
        const std::uint64_t available = size > dataOffset ? size - dataOffset : 0;
        if (stride * std::uint64_t(height) > available)
            throw FileError(name, "truncated BMP (declares " + std::to_string(width) + "x" + std::to_string(height) +
                                      " pixels, " + std::to_string(stride * std::uint64_t(height)) +
                                      " bytes, but holds " + std::to_string(available) + ")");
    }
}

void checkTiff(const std::uint8_t* data, std::size_t size, const std::string& name, ImageInfo& info) {
    const bool little = data[0] == 'I';
    auto u16 = [&](std::size_t at) -> std::uint32_t {
        return little ? std::uint32_t(data[at] | (data[at + 1] << 8)) : std::uint32_t((data[at] << 8) | data[at + 1]);
    };
    auto u32 = [&](std::size_t at) -> std::uint32_t { return little ? readLe32(data + at) : readBe32(data + at); };
    if (size < 8) throw FileError(name, "truncated TIFF (no header)");
    const std::uint32_t ifd = u32(4);
    if (ifd < 8 || std::uint64_t(ifd) + 2 > size) throw FileError(name, "truncated TIFF (no image directory)");
    const std::uint32_t entries = u16(ifd);
    if (std::uint64_t(ifd) + 2 + std::uint64_t(entries) * 12 > size)
        throw FileError(name, "truncated TIFF (image directory runs past the end of the file)");
    std::uint64_t width = 0, height = 0;
    for (std::uint32_t i = 0; i < entries; ++i) {
        const std::size_t entry = ifd + 2 + std::size_t(i) * 12;
        const std::uint32_t tag = u16(entry), type = u16(entry + 2);
        const std::uint32_t value = type == 3 ? u16(entry + 8) : u32(entry + 8);
        if (tag == 256) width = value;
        if (tag == 257) height = value;
    }
    if (width == 0 || height == 0) throw FileError(name, "corrupt TIFF (no image width or height)");
    checkImagePixels(name, width, height);
    info.width = int(width);
    info.height = int(height);
}

void checkWebp(const std::uint8_t* data, std::size_t size, const std::string& name, ImageInfo& info) {
    if (size < 30) throw FileError(name, "truncated WebP (no header)");
    std::uint64_t width = 0, height = 0;
    if (std::memcmp(data + 12, "VP8 ", 4) == 0) {
        width = readLe16(data + 26) & 0x3FFF;
        height = readLe16(data + 28) & 0x3FFF;
    } else if (std::memcmp(data + 12, "VP8L", 4) == 0) {
        const std::uint32_t bits = readLe32(data + 21);
        width = (bits & 0x3FFF) + 1;
        height = ((bits >> 14) & 0x3FFF) + 1;
    } else if (std::memcmp(data + 12, "VP8X", 4) == 0) {
        width = (std::uint64_t(data[24]) | (std::uint64_t(data[25]) << 8) | (std::uint64_t(data[26]) << 16)) + 1;
        height = (std::uint64_t(data[27]) | (std::uint64_t(data[28]) << 8) | (std::uint64_t(data[29]) << 16)) + 1;
    } else {
        throw FileError(name, "corrupt WebP (unknown first chunk)");
    }
    checkImagePixels(name, width, height);
    info.width = int(width);
    info.height = int(height);
}

std::uint64_t usableMemoryBytes() {
    const long pages = sysconf(_SC_PHYS_PAGES), pageSize = sysconf(_SC_PAGE_SIZE);
    std::uint64_t bytes = pages > 0 && pageSize > 0 ? std::uint64_t(pages) * std::uint64_t(pageSize) : 0;
    // A container's memory limit (cgroup v2, then v1) is what an allocation actually meets.
    for (const char* file : {"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"}) {
        std::ifstream in(file);
        std::string text;
        if (!(in >> text) || text.empty() || !std::isdigit(static_cast<unsigned char>(text[0]))) continue;
        const std::uint64_t limit = std::strtoull(text.c_str(), nullptr, 10);
        if (limit > 0 && (bytes == 0 || limit < bytes)) bytes = limit;
    }
    return bytes;
}

bool jpegHasEndMarker(const std::uint8_t* data, std::size_t size) {
    // Real files sometimes carry padding after EOI; look in the tail only.
    const std::size_t window = std::min<std::size_t>(size, 64 * 1024);
    const std::size_t start = size - window;
    for (std::size_t i = size; i-- > start + 1;)
        if (data[i - 1] == 0xFF && data[i] == 0xD9) return true;
    return false;
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

}  // namespace

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
        case ImageFormat::Jpeg:
            return "JPEG";
        case ImageFormat::Png:
            return "PNG";
        case ImageFormat::Bmp:
            return "BMP";
        case ImageFormat::Tiff:
            return "TIFF";
        case ImageFormat::Webp:
            return "WebP";
        case ImageFormat::Unknown:
            break;
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

std::uint64_t imagePixelLimit() {
    static const std::uint64_t limit = [] {
        if (const char* text = std::getenv("SEGSCOPE_MAX_IMAGE_PIXELS"); text && *text) {
            char* end = nullptr;
            const unsigned long long value = std::strtoull(text, &end, 10);
            if (end && *end == 0 && value > 0) return std::uint64_t(value);
        }
        constexpr std::uint64_t kCeiling = std::uint64_t(1) << 27;  // 134 Mpx, e.g. 11585 x 11585
        const std::uint64_t memory = usableMemoryBytes();
        // Decoding, colour conversion and the first transforms hold about 32 bytes per pixel.
        return memory > 0 ? std::max<std::uint64_t>(1 << 20, std::min(kCeiling, memory / 32)) : kCeiling;
    }();
    return limit;
}

void checkImagePixels(const std::string& name, std::uint64_t width, std::uint64_t height) {
    const std::string size = std::to_string(width) + "x" + std::to_string(height);
    if (width == 0 || height == 0) throw FileError(name, "declares an empty image (" + size + ")");
    const std::uint64_t limit = imagePixelLimit();
    if (width > limit || height > limit || width * height > limit)
        throw FileError(name, "declares " + size + " pixels, more than the limit of " + std::to_string(limit) +
                                  " pixels for this machine (set SEGSCOPE_MAX_IMAGE_PIXELS to change it)");
}

std::vector<std::uint8_t> readFileBytes(const std::filesystem::path& path) {
    struct stat status {};
    if (::stat(path.c_str(), &status) != 0) {
        const int error = errno;
        if (error == ENOENT || error == ENOTDIR) throw FileError(path.string(), "does not exist");
        throw FileError(path.string(), std::string("cannot be read: ") + std::strerror(error));
    }
    if (S_ISDIR(status.st_mode)) throw FileError(path.string(), "is a directory, not a file");
    if (!S_ISREG(status.st_mode)) throw FileError(path.string(), "is not a regular file");
    std::ifstream in(path, std::ios::binary | std::ios::ate);
    if (!in) {
        const int error = errno;
        throw FileError(path.string(), std::string("cannot be read: ") + std::strerror(error ? error : EACCES));
    }
    const std::streamsize size = in.tellg();
    if (size < 0) throw FileError(path.string(), "cannot be read");
    std::vector<std::uint8_t> bytes;
    try {
        bytes.resize(static_cast<std::size_t>(size));
    } catch (const std::bad_alloc&) {
        throw FileError(path.string(), "too large to read into memory (" + std::to_string(size) + " bytes)");
    }
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
        case ImageFormat::Jpeg: {
            bool arithmetic = false;
            if (!parseJpegFrame(bytes.data(), bytes.size(), &info, &arithmetic))
                throw FileError(name, "truncated or corrupt JPEG (no frame header)");
            if (!jpegHasEndMarker(bytes.data(), bytes.size()))
                throw FileError(name, "truncated JPEG (no end-of-image marker)");
            checkImagePixels(name, std::uint64_t(info.width), std::uint64_t(info.height));
            // Huffman coding spends at least one bit on each 8x8 block of the full-resolution
            // component, so the file holds at least width * height / 512 bytes.
            const std::uint64_t pixels = std::uint64_t(info.width) * std::uint64_t(info.height);
            if (!arithmetic && pixels > 512 * std::uint64_t(bytes.size()))
                throw FileError(name,
                                "JPEG declares " + std::to_string(info.width) + "x" + std::to_string(info.height) +
                                    " pixels but its " + std::to_string(bytes.size()) + " bytes can hold at most " +
                                    std::to_string(512 * std::uint64_t(bytes.size())) + " (corrupt or hostile file)");
            break;
        }
        case ImageFormat::Png: {
            const PngLayout layout = inspectPng(bytes.data(), bytes.size(), name);
            checkPngLayout(layout, name);
            info.width = int(layout.width);
            info.height = int(layout.height);
            switch (layout.colorType) {
                case 0:
                    info.channelsOnDisk = 1;
                    break;
                case 4:
                    info.channelsOnDisk = 2;
                    break;
                case 6:
                    info.channelsOnDisk = 4;
                    break;
                default:
                    info.channelsOnDisk = 3;
                    break;
            }
            break;
        }
        case ImageFormat::Bmp:
            checkBmp(bytes.data(), bytes.size(), name, info);
            break;
        case ImageFormat::Tiff:
            checkTiff(bytes.data(), bytes.size(), name, info);
            break;
        case ImageFormat::Webp:
            checkWebp(bytes.data(), bytes.size(), name, info);
            break;
    }
    cv::Mat rgb;
    try {
        const cv::Mat bgr = cv::imdecode(bytes, cv::IMREAD_COLOR | cv::IMREAD_IGNORE_ORIENTATION);
        if (bgr.empty() || bgr.type() != CV_8UC3)
            throw FileError(name, std::string("cannot decode ") + imageFormatName(info.format) + " data");
        cv::cvtColor(bgr, rgb, cv::COLOR_BGR2RGB);
    } catch (const cv::Exception& e) {
        throw FileError(name, std::string("cannot decode ") + imageFormatName(info.format) + " data: " + e.what());
    } catch (const std::bad_alloc&) {
        throw FileError(name, "out of memory decoding a " + std::to_string(info.width) + "x" +
                                  std::to_string(info.height) + " " + imageFormatName(info.format) + " image");
    }
    if (infoOut) *infoOut = info;
    return rgb;
}

cv::Mat readImageRgb(const std::filesystem::path& path, ImageInfo* info) {
    return decodeImageRgb(readFileBytes(path), path.string(), info);
}

namespace {

StoredMask decodeMaskPng(const std::filesystem::path& path, const std::vector<std::uint8_t>& bytes) {
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

}  // namespace

StoredMask readMaskPng(const std::filesystem::path& path) {
    const std::vector<std::uint8_t> bytes = readFileBytes(path);
    if (bytes.empty()) throw FileError(path.string(), "empty file");
    if (sniffImageFormat(bytes.data(), bytes.size()) != ImageFormat::Png)
        throw FileError(path.string(), "mask is not a PNG");
    const PngLayout layout = inspectPng(bytes.data(), bytes.size(), path.string());
    checkPngLayout(layout, path.string());
    try {
        return decodeMaskPng(path, bytes);
    } catch (const cv::Exception& e) {
        throw FileError(path.string(), std::string("cannot decode the mask: ") + e.what());
    } catch (const std::bad_alloc&) {
        throw FileError(path.string(), "out of memory decoding a " + std::to_string(layout.width) + "x" +
                                           std::to_string(layout.height) + " mask");
    }
}

cv::Mat colorMaskToIndices(const cv::Mat& rgb, const std::vector<ClassInfo>& classes, std::uint64_t* unknownPixels,
                           Rgb* firstUnknown) {
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
            const Rgb c =
                i < static_cast<int>(palette->size()) ? (*palette)[i] : (i == 255 ? kVocVoidColor : vocColor(i));
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
}  // namespace

void writePalettePng(const std::filesystem::path& path, const cv::Mat& indices, const std::vector<Rgb>& palette) {
    encodePng(path, indices, &palette);
}

void writeGrayPng(const std::filesystem::path& path, const cv::Mat& indices) {
    encodePng(path, indices, nullptr);
}

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

}  // namespace segscope::core
