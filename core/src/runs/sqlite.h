#pragma once
// Private to core/src/runs: the SQLite statement wrapper of the run store.
#include <sqlite3.h>

#include <cstdint>
#include <optional>
#include <string>

namespace segscope::core::runs_detail {

// A prepared statement that finalizes itself, with typed binds and column reads.
class Statement {
public:
    Statement(sqlite3_stmt* statement, bool owned = true) : statement_(statement), owned_(owned) {}
    ~Statement() {
        if (owned_)
            sqlite3_finalize(statement_);
        else
            sqlite3_reset(statement_);
    }
    Statement(const Statement&) = delete;
    Statement& operator=(const Statement&) = delete;

    Statement& bind(int i, const std::string& v) {
        sqlite3_bind_text(statement_, i, v.c_str(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
        return *this;
    }
    Statement& bind(int i, const char* v) { return bind(i, std::string(v)); }
    Statement& bind(int i, std::int64_t v) {
        sqlite3_bind_int64(statement_, i, v);
        return *this;
    }
    Statement& bind(int i, int v) { return bind(i, static_cast<std::int64_t>(v)); }
    Statement& bind(int i, double v) {
        sqlite3_bind_double(statement_, i, v);
        return *this;
    }
    template <typename T>
    Statement& bind(int i, const std::optional<T>& v) {
        if (v) return bind(i, *v);
        sqlite3_bind_null(statement_, i);
        return *this;
    }
    Statement& bindTextOrNull(int i, const std::string& v) {
        if (v.empty())
            sqlite3_bind_null(statement_, i);
        else
            bind(i, v);
        return *this;
    }
    // SQLITE_ROW or SQLITE_DONE; anything else is returned for the caller to report.
    int step() { return sqlite3_step(statement_); }
    // Ready for the next set of binds.
    void reset() {
        sqlite3_reset(statement_);
        sqlite3_clear_bindings(statement_);
    }

    std::string text(int column) const {
        const auto* p = sqlite3_column_text(statement_, column);
        return p ? reinterpret_cast<const char*>(p) : std::string();
    }
    std::int64_t integer(int column) const { return sqlite3_column_int64(statement_, column); }
    double real(int column) const { return sqlite3_column_double(statement_, column); }
    bool isNull(int column) const { return sqlite3_column_type(statement_, column) == SQLITE_NULL; }
    std::optional<double> optionalReal(int column) const {
        if (isNull(column)) return std::nullopt;
        return real(column);
    }
    std::optional<std::int64_t> optionalInteger(int column) const {
        if (isNull(column)) return std::nullopt;
        return integer(column);
    }

private:
    sqlite3_stmt* statement_;
    bool owned_;
};

}  // namespace segscope::core::runs_detail
