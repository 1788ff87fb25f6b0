#pragma once
// Class tables: names and display colours, and the PASCAL VOC defaults.
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace segscope::core {

// Label value that marks pixels excluded from loss and metrics (VOC's "void").
inline constexpr std::uint8_t kIgnoreIndex = 255;

struct Rgb {
    std::uint8_t r = 0, g = 0, b = 0;
    friend bool operator==(Rgb a, Rgb b) { return a.r == b.r && a.g == b.g && a.b == b.b; }
    friend bool operator!=(Rgb a, Rgb b) { return !(a == b); }
};

struct ClassInfo {
    std::string name;
    Rgb color;
};

// The standard PASCAL VOC colour map (bit-interleaved), defined for every value 0..255.
Rgb vocColor(int index);
// VOC's colour for void (255): (224, 224, 192).
inline constexpr Rgb kVocVoidColor{224, 224, 192};

// The 21 VOC 2012 classes, "background" first, with the VOC colour map.
std::vector<ClassInfo> vocClasses();

// Reads a classes.txt: one class per line, "name" or "name R G B" or "name #RRGGBB".
// Blank lines and lines starting with '#' are skipped. Classes without a colour take the VOC
// colour of their index. Throws FileError naming the file and line on malformed input.
std::vector<ClassInfo> readClassesFile(const std::filesystem::path& path);
void writeClassesFile(const std::filesystem::path& path, const std::vector<ClassInfo>& classes);

}  // namespace segscope::core
