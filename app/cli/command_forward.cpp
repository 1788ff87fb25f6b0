// segscope-cli forward: one eval-mode forward pass of a zoo model on a tensor file.
#include "commands.h"

#include "segscope/core/error.h"
#include "segscope/core/models/pretrained.h"
#include "segscope/core/models/registry.h"
#include "segscope/core/output_guard.h"
#include "segscope/core/models/weights.h"

#include <torch/torch.h>

#include <filesystem>
#include <iostream>

namespace segscope::cli {
namespace core = segscope::core;
namespace fs = std::filesystem;

int commandForward(const Arguments& args) {
    // --strict is accepted for old scripts: strict is the default now.
    args.allowOnly({"model", "classes", "weights", "input", "output", "strict", "allow-partial", "force"});
    const std::string modelId = args.required("model");
    const long classes = args.integer("classes", 0);
    if (classes < 1 || classes > 100000) throw UsageError("--classes must be an integer in [1, 100000]");
    const fs::path inputPath = args.required("input");
    const fs::path outputPath = args.required("output");
    core::OutputGuard guard;
    guard.inputs = {inputPath};
    if (auto weights = args.value("weights")) guard.inputs.push_back(*weights);
    guard.force = args.has("force");
    core::checkOutputPath(outputPath, guard);

    const auto model = core::createModel(modelId, static_cast<int>(classes));
    if (auto weights = args.value("weights")) {
        // Any tensor missing or left over fails (naming the keys), unless --allow-partial.
        const auto report = core::loadWeightsForModel(*model, modelId, *weights, args.has("allow-partial"));
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
    torch::Tensor logits;
    try {
        logits = model->forward(input);
    } catch (const c10::Error& e) {
        throw core::Error(std::string("forward of ") + modelId + " failed: " + e.what_without_backtrace());
    }
    core::writeSafetensors(outputPath, {{"logits", logits}},
                           {{"model", modelId}, {"classes", std::to_string(classes)}});
    std::cout << "wrote logits " << c10::str(logits.sizes()) << " to " << outputPath.string() << "\n";
    return 0;
}

}  // namespace segscope::cli
