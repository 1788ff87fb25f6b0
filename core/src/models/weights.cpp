#include "segscope/core/models/weights.h"

#include "segscope/core/data/image_io.h"
#include "segscope/core/error.h"

#include <torch/serialize.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <limits>
#include <map>
#include <sstream>
#include <tuple>

namespace segscope::core {
namespace {

struct DtypeName {
    const char* name;
    torch::ScalarType type;
};
const DtypeName kDtypes[] = {{"F32", torch::kFloat32}, {"F16", torch::kFloat16}, {"BF16", torch::kBFloat16},
                             {"F64", torch::kFloat64}, {"I64", torch::kInt64},   {"I32", torch::kInt32},
                             {"I16", torch::kInt16},   {"I8", torch::kInt8},     {"U8", torch::kUInt8},
                             {"BOOL", torch::kBool}};

// The safetensors layout: an 8-byte little-endian header length, a JSON object header, the data.
std::uint64_t headerLengthOf(const std::uint8_t* eightBytes) {
    std::uint64_t length = 0;
    for (int i = 7; i >= 0; --i) length = (length << 8) | eightBytes[i];
    return length;
}

nlohmann::json parseHeader(const char* begin, const char* end, const std::string& name) {
    nlohmann::json header;
    try {
        header = nlohmann::json::parse(begin, end);
    } catch (const std::exception& e) {
        throw FileError(name, std::string("safetensors header is not valid JSON: ") + e.what());
    }
    if (!header.is_object()) throw FileError(name, "safetensors header is not a JSON object");
    return header;
}

// The string values of a `__metadata__` entry (others are skipped).
void collectMetadata(const nlohmann::json& entry, std::map<std::string, std::string>& metadata) {
    if (!entry.is_object()) return;
    for (const auto& [k, v] : entry.items())
        if (v.is_string()) metadata[k] = v.get<std::string>();
}

std::string shapeText(at::IntArrayRef shape) {
    std::ostringstream out;
    out << '[';
    for (std::size_t i = 0; i < shape.size(); ++i) out << (i ? "," : "") << shape[i];
    out << ']';
    return out.str();
}

}  // namespace

TensorMap readSafetensors(const std::filesystem::path& path, std::map<std::string, std::string>* metadata) {
    const std::vector<std::uint8_t> bytes = readFileBytes(path);
    const std::string name = path.string();
    if (bytes.size() < 8) throw FileError(name, "not a safetensors file (shorter than its header length)");
    const std::uint64_t headerLength = headerLengthOf(bytes.data());
    if (headerLength > bytes.size() - 8) throw FileError(name, "not a safetensors file (header length exceeds file)");
    const char* headerBegin = reinterpret_cast<const char*>(bytes.data()) + 8;
    const nlohmann::json header = parseHeader(headerBegin, headerBegin + headerLength, name);
    const std::uint8_t* data = bytes.data() + 8 + headerLength;
    const std::uint64_t dataSize = bytes.size() - 8 - headerLength;
    TensorMap tensors;
    std::vector<std::tuple<std::uint64_t, std::uint64_t, std::string>> ranges;  // begin, end, name
    for (const auto& [key, entry] : header.items()) {
        if (key == "__metadata__") {
            if (metadata) collectMetadata(entry, *metadata);
            continue;
        }
        try {
            const std::string dtype = entry.at("dtype").get<std::string>();
            // Integers only: nlohmann converts a float (3e19) to an integer by a cast that is undefined
            // behaviour when out of range.
            for (const char* field : {"shape", "data_offsets"})
                if (!entry.at(field).is_array() ||
                    !std::all_of(entry.at(field).begin(), entry.at(field).end(),
                                 [](const nlohmann::json& v) { return v.is_number_integer(); }))
                    throw FileError(name, "tensor '" + key + "' has a " + field + " that is not a list of integers");
            const auto shape = entry.at("shape").get<std::vector<std::int64_t>>();
            const auto offsets = entry.at("data_offsets").get<std::vector<std::uint64_t>>();
            const DtypeName* found = nullptr;
            for (const auto& d : kDtypes)
                if (dtype == d.name) found = &d;
            if (!found) throw FileError(name, "tensor '" + key + "' has unsupported dtype " + dtype);
            if (offsets.size() != 2 || offsets[0] > offsets[1] || offsets[1] > dataSize)
                throw FileError(name, "tensor '" + key + "' lies outside the file (truncated?)");
            for (const auto d : shape)
                if (d < 0) throw FileError(name, "tensor '" + key + "' has a negative dimension");
            // The bytes the shape needs, before allocating: a small file declaring [100000, 100000]
            // must not allocate 40 GB first.
            std::uint64_t expected = std::find(shape.begin(), shape.end(), 0) != shape.end()
                                         ? 0
                                         : std::uint64_t(c10::elementSize(found->type));
            for (const auto d : shape) {
                if (expected != 0 && std::uint64_t(d) > std::numeric_limits<std::uint64_t>::max() / expected)
                    throw FileError(name, "tensor '" + key + "' has a shape whose size overflows 64 bits");
                expected *= std::uint64_t(d);
            }
            if (offsets[1] - offsets[0] != expected)
                throw FileError(name, "tensor '" + key + "' has " + std::to_string(offsets[1] - offsets[0]) +
                                          " bytes, its shape needs " + std::to_string(expected));
            auto tensor = torch::empty(shape, torch::TensorOptions().dtype(found->type));
            if (expected) std::memcpy(tensor.data_ptr(), data + offsets[0], expected);
            tensors[key] = tensor;
            if (expected) ranges.emplace_back(offsets[0], offsets[1], key);
        } catch (const nlohmann::json::exception& e) {
            throw FileError(name, "tensor '" + key + "' has a malformed header entry: " + e.what());
        } catch (const c10::Error& e) {  // e.g. a zero-size shape whose other sides overflow LibTorch's size check
            throw FileError(name, "tensor '" + key + "': " + e.what_without_backtrace());
        }
    }
    // Two tensors sharing bytes: the reference reader refuses that, and so does this one.
    std::sort(ranges.begin(), ranges.end());
    for (std::size_t i = 1; i < ranges.size(); ++i)
        if (std::get<0>(ranges[i]) < std::get<1>(ranges[i - 1]))
            throw FileError(name, "tensors '" + std::get<2>(ranges[i - 1]) + "' and '" + std::get<2>(ranges[i]) +
                                      "' overlap in the file (bytes " + std::to_string(std::get<0>(ranges[i - 1])) +
                                      "-" + std::to_string(std::get<1>(ranges[i - 1])) + " and " +
                                      std::to_string(std::get<0>(ranges[i])) + "-" +
                                      std::to_string(std::get<1>(ranges[i])) + " of the data)");
    return tensors;
}

std::map<std::string, std::string> readSafetensorsMetadata(const std::filesystem::path& path) {
    const std::string name = path.string();
    std::ifstream in(path, std::ios::binary);
    if (!in) throw FileError(name, "cannot open");
    std::uint8_t lengthBytes[8];
    if (!in.read(reinterpret_cast<char*>(lengthBytes), 8)) throw FileError(name, "not a safetensors file");
    const std::uint64_t length = headerLengthOf(lengthBytes);
    if (length > (std::uint64_t(1) << 30)) throw FileError(name, "not a safetensors file (header length)");
    std::string header(length, '\0');
    if (!in.read(header.data(), std::streamsize(length)))
        throw FileError(name, "not a safetensors file (truncated header)");
    std::map<std::string, std::string> metadata;
    const nlohmann::json document = parseHeader(header.data(), header.data() + header.size(), name);
    if (const auto it = document.find("__metadata__"); it != document.end()) collectMetadata(*it, metadata);
    return metadata;
}

void writeSafetensors(const std::filesystem::path& path, const TensorMap& tensors,
                      const std::map<std::string, std::string>& metadata) {
    nlohmann::json header = nlohmann::json::object();
    if (!metadata.empty()) header["__metadata__"] = metadata;
    std::vector<torch::Tensor> payload;
    std::uint64_t offset = 0;
    for (const auto& [key, original] : tensors) {
        torch::Tensor t = original.detach().to(torch::kCPU).contiguous();
        const char* dtype = nullptr;
        for (const auto& d : kDtypes)
            if (t.scalar_type() == d.type) dtype = d.name;
        if (!dtype) throw FileError(path.string(), "tensor '" + key + "' has a dtype safetensors cannot store");
        const std::uint64_t size = std::uint64_t(t.numel()) * t.element_size();
        header[key] = {{"dtype", dtype}, {"shape", t.sizes().vec()}, {"data_offsets", {offset, offset + size}}};
        offset += size;
        payload.push_back(t);
    }
    std::string headerText = header.dump();
    // Pad the header with spaces so the data starts 8-byte aligned, as the reference writer does.
    while ((8 + headerText.size()) % 8 != 0) headerText.push_back(' ');
    const std::filesystem::path temporary = path.string() + ".tmp";
    {
        std::ofstream out(temporary, std::ios::binary | std::ios::trunc);
        if (!out) throw FileError(path.string(), "cannot write (folder missing or not writable)");
        std::uint8_t length[8];
        const std::uint64_t n = headerText.size();
        for (int i = 0; i < 8; ++i) length[i] = std::uint8_t(n >> (8 * i));
        out.write(reinterpret_cast<const char*>(length), 8);
        out.write(headerText.data(), std::streamsize(headerText.size()));
        for (const auto& t : payload)
            out.write(static_cast<const char*>(t.data_ptr()), std::streamsize(t.numel() * t.element_size()));
        out.flush();
        if (!out) {
            std::error_code ec;
            std::filesystem::remove(temporary, ec);
            throw FileError(path.string(), "write failed (disk full?)");
        }
    }
    std::error_code ec;
    std::filesystem::rename(temporary, path, ec);
    if (ec) throw FileError(path.string(), "cannot replace file: " + ec.message());
}

TensorMap readWeightsFile(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw FileError(path.string(), std::filesystem::exists(path) ? "cannot be opened" : "does not exist");
    char head[2] = {};
    in.read(head, 2);
    if (head[0] == 'P' && head[1] == 'K') return readTorchStateDict(path);
    // A legacy (pre-1.6, or _use_new_zipfile_serialization=False) torch.save file is a bare
    // pickle stream: PROTO opcode 0x80 and a protocol 2..5. A safetensors file starts with its
    // header length instead, whose low byte could be 0x80 but whose header then begins at byte 8
    // with '{'; route pickles to readTorchStateDict so the user reads why it is refused.
    if (static_cast<unsigned char>(head[0]) == 0x80 && head[1] >= 2 && head[1] <= 5) {
        char rest[7] = {};
        in.read(rest, 7);
        if (!in || rest[6] != '{') return readTorchStateDict(path);
    }
    return readSafetensors(path);
}

TensorMap stateDict(const torch::nn::Module& module) {
    TensorMap out;
    for (const auto& p : module.named_parameters(true)) out[p.key()] = p.value();
    for (const auto& b : module.named_buffers(true)) out[b.key()] = b.value();
    return out;
}

std::string LoadReport::summary() const {
    std::ostringstream out;
    out << loaded.size() << " loaded, " << missing.size() << " missing, " << unexpected.size() << " unexpected, "
        << skippedShape.size() << " skipped for shape";
    auto list = [&](const char* title, const std::vector<std::string>& names) {
        if (names.empty()) return;
        out << "\n  " << title << ": ";
        for (std::size_t i = 0; i < names.size() && i < 8; ++i) out << (i ? ", " : "") << names[i];
        if (names.size() > 8) out << ", … (" << names.size() - 8 << " more)";
    };
    list("missing", missing);
    list("unexpected", unexpected);
    list("skipped for shape", skippedShape);
    return out.str();
}

LoadReport loadStateDict(torch::nn::Module& module, const TensorMap& tensors, const LoadOptions& options) {
    LoadReport report;
    TensorMap target = stateDict(module);
    torch::NoGradGuard noGrad;
    // Weights that would load but be wrong: refused by name before anything is copied.
    std::vector<std::string> wrongKind, nonFinite;
    for (const auto& [key, value] : tensors) {
        const auto it = target.find(key);
        if (it == target.end() || it->second.sizes() != value.sizes()) continue;
        const bool fileFloat = value.is_floating_point(), modelFloat = it->second.is_floating_point();
        if (fileFloat != modelFloat ||
            (value.scalar_type() == torch::kBool) != (it->second.scalar_type() == torch::kBool))
            wrongKind.push_back(key + " (" + std::string(c10::toString(value.scalar_type())) + " in the file, " +
                                c10::toString(it->second.scalar_type()) + " in the model)");
        else if (fileFloat && !options.allowNonFinite && value.numel() > 0) {
            const auto finite = torch::isfinite(value);
            if (!finite.all().item<bool>()) {
                const auto nan = torch::isnan(value).sum().item<std::int64_t>();
                const auto bad = value.numel() - finite.sum().item<std::int64_t>();
                nonFinite.push_back(key + " (" + std::to_string(nan) + " NaN, " + std::to_string(bad - nan) +
                                    " Inf of " + std::to_string(value.numel()) + ")");
            }
        }
    }
    const auto names = [](const std::vector<std::string>& list) {
        std::string out;
        for (std::size_t i = 0; i < list.size() && i < 8; ++i) out += (i ? ", " : "") + list[i];
        if (list.size() > 8) out += ", ... (" + std::to_string(list.size() - 8) + " more)";
        return out;
    };
    if (!wrongKind.empty())
        throw Error(std::to_string(wrongKind.size()) +
                    " tensors have a dtype that does not convert to the model's "
                    "without changing their meaning (integer or bool for a float parameter, or the reverse): " +
                    names(wrongKind));
    if (!nonFinite.empty())
        throw Error(std::to_string(nonFinite.size()) +
                    " tensors hold NaN or Inf values (a model with them computes "
                    "NaN): " +
                    names(nonFinite));
    for (const auto& [key, value] : tensors) {
        bool ignored = false;
        for (const auto& prefix : options.ignorePrefixes) ignored = ignored || key.rfind(prefix, 0) == 0;
        if (ignored) continue;
        const auto it = target.find(key);
        if (it == target.end()) {
            report.unexpected.push_back(key);
            continue;
        }
        if (it->second.sizes() != value.sizes()) {
            report.skippedShape.push_back(key + ": file " + shapeText(value.sizes()) + " vs model " +
                                          shapeText(it->second.sizes()));
            continue;
        }
        it->second.copy_(value.to(it->second.device(), it->second.scalar_type()));
        report.loaded.push_back(key);
    }
    for (const auto& [key, value] : target) {
        if (tensors.count(key)) continue;
        // PyTorch state dicts written before BatchNorm tracked batches lack this counter.
        if (key.size() > 20 && key.compare(key.size() - 20, 20, ".num_batches_tracked") == 0) continue;
        report.missing.push_back(key);
    }
    if (options.strict && !report.complete()) throw Error("strict weight load failed: " + report.summary());
    return report;
}

}  // namespace segscope::core
