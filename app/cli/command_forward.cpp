// segscope-cli forward: one eval-mode forward pass of a zoo model on a tensor file.
#include "commands.h"

#include "segscope/core/error.h"
#include "segscope/core/models/pretrained.h"
#include "segscope/core/models/registry.h"
#include "segscope/core/models/weights.h"
#include "segscope/core/output_guard.h"

#include <torch/torch.h>

#include <filesystem>
#include <iostream>
#include <memory>
#include <optional>
#include <string>

namespace segscope::cli {
namespace core = segscope::core;
namespace fs = std::filesystem;

namespace {

struct ForwardOptions {
    std::string model, input, output;
    std::optional<std::string> classes, weights;
    bool strict = false, allowPartial = false, force = false;
};

int forward(const ForwardOptions& args) {
    const std::string& modelId = args.model;
    const long classes = integerValue("classes", args.classes, 0);
    if (classes < 1 || classes > 100000) throw UsageError("--classes must be an integer in [1, 100000]");
    const fs::path inputPath = args.input;
    const fs::path outputPath = args.output;
    core::OutputGuard guard;
    guard.inputs = {inputPath};
    if (const auto& weights = args.weights) guard.inputs.push_back(*weights);
    guard.force = args.force;
    core::checkOutputPath(outputPath, guard);

    const auto model = core::createModel(modelId, static_cast<int>(classes));
    if (const auto& weights = args.weights) {
        // Any tensor missing or left over fails (naming the keys), unless --allow-partial.
        const auto report = core::loadWeightsForModel(*model, modelId, *weights, args.allowPartial);
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

}  // namespace

Command addForwardCommand(CLI::App& cli) {
    const auto options = std::make_shared<ForwardOptions>();
    CLI::App* app = cli.add_subcommand("forward", "eval-mode forward of a zoo model on a tensor file");
    app->footer(
        "Reads tensor `input` (B,3,H,W float32) and writes `logits`. --weights takes .safetensors or "
        "torch.save .pth/.bin, mapped by name (HF SegFormer in transformers 4.x or 5.x names, detected); "
        "they must fit the model exactly (the load report names missing/unexpected keys) unless "
        "--allow-partial.");
    app->add_option("--model", options->model, "a zoo id (segscope-cli models)")->required()->type_name("ID");
    addIntegerOption(*app, "--classes", options->classes, "output classes, 1 to 100000")->required()->type_name("K");
    app->add_option("--input", options->input, "tensor file holding `input`")->required()->type_name("IN.safetensors");
    app->add_option("--output", options->output, "where the logits go")->required()->type_name("OUT.safetensors");
    app->add_option("--weights", options->weights, "weights to load")->type_name("FILE");
    app->add_flag("--allow-partial", options->allowPartial, "load what fits, report the rest");
    app->add_flag("--force", options->force, "write over an existing output file");
    // Accepted for old scripts: strict is the default now.
    app->add_flag("--strict", options->strict)->group("");
    return {app, [options] { return forward(*options); }, true};
}

}  // namespace segscope::cli
