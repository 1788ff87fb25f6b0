#include "segscope/core/data/classes.h"

#include "segscope/core/error.h"

#include <cstdio>
#include <fstream>
#include <sstream>

namespace segscope::core {

Rgb vocColor(int index) {
    // Each bit triple of the index spreads over the top bits of R, G and B.
    int r = 0, g = 0, b = 0;
    int c = index;
    for (int shift = 7; shift >= 0 && c > 0; --shift) {
        r |= (c & 1) << shift;
        g |= ((c >> 1) & 1) << shift;
        b |= ((c >> 2) & 1) << shift;
        c >>= 3;
    }
    return {static_cast<std::uint8_t>(r), static_cast<std::uint8_t>(g), static_cast<std::uint8_t>(b)};
}

std::vector<ClassInfo> vocClasses() {
    static const char* const names[] = {"background", "aeroplane", "bicycle",   "bird",   "boat",        "bottle",
                                        "bus",        "car",       "cat",       "chair",  "cow",         "diningtable",
                                        "dog",        "horse",     "motorbike", "person", "pottedplant", "sheep",
                                        "sofa",       "train",     "tvmonitor"};
    std::vector<ClassInfo> classes;
    for (int i = 0; i < 21; ++i) classes.push_back({names[i], vocColor(i)});
    return classes;
}

std::vector<ClassInfo> readClassesFile(const std::filesystem::path& path) {
    std::ifstream in(path);
    if (!in) throw FileError(path.string(), "cannot open the class list");
    std::vector<ClassInfo> classes;
    std::string line;
    int lineNumber = 0;
    while (std::getline(in, line)) {
        ++lineNumber;
        if (!line.empty() && line.back() == '\r') line.pop_back();
        const auto first = line.find_first_not_of(" \t");
        if (first == std::string::npos || line[first] == '#') continue;
        std::istringstream fields(line.substr(first));
        std::vector<std::string> tokens;
        for (std::string token; fields >> token;) tokens.push_back(token);
        ClassInfo info{tokens[0], vocColor(static_cast<int>(classes.size()))};
        auto bad = [&](const std::string& why) {
            return FileError(path.string(), "line " + std::to_string(lineNumber) + ": " + why);
        };
        if (tokens.size() == 2 && tokens[1].size() == 7 && tokens[1][0] == '#') {
            unsigned value = 0;
            if (std::sscanf(tokens[1].c_str() + 1, "%6x", &value) != 1)
                throw bad("colour '" + tokens[1] + "' is not #RRGGBB");
            info.color = {static_cast<std::uint8_t>(value >> 16), static_cast<std::uint8_t>(value >> 8),
                          static_cast<std::uint8_t>(value)};
        } else if (tokens.size() == 4) {
            int rgb[3];
            for (int k = 0; k < 3; ++k) {
                try {
                    std::size_t used = 0;
                    rgb[k] = std::stoi(tokens[k + 1], &used);
                    if (used != tokens[k + 1].size()) throw std::invalid_argument("junk");
                } catch (const std::exception&) {
                    throw bad("colour component '" + tokens[k + 1] + "' is not an integer");
                }
                if (rgb[k] < 0 || rgb[k] > 255) throw bad("colour component " + tokens[k + 1] + " is outside 0..255");
            }
            info.color = {static_cast<std::uint8_t>(rgb[0]), static_cast<std::uint8_t>(rgb[1]),
                          static_cast<std::uint8_t>(rgb[2])};
        } else if (tokens.size() != 1) {
            throw bad("expected 'name', 'name R G B' or 'name #RRGGBB'");
        }
        classes.push_back(std::move(info));
    }
    if (classes.empty()) throw FileError(path.string(), "the class list is empty");
    if (classes.size() > 255) throw FileError(path.string(), "more than 255 classes (255 is the ignore index)");
    return classes;
}

void writeClassesFile(const std::filesystem::path& path, const std::vector<ClassInfo>& classes) {
    std::ofstream out(path);
    if (!out) throw FileError(path.string(), "cannot write the class list");
    for (const auto& c : classes)
        out << c.name << ' ' << int(c.color.r) << ' ' << int(c.color.g) << ' ' << int(c.color.b) << '\n';
    if (!out) throw FileError(path.string(), "write failed");
}

}  // namespace segscope::core
