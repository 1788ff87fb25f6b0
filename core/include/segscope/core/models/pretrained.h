#pragma once
// Pretrained backbones: renaming published checkpoints onto the model zoo's state_dict names.
#include "segscope/core/models/model.h"
#include "segscope/core/models/weights.h"

#include <filesystem>
#include <string>

namespace segscope::core {

// Renames a torchvision ImageNet ResNet state_dict (keys "conv1.weight", "bn1.running_mean",
// "layer1.0.conv1.weight", …, "fc.weight") to the encoder names of model `modelId`:
//   smp models (unet-resnetN, fpn-resnet50, deeplabv3plus-resnet50): "encoder." + key
//   fcn-resnet50:                                                    "backbone." + key
//   unet-seed-resnet50: conv1/bn1 -> encoder1.0/encoder1.1, layer1 -> encoder2.1,
//                       layer2..layer4 -> encoder3..encoder5
// "fc.*" entries are dropped; tensors are shared, not copied. The checkpoint's depth must match
// the model's (a mismatch shows up as shape errors when loading). Throws Error when `modelId` is
// not a ResNet-based model, or a key is not part of a torchvision ResNet.
// The result loads with loadStateDict(model, mapped) and leaves only head parameters missing.
TensorMap mapPretrainedResNet(const std::string& modelId, const TensorMap& torchvision);

// Renames a timm VisionTransformer checkpoint (keys "patch_embed.proj.weight", "cls_token",
// "pos_embed", "blocks.N.…", "norm.*", "head.*") to the encoder of Segmenter ("encoder." + key)
// or SETR ("backbone." + key) model `modelId`:
//   - "head.*" and "fc_norm.*" (the classifier) are dropped; so is "norm.*" for SETR, whose
//     mmseg backbone has no final norm;
//   - "pos_embed" (1, 1 + n*n, dim) is resized from its n×n grid (14×14 for a 224-pixel
//     checkpoint at patch 16) to the model's default grid (512 / patch) bilinearly,
//     align_corners=false, keeping the cls position entry — the resize the model's forward
//     itself applies at other input sizes (timm's own resample defaults to bicubic);
//   - every other tensor is shared, not copied.
// Throws Error when `modelId` is not a Segmenter or SETR model, when the checkpoint lacks
// patch_embed.proj.weight or pos_embed, or when its patch size or width differs from the model's
// (e.g. a ViT-S/16 checkpoint for segmenter-linear-vit-tiny-p16); the message shows both shapes.
// Builds the model once to learn its shapes (ViT-large: a few seconds).
// The result loads with loadStateDict(model, mapped) and leaves only decoder parameters missing.
TensorMap mapPretrainedVit(const std::string& modelId, const TensorMap& timm);

}  // namespace segscope::core

namespace segscope::core {

// Brings a checkpoint to model `modelId`'s names, whatever its origin:
//   - a torchvision ResNet ImageNet checkpoint, for ResNet-based models (mapPretrainedResNet);
//   - an HF SegFormer checkpoint for SegFormer, in transformers 4.x or 5.x names (detected from
//     the keys: toSegScopeSegFormerNames), full, bare SegformerModel, or an MiT
//     image-classification checkpoint (nvidia/mit-b0 … b5) whose top-level "classifier.*" is
//     dropped;
//   - a timm ViT checkpoint (top-level "patch_embed.proj.weight" and "pos_embed") for Segmenter
//     and SETR (mapPretrainedVit);
//   - a checkpoint already in the model's reference names (smp, torchvision FCN, HF SegFormer
//     such as the ADE-finetuned ones, SegScope exports) passes through unchanged; a classifier
//     whose class count differs is then skipped by loadStateDict as a shape mismatch.
// Throws Error for an unknown model id.
TensorMap mapPretrained(const std::string& modelId, const TensorMap& checkpoint);

// In words, what a checkpoint's names look like, for messages: "torchvision ResNet (ImageNet
// backbone)", "timm ViT", "HF transformers 5.x SegFormer names (...)", "segmentation_models_pytorch
// / torchvision names (encoder.*, decoder.*)", ... or "unrecognised names (first: a, b, c)".
std::string describeCheckpoint(const TensorMap& checkpoint);

// Loads a weights file that must fit `model` (zoo id `modelId`) exactly, as forward and
// erf --weights do: read (readWeightsFile), mapped (mapPretrained), then every tensor of the
// model must be loaded and every tensor of the file used. Unless `allowPartial`, throws
// FileError naming the file with the load report (the first missing, unexpected and
// other-shape keys) and the detected naming. Returns the report.
LoadReport loadWeightsForModel(SegmentationModel& model, const std::string& modelId, const std::filesystem::path& path,
                               bool allowPartial);

// A pretrained start (experiment model.pretrained): loads `path` into `model` after
// mapPretrained. Only what lies outside the encoder (model.isHeadParameter) may stay unloaded:
// the decoder and classifier of a backbone checkpoint (torchvision ResNet, MiT, timm ViT), or a
// classifier whose class count differs. Throws FileError naming the file when
//   - any encoder tensor stays unloaded (missing, or another shape): the message names the first
//     keys, the detected naming (describeCheckpoint) and what to do;
//   - `strict` (pretrained_strict) and the file has tensors the model does not (unexpected);
//   - no tensor loads at all.
// Returns the lines to log: the load summary, and what was skipped outside the encoder and why.
std::string loadPretrainedStart(SegmentationModel& model, const std::string& modelId, const std::filesystem::path& path,
                                bool strict);

}  // namespace segscope::core
