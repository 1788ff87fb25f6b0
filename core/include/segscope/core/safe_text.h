#pragma once
// Text that comes from files, file names and libraries, made safe to print and to put in JSON.
//
// Linux file names are bytes, not UTF-8, so a path can hold bytes that JSON cannot carry
// (nlohmann::json::dump() throws type_error.316 on them). LibTorch appends a C++ backtrace to
// its error messages. A hostile file can hold a value of any size or nesting depth, which an
// error message must not echo whole. All functions are pure and safe from any thread.
#include <nlohmann/json_fwd.hpp>

#include <cstddef>
#include <string>
#include <string_view>

namespace segscope::core {

// The Unicode replacement character U+FFFD in UTF-8.
inline constexpr std::string_view kReplacementCharacter = "\xEF\xBF\xBD";

// True when `text` is well-formed UTF-8 (no overlong forms, surrogates or code points past U+10FFFF).
bool isValidUtf8(std::string_view text);

// `text` with every byte that is not part of a well-formed UTF-8 sequence replaced by U+FFFD.
// *replacedBytes (when given) receives the number of bytes replaced.
std::string toValidUtf8(std::string_view text, std::size_t* replacedBytes = nullptr);

// The key dumpJson() adds to a top-level object when it had to replace bytes: the number of
// bytes replaced, so a reader of the JSON knows a name in it is not exact.
inline constexpr const char* kReplacedBytesKey = "invalid_utf8_bytes_replaced";

// value.dump(indent) that never throws: strings and keys that are not valid UTF-8 are written
// with their invalid bytes replaced by U+FFFD, and then, when `value` is an object, it also gets
// "invalid_utf8_bytes_replaced": N. *replacedBytes (when given) receives N (0: exact output).
std::string dumpJson(const nlohmann::json& value, int indent = -1, std::size_t* replacedBytes = nullptr);

// An exception's text without LibTorch's backtrace: everything from "Exception raised from"
// (c10::Error) or a "frame #0:" line on is dropped, and trailing blank lines with it.
std::string withoutBacktrace(std::string_view message);

// At most `maxBytes` bytes of `text` for an error message, cut at a UTF-8 boundary; a cut text
// ends in "… (N bytes)". Invalid UTF-8 is replaced.
std::string truncateForMessage(std::string_view text, std::size_t maxBytes = 120);

// A JSON value as an error message shows it: compact JSON, at most `maxBytes` bytes, nested
// arrays and objects past the second level written as [...] and {...}. Never recurses deeper
// than that, whatever the value's depth.
std::string jsonForMessage(const nlohmann::json& value, std::size_t maxBytes = 120);

}  // namespace segscope::core
