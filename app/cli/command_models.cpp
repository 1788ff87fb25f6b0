// segscope-cli models: the model zoo with exact parameter counts.
#include "commands.h"

#include "segscope/core/models/registry.h"

#include <torch/torch.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <iomanip>
#include <iostream>
#include <memory>
#include <optional>
#include <sstream>

namespace segscope::cli {
namespace core = segscope::core;

namespace {

// 3719541 -> "3,719,541"
std::string withThousands(std::int64_t n) {
    std::string digits = std::to_string(n);
    std::string out;
    for (std::size_t i = 0; i < digits.size(); ++i) {
        if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
        out += digits[i];
    }
    return out;
}

std::string joined(const std::vector<std::string>& items) {
    std::string out;
    for (const auto& s : items) out += (out.empty() ? "" : ",") + s;
    return out;
}

struct ModelsOptions {
    std::optional<std::string> classes;
    bool json = false;
    std::vector<std::string> ids;
};

int listModels(const ModelsOptions& args) {
    const long classes = integerValue("classes", args.classes, 21);
    if (classes < 1 || classes > 100000) throw UsageError("--classes must be an integer in [1, 100000]");

    // LibTorch C++ modules allocate and initialise their tensors in their constructors and offer
    // no meta-device construction, so each model is built for real; without autograd recording
    // the initialisation is as cheap as it gets (ViT-large takes a few seconds).
    // Positional ids restrict the listing (in registry order); an unknown one is an error.
    std::vector<const core::ModelEntry*> entries;
    for (const auto& id : args.ids)
        if (!core::findModel(id)) core::createModel(id, 1);  // throws Error listing close matches
    for (const auto& entry : core::modelRegistry()) {
        bool wanted = args.ids.empty();
        for (const auto& id : args.ids) wanted = wanted || id == entry.info.id;
        if (wanted) entries.push_back(&entry);
    }

    torch::NoGradGuard noGrad;
    nlohmann::json list = nlohmann::json::array();
    std::vector<std::int64_t> counts;
    for (const core::ModelEntry* e : entries) {
        const core::ModelEntry& entry = *e;
        std::int64_t parameters = 0;
        {
            const auto model = entry.create(static_cast<int>(classes));
            parameters = core::countParameters(*model);
        }
        counts.push_back(parameters);
        list.push_back({{"id", entry.info.id},
                        {"family", entry.info.family},
                        {"parameters", parameters},
                        {"stages", entry.info.stages},
                        {"reference", entry.info.reference}});
    }
    if (args.json) {
        std::cout << nlohmann::json{{"classes", classes}, {"models", list}}.dump(1) << std::endl;
        return 0;
    }
    std::size_t idWidth = 2, familyWidth = 6;
    for (const core::ModelEntry* entry : entries) {
        idWidth = std::max(idWidth, entry->info.id.size());
        familyWidth = std::max(familyWidth, entry->info.family.size());
    }
    std::ostringstream out;
    out << std::left << std::setw(static_cast<int>(idWidth)) << "id"
        << "  " << std::setw(static_cast<int>(familyWidth)) << "family"
        << "  " << std::right << std::setw(13) << "parameters"
        << "  stages\n";
    for (std::size_t i = 0; i < entries.size(); ++i)
        out << std::left << std::setw(static_cast<int>(idWidth)) << entries[i]->info.id << "  "
            << std::setw(static_cast<int>(familyWidth)) << entries[i]->info.family << "  " << std::right
            << std::setw(13) << withThousands(counts[i]) << "  " << joined(entries[i]->info.stages) << "\n";
    out << entries.size() << " models, parameters at " << classes << " classes\n";
    std::cout << out.str();
    return 0;
}

}  // namespace

Command addModelsCommand(CLI::App& cli) {
    const auto options = std::make_shared<ModelsOptions>();
    CLI::App* app = cli.add_subcommand("models", "the model zoo: id, family, exact parameter count, stage names");
    app->footer("Each model is built to count its parameters (ViT-large takes a few seconds).");
    addIntegerOption(*app, "--classes", options->classes, "classes the parameters are counted at, 1 to 100000", 21)
        ->type_name("K");
    app->add_flag("--json", options->json, "the list as JSON");
    app->add_option("ID", options->ids, "only these models (in the zoo's order); an unknown id is an error")
        ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll)
        ->type_name("");
    return {app, [options] { return listModels(*options); }, false};
}

}  // namespace segscope::cli
