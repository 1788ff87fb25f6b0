#pragma once
// Minimal command-line parsing for segscope-cli: "--name value", "--flag", positionals.
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace segscope::cli {

class UsageError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

class Arguments {
public:
    // `flags` take no value; every other --option takes exactly one (or several, for `multi`).
    Arguments(const std::vector<std::string>& args, const std::vector<std::string>& flags,
              const std::vector<std::string>& multi = {}) {
        for (std::size_t i = 0; i < args.size(); ++i) {
            const std::string& a = args[i];
            if (a.rfind("--", 0) != 0) {
                positionals_.push_back(a);
                continue;
            }
            const std::string name = a.substr(2);
            if (contains(flags, name)) {
                values_[name].push_back("1");
                continue;
            }
            std::size_t arity = 1;
            if (contains(multi, name)) arity = 2;
            for (std::size_t k = 0; k < arity; ++k) {
                if (i + 1 >= args.size()) throw UsageError("option --" + name + " needs a value");
                values_[name].push_back(args[++i]);
            }
        }
    }
    bool has(const std::string& name) const { return values_.count(name) > 0; }
    std::optional<std::string> value(const std::string& name) const {
        auto it = values_.find(name);
        if (it == values_.end()) return std::nullopt;
        return it->second.back();
    }
    std::string required(const std::string& name) const {
        auto v = value(name);
        if (!v) throw UsageError("missing --" + name);
        return *v;
    }
    const std::vector<std::string>& all(const std::string& name) const {
        static const std::vector<std::string> none;
        auto it = values_.find(name);
        return it == values_.end() ? none : it->second;
    }
    long integer(const std::string& name, long fallback) const {
        auto v = value(name);
        if (!v) return fallback;
        try {
            std::size_t used = 0;
            long n = std::stol(*v, &used);
            if (used != v->size()) throw std::invalid_argument(*v);
            return n;
        } catch (const std::exception&) {
            throw UsageError("--" + name + " expects an integer, got '" + *v + "'");
        }
    }
    // A thread count: 0 (all cores) up to `most`; anything else is a UsageError that names the
    // option and the bound.
    static int threadCount(const std::string& option, const std::string& text, int most) {
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
    const std::vector<std::string>& positionals() const { return positionals_; }
    // Rejects options not in `known`.
    void allowOnly(const std::vector<std::string>& known) const {
        for (const auto& [name, v] : values_)
            if (!contains(known, name)) throw UsageError("unknown option --" + name);
    }

private:
    static bool contains(const std::vector<std::string>& list, const std::string& s) {
        for (const auto& x : list)
            if (x == s) return true;
        return false;
    }
    std::map<std::string, std::vector<std::string>> values_;
    std::vector<std::string> positionals_;
};

} // namespace segscope::cli
