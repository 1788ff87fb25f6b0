#pragma once
// The check a command makes before it writes a file the user named (export --out, forward
// --output, ...), so that a slip of the keyboard never destroys an input or a workspace.
#include <filesystem>
#include <string>
#include <vector>

namespace segscope::core {

struct OutputGuard {
    // Files this command reads (weights, images, checkpoints): never written over, even with force.
    std::vector<std::filesystem::path> inputs;
    // Replace an existing file that is neither an input nor a workspace file.
    bool force = false;
    // Named in the message that asks for it ("--force").
    std::string forceOption = "--force";
};

// Throws FileError(output, reason) when writing `output` would
//   - replace one of guard.inputs (same file, through any path or link);
//   - replace a workspace's own files: "segscope.db" and its companions ("segscope.db-wal", ...)
//     or anything under ".segscope/" in a workspace folder, one that holds segscope.db or
//     .segscope/segscope.db (any ancestor of `output`, links resolved);
//   - replace a folder;
//   - replace an existing file while !guard.force ("exists; pass --force to replace it").
// Does nothing for a path that does not exist yet and is none of the above.
void checkOutputPath(const std::filesystem::path& output, const OutputGuard& guard);

}  // namespace segscope::core
