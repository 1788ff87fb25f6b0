#include "segscope/core/models/weights.h"

#include "segscope/core/error.h"
#include "segscope/core/data/image_io.h"

#include <nlohmann/json.hpp>
#include <caffe2/serialize/inline_container.h>
#include <torch/csrc/jit/serialization/unpickler.h>
#include <torch/serialize.h>

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

std::string shapeText(at::IntArrayRef shape) {
    std::ostringstream out;
    out << '[';
    for (std::size_t i = 0; i < shape.size(); ++i) out << (i ? "," : "") << shape[i];
    out << ']';
    return out.str();
}

void collectTensors(const c10::IValue& value, const std::string& prefix, TensorMap& out) {
    if (value.isTensor()) {
        out[prefix] = value.toTensor();
        return;
    }
    if (value.isGenericDict()) {
        for (const auto& entry : value.toGenericDict()) {
            if (!entry.key().isString()) continue;
            const std::string key = entry.key().toStringRef();
            collectTensors(entry.value(), prefix.empty() ? key : prefix + "." + key, out);
        }
    }
}

// torch.save pickles a state dict as collections.OrderedDict (GLOBAL, EMPTY_TUPLE, REDUCE, then
// SETITEMS, and for Module.state_dict() a BUILD with its `_metadata`). LibTorch's Unpickler turns
// that global into None, because it only expects it for tensors' (empty) backward hooks, so
// SETITEMS on it fails; it also has no POP. So the pickle is rewritten, opcode by opcode, before
// unpickling: the OrderedDict callable (its GLOBAL, or a BINGET of it) becomes EMPTY_DICT and
// the EMPTY_TUPLE/REDUCE calling it disappear; BUILD becomes TUPLE2, pairing the dict with its
// state, which unwrapBuilt() then drops. Returns false for opcodes it does not know (the pickle
// is then used as is).
bool rewriteOrderedDicts(const std::vector<char>& in, std::vector<char>& out) {
    out.clear();
    out.reserve(in.size());
    std::vector<std::uint32_t> odMemos;
    bool pending = false, seen = false;
    std::size_t i = 0;
    auto u = [&](std::size_t k) { return static_cast<unsigned char>(in[k]); };
    auto le = [&](std::size_t at, int n) {
        std::uint64_t v = 0;
        for (int b = n - 1; b >= 0; --b) v = (v << 8) | u(at + std::size_t(b));
        return v;
    };
    auto line = [&](std::size_t at) {
        while (at < in.size() && in[at] != '\n') ++at;
        return at + 1;
    };
    while (i < in.size()) {
        const unsigned char op = u(i);
        std::size_t next = i + 1;
        switch (op) {
        case '(': case '.': case '0': case '1': case '2': case 'N': case 0x88: case 0x89: case ']': case '}':
        case 0x8f: case 'a': case 'e': case 's': case 'u': case 'R': case 't': case 0x85: case 0x86: case 0x87:
        case 'Q': case 'l': case 'd': case 0x90: case 0x91: case 0x81: case 0x92: case 0x93: case 0x94: case 'o':
            break;
        case ')':
            if (pending && i + 1 < in.size() && in[i + 1] == 'R') {
                i += 2;
                pending = false;
                continue;
            }
            break;
        case 'b':
            if (seen) {
                out.push_back(static_cast<char>(0x86));
                i = next;
                continue;
            }
            break;
        case 0x80: case 'K': case 0x82: next = i + 2; break;
        case 'q': case 'h': {
            if (i + 1 >= in.size()) return false;
            const std::uint32_t id = u(i + 1);
            if (op == 'q' && pending) odMemos.push_back(id);
            if (op == 'h' && std::find(odMemos.begin(), odMemos.end(), id) != odMemos.end()) {
                out.push_back('}');
                i += 2;
                pending = true;
                continue;
            }
            next = i + 2;
            break;
        }
        case 'r': case 'j': {
            if (i + 4 >= in.size()) return false;
            const auto id = static_cast<std::uint32_t>(le(i + 1, 4));
            // Memo ids count up from 0, one per PUT of at least 2 bytes; LibTorch's unpickler resizes
            // its memo table to any id it is given (16 bytes each: 64 GB for 2^32).
            if (op == 'r' && id > in.size())
                throw Error("the pickle stores memo entry " + std::to_string(id) + ", more than a " +
                            std::to_string(in.size()) + "-byte pickle can hold");
            if (op == 'r' && pending) odMemos.push_back(id);
            if (op == 'j' && std::find(odMemos.begin(), odMemos.end(), id) != odMemos.end()) {
                out.push_back('}');
                i += 5;
                pending = true;
                continue;
            }
            next = i + 5;
            break;
        }
        case 0x8a: case 'U': case 0x8c: case 'C':
            if (i + 1 >= in.size()) return false;
            next = i + 2 + u(i + 1);
            break;
        case 'M': case 0x83: next = i + 3; break;
        case 'J': case 0x84: next = i + 5; break;
        case 'X': case 'T': case 'B': case 0x8b:
            if (i + 4 >= in.size()) return false;
            next = i + 5 + le(i + 1, 4);
            break;
        case 'G': case 0x95: next = i + 9; break;
        case 0x8d: case 0x8e: case 0x96:
            if (i + 8 >= in.size()) return false;
            next = i + 9 + le(i + 1, 8);
            break;
        case 'c': {
            const std::size_t moduleEnd = line(i + 1);
            next = line(moduleEnd);
            if (std::string(in.begin() + long(i) + 1, in.begin() + long(std::min(next, in.size()))) ==
                "collections\nOrderedDict\n") {
                out.push_back('}');
                i = next;
                pending = seen = true;
                continue;
            }
            break;
        }
        case 'I': case 'L': case 'S': case 'V': case 'F': case 'p': case 'g': case 'P':
            next = line(i + 1);
            break;
        case 'i': next = line(line(i + 1)); break;
        default:
            return false;  // MEMOIZE (protocol 4+) and anything unknown: leave the pickle alone
        }
        // An argument running past the end (a BINUNICODE declaring 2^32 bytes in a small file):
        // LibTorch's unpickler would allocate the declared length before finding it missing.
        if (next > in.size())
            throw Error("the pickle is truncated: opcode " + std::to_string(op) + " at byte " + std::to_string(i) +
                        " needs " + std::to_string(next - i) + " bytes, " + std::to_string(in.size() - i) + " remain");
        // Only the opcodes right after the OrderedDict callable keep it pending (its BINPUT).
        if (op != 'q' && op != 'r') pending = false;
        out.insert(out.end(), in.begin() + long(i), in.begin() + long(next));
        i = next;
    }
    return true;
}

