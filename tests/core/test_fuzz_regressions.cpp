// Inputs the fuzz targets (tests/fuzz, scripts/fuzz.sh) found, minimised by hand and written here
// as bytes, so the main suite keeps them fixed without clang or the sanitizers. Each test names
// the target that found it and what happened before the fix.
#include "segscope/core/error.h"
#include "segscope/core/models/weights.h"

#include "test_support.h"

#include <caffe2/serialize/inline_container.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <fstream>
#include <iterator>
#include <string>

using namespace segscope;

namespace {

void writeBytes(const std::filesystem::path& path, const std::string& bytes) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    ASSERT_TRUE(out.good()) << path;
}

// A safetensors file: the 8-byte little-endian header length, the header, then the data.
std::string safetensors(const std::string& header, const std::string& data) {
    std::string out(8, '\0');
    for (int i = 0; i < 8; ++i) out[std::size_t(i)] = static_cast<char>((header.size() >> (8 * i)) & 0xFF);
    return out + header + data;
}

// The message readSafetensors / readTorchStateDict throws for `path`, or "" when it accepts it.
template <class Read>
std::string errorOf(const std::filesystem::path& path, Read read) {
    try {
        read(path);
    } catch (const core::FileError& e) {
        EXPECT_EQ(e.path(), path.string());
        return e.reason();
    }
    return "";
}

// What torch.save({"w": torch.ones(1)}) pickles (protocol 2), as data.pkl.
const std::string kOnesPickle(
    "\x80\x02}q\x00X\x01\x00\x00\x00wq\x01"
    "ctorch._utils\n_rebuild_tensor_v2\nq\x02((X\x07\x00\x00\x00storageq\x03"
    "ctorch\nFloatStorage\nq\x04X\x01\x00\x00\x00"
    "0q\x05X\x03\x00\x00\x00"
    "cpuq\x06K\x01tq\x07QK\x00K\x01\x85q\x08"
    "K\x01\x85q\t\x89"
    "ccollections\nOrderedDict\nq\n)Rq\x0btq\x0cRq\rs.",
    162);

// A torch.save zip archive holding `pickle` and one 4-byte tensor record data/0 (1.0f).
void writeTorchSave(const std::filesystem::path& path, const std::string& pickle) {
    caffe2::serialize::PyTorchStreamWriter writer(path.string());
    writer.writeRecord("data.pkl", pickle.data(), pickle.size());
    const float one = 1.0f;
    writer.writeRecord("data/0", &one, sizeof one);
    writer.writeRecord("byteorder", "little", 6);
    writer.writeEndOfFile();
}

}  // namespace

TEST(FuzzRegressions, TorchSaveFixtureShapeReadsBack) {
    // The base of the pickle cases below is sound: one tensor w = [1.0].
    test::TempDir dir;
    writeTorchSave(dir / "ones.pth", kOnesPickle);
    const core::TensorMap tensors = core::readTorchStateDict(dir / "ones.pth");
    ASSERT_EQ(tensors.size(), 1u);
    EXPECT_EQ(tensors.at("w").numel(), 1);
    EXPECT_EQ(tensors.at("w").item<float>(), 1.0f);
}

TEST(FuzzRegressions, SafetensorsFloatDimensionIsRefusedNotCast) {
    // fuzz_safetensors: a shape entry of 3.46e19 (a float to nlohmann) was cast to int64_t, which
    // is undefined behaviour (UBSan: "outside the range of representable values of type 'long'").
    test::TempDir dir;
    writeBytes(dir / "f.safetensors",
               safetensors(R"({"a":{"dtype":"I16","shape":[2,34611686018427387904,12],"data_offsets":[0,12]}})",
                           std::string(12, '\0')));
    EXPECT_EQ(errorOf(dir / "f.safetensors", [](const auto& p) { core::readSafetensors(p); }),
              "tensor 'a' has a shape that is not a list of integers");
    writeBytes(dir / "o.safetensors",
               safetensors(R"({"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2.5]}})", std::string(2, '\0')));
    EXPECT_EQ(errorOf(dir / "o.safetensors", [](const auto& p) { core::readSafetensors(p); }),
              "tensor 'a' has a data_offsets that is not a list of integers");
}

TEST(FuzzRegressions, SafetensorsHugeShapeIsRefusedBeforeAllocating) {
    // A 100000 x 100000 F32 tensor in an 8-byte data section: torch::empty used to allocate its
    // 40 GB before the byte count was compared (fuzz_safetensors, -malloc_limit_mb).
    test::TempDir dir;
    writeBytes(
        dir / "big.safetensors",
        safetensors(R"({"a":{"dtype":"F32","shape":[100000,100000],"data_offsets":[0,8]}})", std::string(8, '\0')));
    EXPECT_EQ(errorOf(dir / "big.safetensors", [](const auto& p) { core::readSafetensors(p); }),
              "tensor 'a' has 8 bytes, its shape needs 40000000000");
    // 2^32 * 2^32 * 2^32 * 4 bytes does not fit in 64 bits.
    writeBytes(dir / "overflow.safetensors",
               safetensors(R"({"a":{"dtype":"F32","shape":[4294967296,4294967296,4294967296],"data_offsets":[0,8]}})",
                           std::string(8, '\0')));
    EXPECT_EQ(errorOf(dir / "overflow.safetensors", [](const auto& p) { core::readSafetensors(p); }),
              "tensor 'a' has a shape whose size overflows 64 bits");
}

