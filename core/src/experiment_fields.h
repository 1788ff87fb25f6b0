#pragma once
// Private to the experiment sources (experiment.cpp, experiment_set.cpp): the field table of
// version 1 and the pass over JSON text that runs before nlohmann parses it.
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace segscope::core::detail {

inline constexpr std::size_t kMaxDepth = 64;  // an experiment is 3 levels deep

struct TextProblem {
    bool nesting = false;  // too deep (else: a number out of range)
    std::string field;     // dotted path where it was found
    std::string message;
};

// A pass over JSON text before nlohmann parses it: refuses nesting deeper than kMaxDepth (whose
// parse and later copies recurse) and numbers no double holds (1e400, which nlohmann reports
// as out_of_range.406 without saying where), naming the field.
std::optional<TextProblem> scanJsonText(std::string_view text);
// json::parse of text already scanned; nlohmann's own message, bounded.
nlohmann::json parseScannedJson(std::string_view text);

enum class FieldType { Integer, Number, Boolean, String, NumberArray };

struct FieldSpec {
    const char* section;  // "" for top-level fields
    const char* key;
    FieldType type;
    bool nullable;  // optional field: null or absent means unset
};

// Every field of version 1, in document order (kFieldCount of them). Used for unknown-field
// checks and to type --set values; parseExperiment() reads each of them.
extern const FieldSpec kFields[];
extern const std::size_t kFieldCount;
// The sections, in document order (kSectionCount of them).
extern const char* const kSections[];
extern const std::size_t kSectionCount;
bool isSection(const std::string& name);

std::string joinPath(const std::string& section, const std::string& key);
// The keys of `section` (top level: its fields and the sections), comma-separated.
std::string knownKeys(const std::string& section);
// The field at a dotted path, or nullptr.
const FieldSpec* findField(const std::string& path);

}  // namespace segscope::core::detail
