// --set: "section.field=value" read as the field's type, applied through the document so that
// parseExperiment() validates the result exactly as it validates a file.
#include "segscope/core/experiment.h"

#include "experiment_fields.h"

#include "segscope/core/safe_text.h"

#include <nlohmann/json.hpp>

#include <sstream>
#include <string>

namespace segscope::core {

using json = nlohmann::json;
using namespace detail;

void applyOverride(Experiment& experiment, const std::string& assignment) {
    const auto eq = assignment.find('=');
    if (eq == std::string::npos || eq == 0)
        throw ExperimentError({{truncateForMessage(assignment, 60), "expected section.field=value"}});
    const std::string path = assignment.substr(0, eq);
    const std::string text = assignment.substr(eq + 1);
    const FieldSpec* field = findField(path);
    if (!field || path == "version") {
        const auto dot = path.find('.');
        const std::string section = dot == std::string::npos ? "" : path.substr(0, dot);
        const bool knownSection = section.empty() || isSection(section);
        throw ExperimentError(
            {{truncateForMessage(path, 60), "unknown field; known: " + knownKeys(knownSection ? section : "")}});
    }
    json doc = toJson(experiment);
    json& target = field->section[0] ? doc[field->section] : doc;
    if (field->nullable && text == "null") {
        target.erase(field->key);
    } else {
        if (!text.empty() && (text.front() == '[' || text.front() == '"' || text.front() == '{'))
            if (const auto problem = scanJsonText(text)) throw ExperimentError({{path, problem->message}});
        json value = text;  // unparseable values stay strings, so parseExperiment reports the type
        auto whole = [&text](std::size_t used) { return used == text.size() && !text.empty(); };
        try {
            std::size_t used = 0;
            switch (field->type) {
                case FieldType::Integer: {
                    const long long v = std::stoll(text, &used);
                    if (whole(used)) value = v;
                    break;
                }
                case FieldType::Number: {
                    const double v = std::stod(text, &used);
                    if (whole(used)) value = v;
                    break;
                }
                case FieldType::Boolean:
                    if (text == "true" || text == "1" || text == "yes" || text == "on") value = true;
                    if (text == "false" || text == "0" || text == "no" || text == "off") value = false;
                    break;
                case FieldType::String:
                    if (text.size() >= 2 && text.front() == '"') value = json::parse(text);
                    break;
                case FieldType::NumberArray:
                    if (!text.empty() && text.front() == '[') {
                        value = json::parse(text);
                    } else {
                        json array = json::array();
                        std::stringstream parts(text);
                        std::string part;
                        bool ok = true;
                        while (std::getline(parts, part, ',')) {
                            std::size_t n = 0;
                            const double v = std::stod(part, &n);
                            ok = ok && n == part.size();
                            array.push_back(v);
                        }
                        if (ok && !array.empty()) value = array;
                    }
                    break;
            }
        } catch (const std::exception&) {
            // Leave `value` as the raw string: the error names the field and the expected type.
        }
        target[field->key] = value;
        if (path == "training.epochs") target.erase("iterations");
        if (path == "training.iterations") target.erase("epochs");
    }
    experiment = parseExperiment(doc);
}

}  // namespace segscope::core
