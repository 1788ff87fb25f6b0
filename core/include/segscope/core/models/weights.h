#pragma once
// Weights I/O with reference (Python) parameter names, no Python needed.
#include <torch/nn/module.h>
#include <torch/types.h>

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace segscope::core {

// Ordered by name, as safetensors files store them.
using TensorMap = std::map<std::string, torch::Tensor>;

// Reads a .safetensors file (all tensors, on the CPU, in their stored dtype). Throws FileError
// naming the file for a malformed header, unsupported dtype or truncated data.
TensorMap readSafetensors(const std::filesystem::path& path, std::map<std::string, std::string>* metadata = nullptr);

// Reads only the header of a .safetensors file and returns its `__metadata__` strings (other
// values skipped): what a class count costs, not the tensors. Throws FileError naming the file
// when it cannot be opened, its header is cut or over 1 GiB, or is not a JSON object.
std::map<std::string, std::string> readSafetensorsMetadata(const std::filesystem::path& path);

// Writes tensors (moved to CPU, made contiguous) as .safetensors, through a temporary file and
// a rename so a crash never leaves a half-written file.
void writeSafetensors(const std::filesystem::path& path, const TensorMap& tensors,
                      const std::map<std::string, std::string>& metadata = {});

// Reads a PyTorch state dict written by torch.save (torch_save.cpp) (.pth/.pt/.bin, zip format): a dict or an
// OrderedDict (Module.state_dict(), `_metadata` ignored), unwrapping the usual containers
// ("state_dict", "model", "model_state_dict"). Throws FileError naming the file for a legacy
// (non-zip) pickle, an unreadable pickle or one without tensors.
TensorMap readTorchStateDict(const std::filesystem::path& path);

// Dispatches on content: safetensors or torch.save zip; a legacy (non-zip) torch.save pickle is
// refused with readTorchStateDict's FileError. A missing file: FileError "PATH: does not exist".
TensorMap readWeightsFile(const std::filesystem::path& path);

// The module's parameters and buffers by state_dict name (what Python's state_dict() lists).
TensorMap stateDict(const torch::nn::Module& module);

struct LoadReport {
    std::vector<std::string> loaded;
    std::vector<std::string> missing;       // in the model, not in the file
    std::vector<std::string> unexpected;    // in the file, not in the model
    std::vector<std::string> skippedShape;  // same name, other shape ("name: file [a,b] vs model [c,d]")
    bool complete() const { return missing.empty() && unexpected.empty() && skippedShape.empty(); }
    std::string summary() const;  // counts plus the first few names of each list
};

struct LoadOptions {
    bool strict = false;                      // throw Error with the report unless complete()
    std::vector<std::string> ignorePrefixes;  // file keys starting with these are dropped silently
    bool allowNonFinite = false;              // accept NaN/Inf values (refused by default)
};

// Copies matching tensors into the module (under NoGradGuard, converting dtype and device:
// float16 to float32 and the like). Before copying anything it throws Error naming the tensors
//   - whose dtype would change meaning: an integer or bool tensor for a floating-point
//     parameter or buffer, a floating-point one for an integer buffer, bool for non-bool;
//   - that hold NaN or Inf (unless options.allowNonFinite).
LoadReport loadStateDict(torch::nn::Module& module, const TensorMap& tensors, const LoadOptions& options = {});

}  // namespace segscope::core
