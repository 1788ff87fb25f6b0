#include "fuzz_support.h"

#include <ATen/Parallel.h>
#include <opencv2/core.hpp>
#include <opencv2/core/utils/logger.hpp>

#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstdlib>
#include <fstream>

namespace segscope::fuzz {
namespace {

// Never destroyed: the atexit handler that removes it runs after static destructors may have.
const std::filesystem::path& scratchFolder() {
    static const std::filesystem::path* const folder = [] {
        std::filesystem::path base;
        if (const char* env = std::getenv("SEGSCOPE_FUZZ_SCRATCH"); env && *env) {
            base = env;
        } else {
            std::error_code ec;
            base = std::filesystem::is_directory("/dev/shm", ec) ? std::filesystem::path("/dev/shm")
                                                                 : std::filesystem::temp_directory_path();
        }
        auto* path = new std::filesystem::path(base / ("segscope-fuzz-" + std::to_string(::getpid())));
        std::filesystem::create_directories(*path);
        std::atexit([] {
            std::error_code ec;
            std::filesystem::remove_all(scratchFolder(), ec);
        });
        return path;
    }();
    return *folder;
}

std::uint32_t crc32(const std::uint8_t* data, std::size_t size) {
    static const auto table = [] {
        std::array<std::uint32_t, 256> t{};
        for (std::uint32_t n = 0; n < 256; ++n) {
            std::uint32_t c = n;
            for (int k = 0; k < 8; ++k) c = (c & 1u) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
            t[n] = c;
        }
        return t;
    }();
    std::uint32_t c = 0xFFFFFFFFu;
    for (std::size_t i = 0; i < size; ++i) c = table[(c ^ data[i]) & 0xFFu] ^ (c >> 8);
    return c ^ 0xFFFFFFFFu;
}

}  // namespace

void initialise() {
    static const bool done = [] {
        at::set_num_threads(1);
        cv::setNumThreads(0);
        cv::utils::logging::setLogLevel(cv::utils::logging::LOG_LEVEL_SILENT);
        return true;
    }();
    (void)done;
}

std::filesystem::path scratchFile(const std::string& name) {
    return scratchFolder() / name;
}

void writeFile(const std::filesystem::path& path, const std::uint8_t* data, std::size_t size) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
    if (!out) finding("cannot write the scratch file " + path.string());
}

void finding(const std::string& what) {
    std::fprintf(stderr, "\nFUZZ FINDING: %s\n", what.c_str());
    std::fflush(stderr);
    std::abort();
}

void fixPngCrcs(std::uint8_t* data, std::size_t size) {
    static const std::uint8_t signature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
    if (size < 8 || !std::equal(signature, signature + 8, data)) return;
    std::size_t pos = 8;
    while (pos + 12 <= size) {
        const std::uint64_t length = (std::uint64_t(data[pos]) << 24) | (std::uint64_t(data[pos + 1]) << 16) |
                                     (std::uint64_t(data[pos + 2]) << 8) | data[pos + 3];
        if (length > size - pos - 12) return;
        const std::uint32_t crc = crc32(data + pos + 4, std::size_t(length) + 4);
        std::uint8_t* out = data + pos + 8 + length;
        out[0] = std::uint8_t(crc >> 24);
        out[1] = std::uint8_t(crc >> 16);
        out[2] = std::uint8_t(crc >> 8);
        out[3] = std::uint8_t(crc);
        pos += 12 + std::size_t(length);
    }
}

}  // namespace segscope::fuzz