TEST(FuzzRegressions, TorchSaveStorageLargerThanItsRecordIsRefused) {
    // fuzz_pth: the pickle's storage element count (K\x01 after 'cpu') changed to 64; LibTorch
    // sized the storage from the pickle (256 bytes) over a 4-byte record: a heap-buffer-overflow
    // read for whoever used the tensor.
    test::TempDir dir;
    std::string pickle = kOnesPickle;
    const std::size_t count = pickle.find("cpuq\x06K\x01", 0, 7);
    ASSERT_NE(count, std::string::npos);
    pickle[count + 6] = '\x40';
    writeTorchSave(dir / "lying.pth", pickle);
    EXPECT_EQ(errorOf(dir / "lying.pth", [](const auto& p) { core::readTorchStateDict(p); }),
              "tensor 'w' claims 256 bytes of storage, its record holds 4");
}

TEST(FuzzRegressions, TorchSaveDeclaredStringLengthIsCheckedBeforeUnpickling) {
    // fuzz_pth: a BINUNICODE ('X') declaring 2^31 - 1 bytes in a tiny pickle; LibTorch's
    // unpickler allocated the declared length before finding the bytes missing.
    test::TempDir dir;
    writeTorchSave(dir / "long.pth", std::string("\x80\x02X\xff\xff\xff\x7f"
                                                 "abc.",
                                                 11));
    EXPECT_EQ(errorOf(dir / "long.pth", [](const auto& p) { core::readTorchStateDict(p); }),
              "the pickle is truncated: opcode 88 at byte 2 needs 2147483652 bytes, 9 remain");
}

TEST(FuzzRegressions, TorchSaveMemoIdBeyondThePickleIsRefused) {
    // fuzz_pth_pickle: LONG_BINPUT ('r') to memo entry 0xfffffff0; LibTorch resized its memo
    // table to that id (16 bytes an entry: 64 GB).
    test::TempDir dir;
    writeTorchSave(dir / "memo.pth", std::string("\x80\x02}r\xf0\xff\xff\xff.", 9));
    EXPECT_EQ(errorOf(dir / "memo.pth", [](const auto& p) { core::readTorchStateDict(p); }),
              "the pickle stores memo entry 4294967280, more than a 9-byte pickle can hold");
}

TEST(FuzzRegressions, TorchSaveEmptyPickleIsAnError) {
    // fuzz_pth_pickle's first input: an empty data.pkl made the read callback call memcpy with a
    // null source (UBSan: "null pointer passed as argument 2").
    test::TempDir dir;
    writeTorchSave(dir / "empty.pth", "");
    const std::string reason = errorOf(dir / "empty.pth", [](const auto& p) { core::readTorchStateDict(p); });
    EXPECT_EQ(reason.rfind("cannot unpickle: ", 0), 0u) << reason;
}

TEST(FuzzRegressions, TorchSaveVersionRecordDeclaringGigabytesIsRefused) {
    // fuzz_pth: the central directory's size of the `version` entry changed to ~4 GB.
    // PyTorchStreamReader's constructor extracts that record, allocating the declared size, before
    // any check after the constructor could run.
    test::TempDir dir;
    writeTorchSave(dir / "bomb.pth", kOnesPickle);
    std::string zip;
    {
        std::ifstream in(dir / "bomb.pth", std::ios::binary);
        zip.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    }
    bool patched = false;
    for (std::size_t at = zip.find("PK\x01\x02", 0, 4); at != std::string::npos;
         at = zip.find("PK\x01\x02", at + 4, 4)) {
        const std::size_t nameLength = std::uint8_t(zip[at + 28]) | (std::uint8_t(zip[at + 29]) << 8);
        if (zip.compare(at + 46, nameLength, "bomb/version") != 0) continue;
        for (int i = 0; i < 4; ++i) zip[at + 24 + std::size_t(i)] = i == 0 ? '\xFE' : '\xFF';  // 0xFFFFFFFE
        patched = true;
    }
    ASSERT_TRUE(patched);
    writeBytes(dir / "bomb.pth", zip);
    const std::string reason = errorOf(dir / "bomb.pth", [](const auto& p) { core::readTorchStateDict(p); });
    EXPECT_EQ(reason.rfind("zip entry 'bomb/version' declares 4294967294 bytes, more than the " +
                               std::to_string(zip.size()) + "-byte archive holds",
                           0),
              0u)
        << reason;
}

TEST(FuzzRegressions, TinyZipWithAZip64LocatorIsAnError) {
    // fuzz_pth, against the central-directory check above: a 52-byte "archive" whose end record
    // points at a zip64 locator; the check computed `size - 56` unsigned and read far outside
    // the file (SEGV).
    test::TempDir dir;
    writeBytes(dir / "tiny.pth",
               std::string("\x50\x4b\x03\x50\x4b\x06\x07\x00\x00\x00\x00\x61\x0a\x00\x00\xff\xff\xff\xf3\x01\x00\x00"
                           "\x00\x50\x4b\x05\x06\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x02"
                           "\x00\x00\xb8\x07\x00\x00\x00\x00",
                           52));
    const std::string reason = errorOf(dir / "tiny.pth", [](const auto& p) { core::readTorchStateDict(p); });
    EXPECT_EQ(reason.rfind("cannot unpickle: ", 0), 0u) << reason;
}
