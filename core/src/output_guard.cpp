#include "segscope/core/output_guard.h"

#include "segscope/core/error.h"

#include <system_error>

namespace segscope::core {
namespace fs = std::filesystem;

namespace {

// The absolute path with every existing part's links resolved.
fs::path resolved(const fs::path& path) {
    std::error_code ec;
    fs::path out = fs::weakly_canonical(fs::absolute(path, ec), ec);
    return ec ? fs::absolute(path).lexically_normal() : out;
}

bool sameFile(const fs::path& a, const fs::path& b) {
    std::error_code ec;
    if (fs::exists(a, ec) && fs::exists(b, ec)) {
        const bool same = fs::equivalent(a, b, ec);
        if (!ec) return same;
    }
    return resolved(a) == resolved(b);
}

}  // namespace

void checkOutputPath(const fs::path& output, const OutputGuard& guard) {
    const std::string name = output.string();
    for (const auto& input : guard.inputs)
        if (sameFile(output, input))
            throw FileError(name,
                            "is also an input of this command (" + input.string() + "); refusing to write over it");

    const fs::path target = resolved(output);
    std::error_code ec;
    for (fs::path folder = target.parent_path();; folder = folder.parent_path()) {
        if (fs::exists(folder / "segscope.db", ec) || fs::exists(folder / ".segscope" / "segscope.db", ec)) {
            const fs::path relative = target.lexically_relative(folder);
            const std::string first = relative.empty() ? std::string() : relative.begin()->string();
            if (first == ".segscope" || (relative == relative.filename() && first.rfind("segscope.db", 0) == 0))
                throw FileError(name, "is a file of the SegScope workspace " + folder.string() +
                                          "; refusing to write over it (choose a path outside its segscope.db and "
                                          ".segscope/)");
        }
        if (folder == folder.root_path() || folder.empty()) break;
    }

    if (fs::is_directory(target, ec)) throw FileError(name, "is a folder; give a file name");
    if (fs::exists(fs::symlink_status(output, ec)) && !guard.force)
        throw FileError(name, "exists; pass " + guard.forceOption + " to replace it");
}

}  // namespace segscope::core