// The sizes the zip's central directory declares, checked against the archive before LibTorch's
// PyTorchStreamReader opens it: its constructor already extracts the `version` record, allocating
// whatever size that entry declares (4 GB for a 3 KB file), before any check after it can run.
// torch.save stores records uncompressed, so no entry, nor all of them, can exceed the archive.
// A directory this walk cannot follow is left to the reader, which reports it.
void checkZipDeclaredSizes(const std::vector<std::uint8_t>& bytes, const std::string& name) {
    const auto le = [&](std::size_t at, int n) {
        std::uint64_t v = 0;
        for (int b = n - 1; b >= 0; --b) v = (v << 8) | bytes[at + std::size_t(b)];
        return v;
    };
    const std::size_t size = bytes.size();
    if (size < 22) return;
    std::size_t eocd = size - 22;
    const std::size_t lowest = size - 22 > 65535 ? size - 22 - 65535 : 0;
    while (le(eocd, 4) != 0x06054b50u) {
        if (eocd == lowest) return;
        --eocd;
    }
    std::uint64_t directory = le(eocd + 16, 4);
    if (directory == 0xFFFFFFFFu && eocd >= 20 && le(eocd - 20, 4) == 0x07064b50u) {  // zip64
        const std::uint64_t record = le(eocd - 20 + 8, 8);
        if (size < 56 || record > size - 56 || le(std::size_t(record), 4) != 0x06064b50u) return;
        directory = le(std::size_t(record) + 48, 8);
    }
    std::uint64_t declared = 0;
    for (std::uint64_t pos = directory; size >= 46 && pos <= size - 46 && le(std::size_t(pos), 4) == 0x02014b50u;) {
        const std::size_t at = std::size_t(pos);
        std::uint64_t uncompressed = le(at + 24, 4);
        const std::size_t nameLength = le(at + 28, 2), extraLength = le(at + 30, 2), commentLength = le(at + 32, 2);
        if (at + 46 + nameLength + extraLength > size) return;
        if (uncompressed == 0xFFFFFFFFu) {  // the zip64 extra field's first value
            for (std::size_t e = at + 46 + nameLength; e + 4 <= at + 46 + nameLength + extraLength;) {
                const std::size_t id = le(e, 2), length = le(e + 2, 2);
                if (id == 1 && length >= 8 && e + 12 <= size) uncompressed = le(e + 4, 8);
                if (id == 1) break;
                e += 4 + length;
            }
        }
        declared += std::min<std::uint64_t>(uncompressed, size + 1);
        if (uncompressed > size || declared > size)
            throw FileError(name, "zip entry '" + std::string(bytes.begin() + long(at) + 46,
                                                               bytes.begin() + long(at + 46 + nameLength)) +
                                      "' declares " + std::to_string(uncompressed) + " bytes, more than the " +
                                      std::to_string(size) + "-byte archive holds (all entries: " +
                                      std::to_string(declared) + "); torch.save stores its records "
                                      "uncompressed, so this is not a torch.save file (a zip bomb?)");
        pos += 46 + nameLength + extraLength + commentLength;
    }
}

