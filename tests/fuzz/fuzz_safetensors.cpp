// The safetensors reader (weights.cpp readSafetensors): header length, JSON header, dtypes,
// shapes and offsets. A file it accepts must survive writeSafetensors and a second read
// unchanged (names, dtypes, shapes, bytes and metadata).
#include "fuzz_support.h"

#include "segscope/core/models/weights.h"

#include <cstring>

using namespace segscope;
namespace fs = std::filesystem;

namespace {

bool sameBytes(const torch::Tensor& a, const torch::Tensor& b) {
    const std::size_t bytes = std::size_t(a.numel()) * a.element_size();
    if (std::size_t(b.numel()) * b.element_size() != bytes) return false;
    return bytes == 0 || std::memcmp(a.data_ptr(), b.data_ptr(), bytes) == 0;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    fuzz::initialise();
    const fs::path path = fuzz::scratchFile("input.safetensors");
    fuzz::writeFile(path, data, size);
    core::TensorMap tensors;
    std::map<std::string, std::string> metadata;
    if (!fuzz::expectCleanOutcome(path, [&] { tensors = core::readSafetensors(path, &metadata); })) return 0;

    const fs::path copy = fuzz::scratchFile("copy.safetensors");
    core::TensorMap again;
    std::map<std::string, std::string> metadataAgain;
    try {
        core::writeSafetensors(copy, tensors, metadata);
        again = core::readSafetensors(copy, &metadataAgain);
    } catch (const std::exception& e) {
        fuzz::finding(std::string("an accepted file does not round-trip: ") + e.what());
    }
    if (again.size() != tensors.size() || metadataAgain != metadata)
        fuzz::finding("round trip changed the tensor names or the metadata");
    for (const auto& [name, tensor] : tensors) {
        const auto it = again.find(name);
        if (it == again.end() || it->second.scalar_type() != tensor.scalar_type() ||
            it->second.sizes() != tensor.sizes() || !sameBytes(it->second, tensor))
            fuzz::finding("round trip changed tensor '" + name + "'");
    }
    return 0;
}
