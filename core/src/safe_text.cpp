#include "segscope/core/safe_text.h"

#include <nlohmann/json.hpp>

#include <algorithm>

namespace segscope::core {
namespace {

using json = nlohmann::json;

// Length of the well-formed UTF-8 sequence starting at text[i], or 0 when it is not one.
std::size_t sequenceLength(std::string_view text, std::size_t i) {
    const auto byte = [&](std::size_t k) { return static_cast<unsigned char>(text[k]); };
    const unsigned char c = byte(i);
    if (c < 0x80) return 1;
    std::size_t length = 0;
    unsigned char low = 0x80, high = 0xBF;  // allowed range of the second byte
    if (c >= 0xC2 && c <= 0xDF) {
        length = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        length = 3;
        if (c == 0xE0) low = 0xA0;   // overlong
        if (c == 0xED) high = 0x9F;  // surrogates
    } else if (c >= 0xF0 && c <= 0xF4) {
        length = 4;
        if (c == 0xF0) low = 0x90;   // overlong
        if (c == 0xF4) high = 0x8F;  // past U+10FFFF
    } else {
        return 0;
    }
    if (i + length > text.size()) return 0;
    if (byte(i + 1) < low || byte(i + 1) > high) return 0;
    for (std::size_t k = 2; k < length; ++k)
        if (byte(i + k) < 0x80 || byte(i + k) > 0xBF) return 0;
    return length;
}

// Replaces invalid bytes in every string and key, down to a depth no JSON we write reaches;
// anything deeper is left to dump()'s own replacement.
void sanitize(json& value, std::size_t& replaced, int depth) {
    if (depth > 256) return;
    if (value.is_string()) {
        std::string& text = value.get_ref<std::string&>();
        if (!isValidUtf8(text)) {
            std::size_t n = 0;
            text = toValidUtf8(text, &n);
            replaced += n;
        }
    } else if (value.is_array()) {
        for (auto& element : value) sanitize(element, replaced, depth + 1);
    } else if (value.is_object()) {
        bool badKey = false;
        for (auto it = value.begin(); it != value.end(); ++it) badKey = badKey || !isValidUtf8(it.key());
        if (badKey) {
            json rebuilt = json::object();
            for (auto it = value.begin(); it != value.end(); ++it) {
                std::size_t n = 0;
                rebuilt[toValidUtf8(it.key(), &n)] = std::move(it.value());
                replaced += n;
            }
            value = std::move(rebuilt);
        }
        for (auto& [key, element] : value.items()) sanitize(element, replaced, depth + 1);
    }
}

}  // namespace

bool isValidUtf8(std::string_view text) {
    for (std::size_t i = 0; i < text.size();) {
        const std::size_t n = sequenceLength(text, i);
        if (n == 0) return false;
        i += n;
    }
    return true;
}

std::string toValidUtf8(std::string_view text, std::size_t* replacedBytes) {
    std::string out;
    out.reserve(text.size());
    std::size_t replaced = 0;
    for (std::size_t i = 0; i < text.size();) {
        const std::size_t n = sequenceLength(text, i);
        if (n == 0) {
            out += kReplacementCharacter;
            ++replaced;
            ++i;
        } else {
            out.append(text.substr(i, n));
            i += n;
        }
    }
    if (replacedBytes) *replacedBytes = replaced;
    return out;
}

std::string dumpJson(const json& value, int indent, std::size_t* replacedBytes) {
    if (replacedBytes) *replacedBytes = 0;
    try {
        return value.dump(indent);
    } catch (const json::type_error&) {
        // Only invalid UTF-8 makes dump() throw; fall through to the replacing copy.
    }
    json copy = value;
    std::size_t replaced = 0;
    sanitize(copy, replaced, 0);
    if (copy.is_object()) copy[kReplacedBytesKey] = replaced;
    if (replacedBytes) *replacedBytes = replaced;
    return copy.dump(indent, ' ', false, json::error_handler_t::replace);
}

std::string withoutBacktrace(std::string_view message) {
    std::size_t cut = message.size();
    for (std::string_view marker : {std::string_view("Exception raised from "), std::string_view("frame #0:")}) {
        const std::size_t at = message.find(marker);
        if (at != std::string_view::npos) cut = std::min(cut, at);
    }
    std::string out(message.substr(0, cut));
    while (!out.empty() && (out.back() == '\n' || out.back() == ' ' || out.back() == '\r')) out.pop_back();
    return out;
}

std::string truncateForMessage(std::string_view text, std::size_t maxBytes) {
    if (text.size() <= maxBytes) return toValidUtf8(text);
    std::size_t cut = maxBytes;
    // Back up to the start of a UTF-8 sequence so the cut never splits a character.
    while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;
    return toValidUtf8(text.substr(0, cut)) + "\xE2\x80\xA6 (" + std::to_string(text.size()) + " bytes)";
}

namespace {

void appendBounded(const json& value, std::string& out, std::size_t budget, int depth) {
    if (out.size() >= budget) return;
    if (value.is_string()) {
        const std::string& text = value.get_ref<const std::string&>();
        const std::string shown = text.size() > budget ? text.substr(0, budget) : text;
        out += json(toValidUtf8(shown)).dump();
        return;
    }
    if (value.is_array()) {
        if (value.empty()) {
            out += "[]";
            return;
        }
        if (depth >= 2) {
            out += "[...]";
            return;
        }
        out += '[';
        bool first = true;
        for (const auto& element : value) {
            if (out.size() >= budget) break;
            if (!first) out += ',';
            first = false;
            appendBounded(element, out, budget, depth + 1);
        }
        out += ']';
        return;
    }
    if (value.is_object()) {
        if (value.empty()) {
            out += "{}";
            return;
        }
        if (depth >= 2) {
            out += "{...}";
            return;
        }
        out += '{';
        bool first = true;
        for (auto it = value.begin(); it != value.end(); ++it) {
            if (out.size() >= budget) break;
            if (!first) out += ',';
            first = false;
            const std::string& key = it.key();
            out += json(toValidUtf8(key.size() > budget ? key.substr(0, budget) : key)).dump();
            out += ':';
            appendBounded(it.value(), out, budget, depth + 1);
        }
        out += '}';
        return;
    }
    out += value.dump();  // numbers, booleans, null: short
}

}  // namespace

std::string jsonForMessage(const json& value, std::size_t maxBytes) {
    std::string out;
    appendBounded(value, out, maxBytes + 1, 0);
    if (out.size() <= maxBytes) return out;
    std::size_t cut = maxBytes;
    while (cut > 0 && (static_cast<unsigned char>(out[cut]) & 0xC0) == 0x80) --cut;
    out.resize(cut);
    return out + "\xE2\x80\xA6";
}

}  // namespace segscope::core