// Undoes the TUPLE2 that stands for BUILD: (dict, state dict) -> dict, recursively.
c10::IValue unwrapBuilt(const c10::IValue& value) {
    if (value.isTuple()) {
        const auto& elements = value.toTupleRef().elements();
        if (elements.size() == 2 && elements[0].isGenericDict() && elements[1].isGenericDict())
            return unwrapBuilt(elements[0]);
        return value;
    }
    if (value.isGenericDict()) {
        auto dict = value.toGenericDict();
        for (auto it = dict.begin(); it != dict.end(); ++it) it->setValue(unwrapBuilt(it->value()));
        return dict;
    }
    return value;
}

// recordBytes receives, for each tensor record read, its data pointer and the bytes it holds.
c10::IValue unpickleTorchSave(const std::filesystem::path& path, std::uint64_t archiveBytes,
                              std::map<const void*, std::size_t>* recordBytes) {
    caffe2::serialize::PyTorchStreamReader reader(path.string());
    // torch.save stores its records uncompressed, so no record can be larger than the archive,
    // nor all of them together: a record declaring more is a zip bomb, refused before any
    // record is extracted (getRecord allocates the declared size).
    std::uint64_t declared = 0;
    for (const auto& record : reader.getAllRecords()) {
        const std::uint64_t size = reader.getRecordSize(record);
        declared += size;
        if (size > archiveBytes || declared > archiveBytes)
            throw Error("zip entry '" + record + "' declares " + std::to_string(size) + " bytes (" +
                        std::to_string(declared) + " in all so far), more than the " + std::to_string(archiveBytes) +
                        "-byte archive holds; torch.save stores its records uncompressed, so this is not a "
                        "torch.save file (a zip bomb?)");
    }
    at::DataPtr pickleData;
    std::size_t pickleSize = 0;
    std::tie(pickleData, pickleSize) = reader.getRecord("data.pkl");
    const char* begin = static_cast<const char*>(pickleData.get());
    const std::vector<char> original(begin, begin + pickleSize);
    std::vector<char> pickle;
    if (!rewriteOrderedDicts(original, pickle)) pickle = original;
    std::size_t position = 0;
    auto read = [&](char* buffer, std::size_t n) {
        const std::size_t count = std::min(n, pickle.size() - position);
        if (count) std::memcpy(buffer, pickle.data() + position, count);  // an empty pickle has no data()
        position += count;
        return count;
    };
    auto readRecord = [&](const std::string& name) {
        at::DataPtr data;
        std::size_t size = 0;
        std::tie(data, size) = reader.getRecord("data/" + name);
        (*recordBytes)[data.get()] = size;
        return data;
    };
    torch::jit::Unpickler unpickler(read, nullptr, nullptr, readRecord, c10::Device(c10::kCPU));
    unpickler.set_version(reader.version());
    return unwrapBuilt(unpickler.parse_ivalue());
}

} // namespace

