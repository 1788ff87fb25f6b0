// Option helpers shared by segscope-cli's commands.
#include "commands.h"

namespace segscope::cli {

CLI::Option* addIntegerOption(CLI::App& app, const std::string& name, std::optional<std::string>& text,
                              const std::string& help, std::optional<long> fallback) {
    CLI::Option* option = app.add_option(name, text, help)->type_name("INT");
    if (fallback) option->default_str(std::to_string(*fallback));
    return option;
}

long integerValue(const std::string& name, const std::optional<std::string>& text, long fallback) {
    if (!text) return fallback;
    try {
        std::size_t used = 0;
        const long n = std::stol(*text, &used);
        if (used != text->size()) throw std::invalid_argument(*text);
        return n;
    } catch (const std::exception&) {
        throw UsageError("--" + name + " expects an integer, got '" + *text + "'");
    }
}

int threadCount(const std::string& option, const std::string& text, int most) {
    const std::string bound = "--" + option + " must be an integer from 0 (all cores) to " + std::to_string(most) +
                              " (4 per hardware thread of this machine), got '" +
                              (text.size() > 40 ? text.substr(0, 40) + "..." : text) + "'";
    try {
        std::size_t used = 0;
        const long long n = std::stoll(text, &used);
        if (used == text.size() && n >= 0 && n <= most) return static_cast<int>(n);
    } catch (const std::exception&) {
    }
    throw UsageError(bound);
}

}  // namespace segscope::cli
