// The torch.save reader as the application reaches it (weights.cpp readWeightsFile): content
// dispatch, then the zip archive (LibTorch's PyTorchStreamReader), the OrderedDict rewrite of the
// pickle and LibTorch's Unpickler. Raw bytes: mutations mostly exercise the zip layer; the
// pth_pickle target wraps mutated pickles in a valid archive to reach the unpickling.
#include "fuzz_support.h"

#include "segscope/core/models/weights.h"

using namespace segscope;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    fuzz::initialise();
    const std::filesystem::path path = fuzz::scratchFile("input.pth");
    fuzz::writeFile(path, data, size);
    core::TensorMap tensors;
    if (fuzz::expectCleanOutcome(path, [&] { tensors = core::readWeightsFile(path); })) {
        // Every byte of every storage is read: a storage claiming more than its record holds
        // shows up as a heap overflow.
        volatile std::uint8_t sink = 0;
        for (const auto& [name, tensor] : tensors) {
            if (!tensor.defined()) fuzz::finding("readWeightsFile returned an undefined tensor '" + name + "'");
            const auto& storage = tensor.storage();
            const auto* bytes = static_cast<const std::uint8_t*>(storage.data());
            for (std::size_t i = 0; bytes && i < storage.nbytes(); ++i) sink = sink ^ bytes[i];
        }
    }
    return 0;
}
