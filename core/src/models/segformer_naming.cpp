#include "segscope/core/models/segformer_naming.h"

#include "segscope/core/error.h"

#include <nlohmann/json.hpp>

#include <fstream>
#include <regex>
#include <system_error>

namespace segscope::core {
namespace {

bool startsWith(const std::string& s, const std::string& prefix) {
    return s.rfind(prefix, 0) == 0;
}

// A rule fragment as a regex over whole name components: "N" is a stage index.
struct CompiledRule {
    std::regex pattern[2];       // by SegFormerNaming
    std::string replacement[2];  // what a match of pattern[from] becomes in naming `to`
};

std::string fragmentPattern(const std::string& fragment) {
    std::string out = "(^|\\.)";
    for (std::size_t i = 0; i < fragment.size(); ++i) {
        const char c = fragment[i];
        const bool index =
            c == 'N' && (i == 0 || fragment[i - 1] == '.') && (i + 1 == fragment.size() || fragment[i + 1] == '.');
        if (index)
            out += "([0-9]+)";
        else if (c == '.')
            out += "\\.";
        else
            out += c;
    }
    return out + "(?=\\.|$)";
}

std::string fragmentReplacement(const std::string& fragment) {
    std::string out = "$1";
    for (std::size_t i = 0; i < fragment.size(); ++i) {
        const char c = fragment[i];
        const bool index =
            c == 'N' && (i == 0 || fragment[i - 1] == '.') && (i + 1 == fragment.size() || fragment[i + 1] == '.');
        out += index ? std::string("$2") : std::string(1, c);
    }
    return out;
}

const std::vector<CompiledRule>& compiledRules() {
    static const std::vector<CompiledRule> rules = [] {
        std::vector<CompiledRule> out;
        for (const auto& rule : segFormerRenameRules()) {
            CompiledRule c;
            c.pattern[0] = std::regex(fragmentPattern(rule.transformers4));
            c.pattern[1] = std::regex(fragmentPattern(rule.transformers5));
            c.replacement[0] = fragmentReplacement(rule.transformers5);  // 4 -> 5
            c.replacement[1] = fragmentReplacement(rule.transformers4);  // 5 -> 4
            out.push_back(std::move(c));
        }
        return out;
    }();
    return rules;
}

int index(SegFormerNaming naming) {
    return naming == SegFormerNaming::Transformers4 ? 0 : 1;
}

// Keys that only one generation has (anywhere in the key, on component boundaries).
const std::regex& markers4() {
    static const std::regex r(
        "(^|\\.)(encoder\\.(block|patch_embeddings|layer_norm)\\.[0-9]+\\.|decode_head\\.linear_c\\.)");
    return r;
}
const std::regex& markers5() {
    static const std::regex r(
        "(^|\\.)(stages\\.[0-9]+\\.(blocks|patch_embeddings|layer_norm)\\.|decode_head\\.linear_projections\\.)");
    return r;
}

}  // namespace

const std::vector<SegFormerRenameRule>& segFormerRenameRules() {
    // transformers 5.x conversion_mapping.py, "SegformerModel" then "SegformerForSemanticSegmentation".
    static const std::vector<SegFormerRenameRule> rules{
        {"encoder.patch_embeddings.N", "stages.N.patch_embeddings"},
        {"encoder.block.N", "stages.N.blocks"},
        {"encoder.layer_norm.N", "stages.N.layer_norm"},
        {"attention.self.query", "attention.q_proj"},
        {"attention.self.key", "attention.k_proj"},
        {"attention.self.value", "attention.v_proj"},
        {"attention.self.sr", "attention.sequence_reduction.sequence_reduction"},
        {"attention.self.layer_norm", "attention.sequence_reduction.layer_norm"},
        {"attention.output.dense", "attention.o_proj"},
        {"mlp.dense1", "mlp.fc1"},
        {"mlp.dense2", "mlp.fc2"},
        {"layer_norm_1", "layernorm_before"},
        {"layer_norm_2", "layernorm_after"},
        {"decode_head.linear_c", "decode_head.linear_projections"},
    };
    return rules;
}

std::string renameSegFormerKey(const std::string& key, SegFormerNaming from, SegFormerNaming to) {
    if (from == to) return key;
    std::string out = key;
    for (const auto& rule : compiledRules())
        out = std::regex_replace(out, rule.pattern[index(from)], rule.replacement[index(from)],
                                 std::regex_constants::format_first_only);
    return out;
}

std::string SegFormerLayout::describe() const {
    if (mixed) return "a mix of HF transformers 4.x and 5.x SegFormer names";
    if (!naming) return "no SegFormer names";
    std::string text = naming == SegFormerNaming::Transformers4 ? "HF transformers 4.x SegFormer names"
                                                                : "HF transformers 5.x SegFormer names";
    if (bare)
        text += " (bare SegformerModel/MiT backbone, no \"segformer.\" prefix)";
    else if (imageClassifier)
        text += " (SegformerForImageClassification: encoder and an ImageNet classifier)";
    else if (decodeHead)
        text += " (SegformerForSemanticSegmentation)";
    else
        text += " (encoder only)";
    return text;
}

SegFormerLayout detectSegFormerLayout(const TensorMap& checkpoint) {
    SegFormerLayout layout;
    std::size_t count4 = 0, count5 = 0, bareKeys = 0, prefixed = 0;
    for (const auto& [key, value] : checkpoint) {
        const bool is4 = std::regex_search(key, markers4());
        const bool is5 = std::regex_search(key, markers5());
        count4 += is4 ? 1 : 0;
        count5 += is5 ? 1 : 0;
        if ((is4 || is5) && !startsWith(key, "decode_head.")) {
            if (startsWith(key, "segformer."))
                ++prefixed;
            else if (startsWith(key, "encoder.") || startsWith(key, "stages."))
                ++bareKeys;
        }
        if (startsWith(key, "decode_head.")) layout.decodeHead = true;
        if (startsWith(key, "classifier.")) layout.imageClassifier = true;
    }
    if (count4 && count5) layout.mixed = true;
    if (count4 || count5)
        layout.naming = count5 > count4 ? SegFormerNaming::Transformers5 : SegFormerNaming::Transformers4;
    layout.bare = bareKeys > 0 && prefixed == 0;
    return layout;
}

TensorMap toSegScopeSegFormerNames(const TensorMap& checkpoint) {
    const SegFormerLayout layout = detectSegFormerLayout(checkpoint);
    if (layout.mixed)
        throw Error(
            "the checkpoint mixes HF transformers 4.x and 5.x SegFormer names (e.g. both "
            "\"encoder.block.N\" and \"stages.N.blocks\"); save it again with one transformers version");
    if (!layout.naming) return checkpoint;
    TensorMap out;
    for (const auto& [key, value] : checkpoint) {
        if (layout.imageClassifier && startsWith(key, "classifier.")) continue;
        std::string name = renameSegFormerKey(key, *layout.naming, SegFormerNaming::Transformers4);
        if (layout.bare && startsWith(name, "encoder.")) name = "segformer." + name;
        out.emplace(std::move(name), value);
    }
    return out;
}

TensorMap segFormerStateDictIn(const TensorMap& segscopeNames, SegFormerNaming naming) {
    if (naming == SegFormerNaming::Transformers4) return segscopeNames;
    TensorMap out;
    for (const auto& [key, value] : segscopeNames)
        out.emplace(renameSegFormerKey(key, SegFormerNaming::Transformers4, naming), value);
    return out;
}

std::string segFormerHfConfigJson(const TensorMap& segscopeNames, const std::vector<std::string>& classNames) {
    const auto need = [&](const std::string& key) -> const torch::Tensor& {
        const auto it = segscopeNames.find(key);
        if (it == segscopeNames.end()) throw Error("not a full SegFormer state dict: it lacks " + key);
        return it->second;
    };
    if (classNames.empty()) throw Error("a SegFormer config needs at least one class name");
    nlohmann::json hidden = nlohmann::json::array(), depths = nlohmann::json::array();
    for (int stage = 0; stage < 4; ++stage) {
        const std::string s = std::to_string(stage);
        hidden.push_back(need("segformer.encoder.layer_norm." + s + ".weight").size(0));
        std::int64_t depth = 0;
        while (
            segscopeNames.count("segformer.encoder.block." + s + "." + std::to_string(depth) + ".layer_norm_1.weight"))
            ++depth;
        if (depth == 0) throw Error("not a full SegFormer state dict: stage " + s + " has no blocks");
        depths.push_back(depth);
    }
    const auto& classifier = need("decode_head.classifier.weight");
    if (classifier.size(0) != std::int64_t(classNames.size()))
        throw Error("the classifier has " + std::to_string(classifier.size(0)) + " outputs, but " +
                    std::to_string(classNames.size()) + " class names were given");
    nlohmann::json id2label = nlohmann::json::object(), label2id = nlohmann::json::object();
    for (std::size_t i = 0; i < classNames.size(); ++i) {
        id2label[std::to_string(i)] = classNames[i];
        label2id[classNames[i]] = i;
    }
    // SegformerConfig's fields; the fixed ones are what every B0-B5 checkpoint (and SegScope's
    // model) uses.
    const nlohmann::json config = {
        {"architectures", {"SegformerForSemanticSegmentation"}},
        {"model_type", "segformer"},
        {"num_channels", 3},
        {"num_encoder_blocks", 4},
        {"depths", depths},
        {"hidden_sizes", hidden},
        {"sr_ratios", {8, 4, 2, 1}},
        {"patch_sizes", {7, 3, 3, 3}},
        {"strides", {4, 2, 2, 2}},
        {"num_attention_heads", {1, 2, 5, 8}},
        {"mlp_ratios", {4, 4, 4, 4}},
        {"hidden_act", "gelu"},
        {"hidden_dropout_prob", 0.0},
        {"attention_probs_dropout_prob", 0.0},
        {"classifier_dropout_prob", 0.1},
        {"initializer_range", 0.02},
        {"drop_path_rate", 0.1},
        {"layer_norm_eps", 1e-6},
        {"decoder_hidden_size", need("decode_head.linear_fuse.weight").size(0)},
        {"semantic_loss_ignore_index", 255},
        {"reshape_last_stage", true},
        {"id2label", id2label},
        {"label2id", label2id},
    };
    return config.dump(2) + "\n";
}

void writeSegFormerHfFolder(const std::filesystem::path& folder, const TensorMap& segscopeNames,
                            const std::vector<std::string>& classNames) {
    const std::string config = segFormerHfConfigJson(segscopeNames, classNames);
    std::error_code ec;
    std::filesystem::create_directories(folder, ec);
    if (ec) throw FileError(folder.string(), "cannot create the folder: " + ec.message());
    writeSafetensors(folder / "model.safetensors", segscopeNames, {{"format", "pt"}});
    const auto configPath = folder / "config.json";
    const auto temporary = std::filesystem::path(configPath.string() + ".tmp");
    {
        std::ofstream out(temporary, std::ios::binary | std::ios::trunc);
        out << config;
        out.flush();
        if (!out) {
            std::filesystem::remove(temporary, ec);
            throw FileError(configPath.string(), "write failed (disk full?)");
        }
    }
    std::filesystem::rename(temporary, configPath, ec);
    if (ec) throw FileError(configPath.string(), "cannot replace file: " + ec.message());
}

std::optional<SegFormerNaming> parseSegFormerNaming(const std::string& text) {
    if (text == "4" || text == "4.x" || text == "transformers4") return SegFormerNaming::Transformers4;
    if (text == "5" || text == "5.x" || text == "transformers5") return SegFormerNaming::Transformers5;
    return std::nullopt;
}

}  // namespace segscope::core
