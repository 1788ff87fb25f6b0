#include "experiment_fields.h"

#include "segscope/core/safe_text.h"

#include <cctype>
#include <cmath>
#include <cstdlib>
#include <vector>

namespace segscope::core::detail {

using json = nlohmann::json;

std::optional<TextProblem> scanJsonText(std::string_view text) {
    struct Level {
        bool object = false;
        std::string key;
        std::size_t index = 0;
    };
    std::vector<Level> stack;
    std::string lastString;
    std::size_t line = 1;
    auto where = [&stack] {
        std::string path;
        for (const Level& level : stack) {
            if (level.object) {
                if (!level.key.empty()) path += (path.empty() ? "" : ".") + level.key;
            } else {
                path += "[" + std::to_string(level.index) + "]";
            }
        }
        return path;
    };
    for (std::size_t i = 0; i < text.size(); ++i) {
        const char c = text[i];
        if (c == '\n') {
            ++line;
        } else if (c == '"') {
            lastString.clear();
            std::size_t j = i + 1;
            for (; j < text.size() && text[j] != '"'; ++j) {
                if (text[j] == '\\')
                    ++j;
                else if (lastString.size() < 64)
                    lastString += text[j];
            }
            i = j;
        } else if (c == '{' || c == '[') {
            if (stack.size() >= kMaxDepth)
                return TextProblem{true, where(),
                                   "nested deeper than " + std::to_string(kMaxDepth) + " levels at line " +
                                       std::to_string(line) + " (an experiment is 3 levels deep)"};
            stack.push_back({c == '{', {}, 0});
        } else if (c == '}' || c == ']') {
            if (!stack.empty()) stack.pop_back();
        } else if (c == ':') {
            if (!stack.empty() && stack.back().object) stack.back().key = truncateForMessage(lastString, 60);
        } else if (c == ',') {
            if (!stack.empty() && !stack.back().object) ++stack.back().index;
        } else if (c == '-' || (c >= '0' && c <= '9')) {
            std::size_t j = i;
            while (j < text.size() && (std::isdigit(static_cast<unsigned char>(text[j])) || text[j] == '-' ||
                                       text[j] == '+' || text[j] == '.' || text[j] == 'e' || text[j] == 'E'))
                ++j;
            const std::string token(text.substr(i, j - i));
            const double value = std::strtod(token.c_str(), nullptr);
            if (!std::isfinite(value))
                return TextProblem{false, where(),
                                   "number " + truncateForMessage(token, 40) + " at line " + std::to_string(line) +
                                       " is out of range (larger than any number a double holds)"};
            i = j - 1;
        }
    }
    return std::nullopt;
}

// json::parse of text already scanned; nlohmann's own message, bounded.
json parseScannedJson(std::string_view text) {
    return json::parse(text.begin(), text.end());
}

const FieldSpec kFields[] = {
    {"", "version", FieldType::Integer, false},
    {"", "name", FieldType::String, false},
    {"", "description", FieldType::String, true},
    {"dataset", "kind", FieldType::String, false},
    {"dataset", "root", FieldType::String, true},
    {"dataset", "train_split", FieldType::String, false},
    {"dataset", "val_split", FieldType::String, false},
    {"dataset", "pets_mode", FieldType::String, false},
    {"dataset", "validation_fraction", FieldType::Number, false},
    {"dataset", "validation_seed", FieldType::Integer, false},
    {"dataset", "void_to_background", FieldType::Boolean, false},
    {"model", "id", FieldType::String, false},
    {"model", "classes", FieldType::Integer, true},
    {"model", "pretrained", FieldType::String, true},
    {"model", "pretrained_strict", FieldType::Boolean, false},
    {"transforms", "height", FieldType::Integer, false},
    {"transforms", "width", FieldType::Integer, false},
    {"transforms", "mode", FieldType::String, false},
    {"transforms", "base_short_side", FieldType::Integer, false},
    {"transforms", "scale_min", FieldType::Number, false},
    {"transforms", "scale_max", FieldType::Number, false},
    {"transforms", "horizontal_flip", FieldType::Boolean, false},
    {"transforms", "photometric", FieldType::Boolean, false},
    {"transforms", "normalization", FieldType::String, false},
    {"optimizer", "type", FieldType::String, false},
    {"optimizer", "lr", FieldType::Number, false},
    {"optimizer", "momentum", FieldType::Number, false},
    {"optimizer", "nesterov", FieldType::Boolean, false},
    {"optimizer", "weight_decay", FieldType::Number, false},
    {"optimizer", "betas", FieldType::NumberArray, false},
    {"optimizer", "head_lr_multiplier", FieldType::Number, false},
    {"schedule", "type", FieldType::String, false},
    {"schedule", "step_size", FieldType::Integer, false},
    {"schedule", "gamma", FieldType::Number, false},
    {"schedule", "per", FieldType::String, false},
    {"schedule", "power", FieldType::Number, false},
    {"schedule", "min_lr", FieldType::Number, false},
    {"schedule", "warmup_iterations", FieldType::Integer, false},
    {"schedule", "warmup_ratio", FieldType::Number, false},
    {"training", "epochs", FieldType::Integer, true},
    {"training", "iterations", FieldType::Integer, true},
    {"training", "batch_size", FieldType::Integer, false},
    {"training", "grad_accumulation", FieldType::Integer, false},
    {"training", "grad_clip_norm", FieldType::Number, false},
    {"training", "val_every", FieldType::Integer, false},
    {"training", "val_every_unit", FieldType::String, false},
    {"training", "loss", FieldType::String, false},
    {"training", "class_weights", FieldType::NumberArray, true},
    {"training", "dice_weight", FieldType::Number, false},
    {"training", "eval_resolution", FieldType::String, false},
    {"training", "amp", FieldType::String, false},
    {"training", "channels_last", FieldType::Boolean, false},
    {"training", "checkpoint_every", FieldType::Integer, false},
    {"training", "erf_every_epochs", FieldType::Integer, false},
    {"training", "erf_images", FieldType::Integer, false},
    {"training", "oom_retry_half_batch", FieldType::Boolean, false},
    {"runtime", "device", FieldType::String, false},
    {"runtime", "threads", FieldType::Integer, false},
    {"runtime", "workers", FieldType::Integer, false},
    {"runtime", "seed", FieldType::Integer, false},
    {"runtime", "deterministic", FieldType::Boolean, false},
};

const std::size_t kFieldCount = sizeof kFields / sizeof kFields[0];

const char* const kSections[] = {"dataset", "model", "transforms", "optimizer", "schedule", "training", "runtime"};
const std::size_t kSectionCount = sizeof kSections / sizeof kSections[0];

bool isSection(const std::string& name) {
    for (std::size_t i = 0; i < kSectionCount; ++i)
        if (name == kSections[i]) return true;
    return false;
}

std::string joinPath(const std::string& section, const std::string& key) {
    return section.empty() ? key : section + "." + key;
}

std::string knownKeys(const std::string& section) {
    std::string out;
    auto add = [&out](const std::string& k) { out += (out.empty() ? "" : ", ") + k; };
    for (std::size_t i = 0; i < kFieldCount; ++i)
        if (section == kFields[i].section) add(kFields[i].key);
    if (section.empty())
        for (std::size_t i = 0; i < kSectionCount; ++i) add(kSections[i]);
    return out;
}

const FieldSpec* findField(const std::string& path) {
    for (std::size_t i = 0; i < kFieldCount; ++i)
        if (joinPath(kFields[i].section, kFields[i].key) == path) return &kFields[i];
    return nullptr;
}

}  // namespace segscope::core::detail
