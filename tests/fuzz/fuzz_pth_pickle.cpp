// The torch.save reader behind a valid archive: the input is the pickle (data.pkl), which this
// target wraps, with tensor records data/0 .. data/15 of 1024 bytes each, in the zip a torch.save
// writes (LibTorch's PyTorchStreamWriter), then reads with readTorchStateDict. Mutations reach the
// OrderedDict rewrite and the unpickler instead of failing at the zip layer. Every tensor that
// comes back has each byte of its storage read, so a storage that claims more bytes than its
// record holds shows up as a heap overflow.
#include "fuzz_support.h"

#include "segscope/core/models/weights.h"

#include <caffe2/serialize/inline_container.h>

#include <vector>

using namespace segscope;

namespace {

constexpr int kRecords = 16;
constexpr std::size_t kRecordBytes = 1024;

std::vector<std::uint8_t> archive(const std::uint8_t* pickle, std::size_t size) {
    std::vector<std::uint8_t> out;
    caffe2::serialize::PyTorchStreamWriter writer([&](const void* data, std::size_t n) {
        const auto* bytes = static_cast<const std::uint8_t*>(data);
        out.insert(out.end(), bytes, bytes + n);
        return n;
    });
    writer.writeRecord("data.pkl", pickle, size);
    std::vector<std::uint8_t> record(kRecordBytes);
    for (int r = 0; r < kRecords; ++r) {
        for (std::size_t i = 0; i < kRecordBytes; ++i) record[i] = std::uint8_t(r * 16 + i * 7);
        writer.writeRecord("data/" + std::to_string(r), record.data(), record.size());
    }
    writer.writeRecord("byteorder", "little", 6);
    writer.writeEndOfFile();
    return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    fuzz::initialise();
    const std::filesystem::path path = fuzz::scratchFile("pickle.pth");
    const std::vector<std::uint8_t> file = archive(data, size);
    fuzz::writeFile(path, file.data(), file.size());
    core::TensorMap tensors;
    if (!fuzz::expectCleanOutcome(path, [&] { tensors = core::readTorchStateDict(path); })) return 0;
    volatile std::uint8_t sink = 0;
    for (const auto& [name, tensor] : tensors) {
        if (!tensor.defined()) fuzz::finding("readTorchStateDict returned an undefined tensor '" + name + "'");
        const auto& storage = tensor.storage();
        const auto* bytes = static_cast<const std::uint8_t*>(storage.data());
        for (std::size_t i = 0; bytes && i < storage.nbytes(); ++i) sink = sink ^ bytes[i];
    }
    return 0;
}
