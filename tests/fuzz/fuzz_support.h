#pragma once
// Shared pieces of the libFuzzer targets (tests/fuzz/fuzz_*.cpp).
//
// The oracle is stricter than "does not crash": a reader given hostile bytes must either succeed
// or throw segscope::core::Error whose message names the file (the project's rule: a clear
// message naming the file, never a crash). Anything else (a sanitizer report, a signal, an
// allocation above libFuzzer's -malloc_limit_mb, a foreign exception type such as c10::Error or
// std::bad_alloc escaping, a message without the file name) aborts, so libFuzzer saves the input.
#include "segscope/core/error.h"

#include <cstddef>
#include <cstdint>
#include <exception>
#include <filesystem>
#include <string>

namespace segscope::fuzz {

// Once per process: one intra-op thread for LibTorch and OpenCV, OpenCV's logging off.
void initialise();

// A file in this process's scratch folder (on /dev/shm when it exists), removed at exit.
std::filesystem::path scratchFile(const std::string& name);
void writeFile(const std::filesystem::path& path, const std::uint8_t* data, std::size_t size);

// Prints "FUZZ FINDING: what" and aborts.
[[noreturn]] void finding(const std::string& what);

// Runs `read`; returns true when it returned normally and false when it threw an Error naming
// `path`. Every other outcome is a finding.
template <class Read>
bool expectCleanOutcome(const std::filesystem::path& path, Read&& read) {
    try {
        read();
        return true;
    } catch (const core::Error& e) {
        const std::string text = e.what();
        if (text.find(path.string()) == std::string::npos)
            finding("core::Error without the file name " + path.string() + ": " + text);
    } catch (const std::exception& e) {
        finding(std::string("an exception other than core::Error escaped: ") + e.what());
    } catch (...) {
        finding("a non-std exception escaped");
    }
    return false;
}

// Recomputes every chunk CRC of a PNG in place (a mutated chunk then passes the decoders' CRC
// check and reaches the code behind it). Stops at the first chunk that does not fit.
void fixPngCrcs(std::uint8_t* data, std::size_t size);

}  // namespace segscope::fuzz

// Targets whose inputs are PNGs define their LLVMFuzzerCustomMutator with this: libFuzzer's own
// mutation, then, for every other mutation, the chunk CRCs made valid again. Half the inputs keep
// broken CRCs, so the CRC error path stays covered too.
#define SEGSCOPE_FUZZ_PNG_CRC_MUTATOR                                                                          \
    extern "C" size_t LLVMFuzzerMutate(uint8_t* data, size_t size, size_t maxSize);                            \
    extern "C" size_t LLVMFuzzerCustomMutator(uint8_t* data, size_t size, size_t maxSize, unsigned int seed) { \
        size = LLVMFuzzerMutate(data, size, maxSize);                                                          \
        if (seed & 1u) segscope::fuzz::fixPngCrcs(data, size);                                                 \
        return size;                                                                                           \
    }
