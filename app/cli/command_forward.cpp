// segscope-cli forward: one eval-mode forward pass of a zoo model on a tensor file.
#include "commands.h"

#include "segscope/core/error.h"
#include "segscope/core/models/pretrained.h"
#include "segscope/core/models/registry.h"
#include "segscope/core/weights.h"

#include <torch/torch.h>

#include <filesystem>
#include <iostream>

namespace segscope::cli {
namespace core = segscope::core;
namespace fs = std::filesystem;

int commandForward(const Arguments& args) {
    args.allowOnly({"model", "classes", "weights", "input", "output", "strict"});
    const std::string modelId = args.required("model");
    const long classes = args.integer("classes", 0);
    if (classes < 1 || classes > 100000) throw UsageError("--classes must be an integer in [1, 100000]");
    const fs::path inputPath = args.required("input");
    const fs::path outputPath = args.required("output");

    const auto model = core::createModel(modelId, static_cast<int>(classes));
    if (auto weights = args.value("weights")) {
        // readWeightsFile names the file when it is missing or malformed.
        const auto checkpoint = core::readWeightsFile(*weights);
        core::LoadOptions options;
        options.strict = args.has("strict");
        const auto report = core::loadStateDict(*model, core::mapPretrained(modelId, checkpoint), options);
        std::cerr << *weights << ": " << report.summary() << "\n";
    }

    const auto inputs = core::readSafetensors(inputPath);
    const auto it = inputs.find("input");
    if (it == inputs.end()) throw core::FileError(inputPath.string(), "holds no tensor named 'input'");
    const torch::Tensor input = it->second;
    if (input.dim() != 4 || input.size(1) != 3 || input.scalar_type() != torch::kFloat32)
        throw core::FileError(inputPath.string(), "'input' must be a float32 (B, 3, H, W) tensor, got " +
                                                      std::string(c10::toString(input.scalar_type())) + " " +
                                                      c10::str(input.sizes()));

    model->eval();
    torch::NoGradGuard noGrad;
    const torch::Tensor logits = model->forward(input);
    core::writeSafetensors(outputPath, {{"logits", logits}}, {{"model", modelId}, {"classes", std::to_string(classes)}});
    std::cout << "wrote logits " << c10::str(logits.sizes()) << " to " << outputPath.string() << "\n";
    return 0;
}

}  // namespace segscope::cli
