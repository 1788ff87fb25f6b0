// torch.save (.pth/.pt/.bin, zip format) reading: the zip's declared sizes checked before
// LibTorch opens it, the pickle rewritten so LibTorch's Unpickler takes an OrderedDict, and every
// tensor's storage checked against its record.
#include "segscope/core/models/weights.h"

#include "segscope/core/data/image_io.h"
#include "segscope/core/error.h"

#include <caffe2/serialize/inline_container.h>
#include <torch/csrc/jit/serialization/unpickler.h>
#include <torch/serialize.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <tuple>

namespace segscope::core {
namespace {

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
            case '(':
            case '.':
            case '0':
            case '1':
            case '2':
            case 'N':
            case 0x88:
            case 0x89:
            case ']':
            case '}':
            case 0x8f:
            case 'a':
            case 'e':
            case 's':
            case 'u':
            case 'R':
            case 't':
            case 0x85:
            case 0x86:
            case 0x87:
            case 'Q':
            case 'l':
            case 'd':
            case 0x90:
            case 0x91:
            case 0x81:
            case 0x92:
            case 0x93:
            case 0x94:
            case 'o':
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
            case 0x80:
            case 'K':
            case 0x82:
                next = i + 2;
                break;
            case 'q':
            case 'h': {
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
            case 'r':
            case 'j': {
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
            case 0x8a:
            case 'U':
            case 0x8c:
            case 'C':
                if (i + 1 >= in.size()) return false;
                next = i + 2 + u(i + 1);
                break;
            case 'M':
            case 0x83:
                next = i + 3;
                break;
            case 'J':
            case 0x84:
                next = i + 5;
                break;
            case 'X':
            case 'T':
            case 'B':
            case 0x8b:
                if (i + 4 >= in.size()) return false;
                next = i + 5 + le(i + 1, 4);
                break;
            case 'G':
            case 0x95:
                next = i + 9;
                break;
            case 0x8d:
            case 0x8e:
            case 0x96:
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
            case 'I':
            case 'L':
            case 'S':
            case 'V':
            case 'F':
            case 'p':
            case 'g':
            case 'P':
                next = line(i + 1);
                break;
            case 'i':
                next = line(line(i + 1));
                break;
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
            throw FileError(name,
                            "zip entry '" +
                                std::string(bytes.begin() + long(at) + 46, bytes.begin() + long(at + 46 + nameLength)) +
                                "' declares " + std::to_string(uncompressed) + " bytes, more than the " +
                                std::to_string(size) + "-byte archive holds (all entries: " + std::to_string(declared) +
                                "); torch.save stores its records "
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

}  // namespace

TensorMap readTorchStateDict(const std::filesystem::path& path) {
    const std::vector<std::uint8_t> bytes = readFileBytes(path);
    if (bytes.size() < 4 || bytes[0] != 'P' || bytes[1] != 'K')
        throw FileError(path.string(),
                        "not a torch.save zip archive (legacy pickle files are not supported; "
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

}  // namespace segscope::core
