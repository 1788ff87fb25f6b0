#pragma once
// Pretrained backbones: renaming published checkpoints onto the model zoo's state_dict names.
#include "segscope/core/weights.h"

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

} // namespace segscope::core

namespace segscope::core {

// Brings a checkpoint to model `modelId`'s names, whatever its origin:
//   - a torchvision ResNet ImageNet checkpoint, for ResNet-based models (mapPretrainedResNet);
//   - an HF MiT image-classification checkpoint (nvidia/mit-b0 … b5) for SegFormer: its
//     top-level "classifier.*" is dropped, "segformer.encoder.*" kept;
//   - a checkpoint already in the model's reference names (smp, torchvision FCN, HF SegFormer
//     such as the ADE-finetuned ones, SegScope exports) passes through unchanged; a classifier
//     whose class count differs is then skipped by loadStateDict as a shape mismatch.
// Throws Error for an unknown model id.
TensorMap mapPretrained(const std::string& modelId, const TensorMap& checkpoint);

} // namespace segscope::core