TensorMap readSafetensors(const std::filesystem::path& path, std::map<std::string, std::string>* metadata) {
    const std::vector<std::uint8_t> bytes = readFileBytes(path);
    const std::string name = path.string();
    if (bytes.size() < 8) throw FileError(name, "not a safetensors file (shorter than its header length)");
    std::uint64_t headerLength = 0;
    for (int i = 7; i >= 0; --i) headerLength = (headerLength << 8) | bytes[std::size_t(i)];
    if (headerLength > bytes.size() - 8) throw FileError(name, "not a safetensors file (header length exceeds file)");
    nlohmann::json header;
    try {
        header = nlohmann::json::parse(bytes.begin() + 8, bytes.begin() + 8 + long(headerLength));
    } catch (const std::exception& e) {
        throw FileError(name, std::string("safetensors header is not valid JSON: ") + e.what());
    }
    if (!header.is_object()) throw FileError(name, "safetensors header is not a JSON object");
    const std::uint8_t* data = bytes.data() + 8 + headerLength;
    const std::uint64_t dataSize = bytes.size() - 8 - headerLength;
    TensorMap tensors;
    std::vector<std::tuple<std::uint64_t, std::uint64_t, std::string>> ranges;  // begin, end, name
    for (const auto& [key, entry] : header.items()) {
        if (key == "__metadata__") {
            if (metadata && entry.is_object())
                for (const auto& [k, v] : entry.items())
                    if (v.is_string()) (*metadata)[k] = v.get<std::string>();
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

TensorMap readTorchStateDict(const std::filesystem::path& path) {
    const std::vector<std::uint8_t> bytes = readFileBytes(path);
    if (bytes.size() < 4 || bytes[0] != 'P' || bytes[1] != 'K')
        throw FileError(path.string(), "not a torch.save zip archive (legacy pickle files are not supported; "
                                       "re-save with torch.save in PyTorch >= 1.6)");
    checkZipDeclaredSizes(bytes, path.string());
    c10::IValue value;
    std::map<const void*, std::size_t> recordBytes;
    try {
        value = unpickleTorchSave(path, bytes.size(), &recordBytes);
    } catch (const c10::Error& e) {
        // LibTorch's what() carries a C++ backtrace; the message alone is what a person needs.
        throw FileError(path.string(), std::string("cannot unpickle: ") + e.what_without_backtrace());
    } catch (const Error& e) {
        throw FileError(path.string(), e.what());
    } catch (const std::exception& e) {
        throw FileError(path.string(), std::string("cannot unpickle: ") + e.what());
    }
    // Checkpoints often wrap the weights: {"state_dict": ...} or {"model": ...}.
    if (value.isGenericDict()) {
        for (const char* wrapper : {"state_dict", "model", "model_state_dict"}) {
            const auto dict = value.toGenericDict();
            const auto it = dict.find(c10::IValue(std::string(wrapper)));
            if (it != dict.end() && it->value().isGenericDict()) {
                value = it->value();
                break;
            }
        }
    }
    TensorMap tensors;
    collectTensors(value, "", tensors);
    if (tensors.empty()) throw FileError(path.string(), "holds no tensors");
    // LibTorch's unpickler sizes each storage by the element count the pickle states, not by its
    // record: a pickle claiming more would have the tensor read past the record's memory.
    for (const auto& [key, tensor] : tensors) {
        const auto& storage = tensor.storage();
        if (storage.nbytes() == 0) continue;
        const auto it = recordBytes.find(storage.data());
        if (it == recordBytes.end() || storage.nbytes() > it->second)
            throw FileError(path.string(), "tensor '" + key + "' claims " + std::to_string(storage.nbytes()) +
                                               " bytes of storage, its record holds " +
                                               std::to_string(it == recordBytes.end() ? 0 : it->second));
    }
    return tensors;
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
        if (fileFloat != modelFloat || (value.scalar_type() == torch::kBool) != (it->second.scalar_type() == torch::kBool))
            wrongKind.push_back(key + " (" + std::string(c10::toString(value.scalar_type())) + " in the file, " +
                                c10::toString(it->second.scalar_type()) + " in the model)");
        else if (fileFloat && !options.allowNonFinite && value.numel() > 0) {
            const auto finite = torch::isfinite(value);
            if (!finite.all().item<bool>()) {
                const auto nan = torch::isnan(value).sum().item<std::int64_t>();
                const auto bad = value.numel() - finite.sum().item<std::int64_t>();
                nonFinite.push_back(key + " (" + std::to_string(nan) + " NaN, " + std::to_string(bad - nan) + " Inf of " +
                                    std::to_string(value.numel()) + ")");
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
        throw Error(std::to_string(wrongKind.size()) + " tensors have a dtype that does not convert to the model's "
                    "without changing their meaning (integer or bool for a float parameter, or the reverse): " +
                    names(wrongKind));
    if (!nonFinite.empty())
        throw Error(std::to_string(nonFinite.size()) + " tensors hold NaN or Inf values (a model with them computes "
                    "NaN): " + names(nonFinite));
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

} // namespace segscope::core
