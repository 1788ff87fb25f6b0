#pragma once
// SegFormer's two state-dict naming generations, and the transformers folder that
// from_pretrained() reads.
//
//   transformers 4.x  "segformer.encoder.block.0.1.attention.self.query.weight",
//                     "decode_head.linear_c.0.proj.weight"; every checkpoint on the hub
//                     (nvidia/mit-b*, nvidia/segformer-*), save_pretrained() of 4.x and 5.x
//                     (transformers 5 converts back when it saves), and SegScope's own names
//   transformers 5.x  "segformer.stages.0.blocks.1.attention.q_proj.weight",
//                     "decode_head.linear_projections.0.proj.weight"; what Module.state_dict()
//                     of transformers 5 returns (torch.save / safetensors.torch.save_file of it)
//
// Either may come as a full SegformerForSemanticSegmentation, a SegformerForImageClassification
// (encoder plus a top-level "classifier.*", as nvidia/mit-b* are), or a bare SegformerModel
// (encoder keys without the "segformer." prefix). mmseg's MiT names are not read.
#include "segscope/core/models/weights.h"

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace segscope::core {

enum class SegFormerNaming { Transformers4, Transformers5 };

// One rename rule: a dotted key fragment in each generation. "N" stands for a stage index
// (digits). A rule matches whole name components: "layer_norm_1" renames
// "block.0.0.layer_norm_1.weight" but never "xlayer_norm_1".
struct SegFormerRenameRule {
    const char* transformers4;
    const char* transformers5;
};

// The rules of transformers 5's conversion_mapping.py (SegformerModel and
// SegformerForSemanticSegmentation), in the order they are applied to a key.
const std::vector<SegFormerRenameRule>& segFormerRenameRules();

// One key in the other generation: every rule applied once, in table order. Keys no rule
// matches (decode_head.linear_fuse, classifier, ...) come back unchanged.
std::string renameSegFormerKey(const std::string& key, SegFormerNaming from, SegFormerNaming to);

// What a checkpoint's keys say about it.
struct SegFormerLayout {
    std::optional<SegFormerNaming> naming;  // none: no SegFormer key of either generation
    bool mixed = false;                     // keys of both generations (refused by toSegScopeSegFormerNames)
    bool bare = false;                      // encoder keys without "segformer." (SegformerModel, MiT backbone)
    bool decodeHead = false;                // has decode_head.* (a full semantic-segmentation model)
    bool imageClassifier = false;           // has a top-level classifier.* (SegformerForImageClassification)
    std::string describe() const;           // e.g. "HF transformers 5.x SegFormer names (bare SegformerModel backbone)"
};
SegFormerLayout detectSegFormerLayout(const TensorMap& checkpoint);

// A checkpoint of either generation, full or bare, in SegScope's (transformers 4.x) names with
// the "segformer." prefix; a SegformerForImageClassification head ("classifier.*") is dropped.
// Keys of neither generation pass through (the load report lists them as unexpected). Throws
// Error when the keys mix both generations. Tensors are shared, not copied.
TensorMap toSegScopeSegFormerNames(const TensorMap& checkpoint);

// SegScope's SegFormer state dict in `naming` (Transformers4 returns it unchanged).
TensorMap segFormerStateDictIn(const TensorMap& segscopeNames, SegFormerNaming naming);

// transformers' config.json for a SegFormer state dict in SegScope's names, with
// `classNames.size()` labels (id2label/label2id from the names): the architecture
// SegformerForSemanticSegmentation, the sizes read off the tensors (hidden sizes from the stage
// norms, depths from the block counts, the decoder width from linear_fuse) and the B0-B5
// constants and defaults SegScope's model assumes. Throws Error when the state dict is not a
// full SegFormer or its classifier does not have classNames.size() outputs.
std::string segFormerHfConfigJson(const TensorMap& segscopeNames, const std::vector<std::string>& classNames);

// Writes `folder`/config.json and `folder`/model.safetensors (transformers 4.x names, metadata
// format=pt), which SegformerForSemanticSegmentation.from_pretrained(folder) loads with no
// missing or unexpected keys under transformers 4.56 and 5.x (5.x converts the names when it
// loads). Creates the folder. Existing files are replaced; callers check before.
void writeSegFormerHfFolder(const std::filesystem::path& folder, const TensorMap& segscopeNames,
                            const std::vector<std::string>& classNames);

// "4" / "4.x" / "transformers4" and "5" / "5.x" / "transformers5"; nullopt otherwise.
std::optional<SegFormerNaming> parseSegFormerNaming(const std::string& text);

}  // namespace segscope::core
