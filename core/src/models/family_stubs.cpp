// Placeholder registrations until each family lands; removed as families are implemented.
#include "segscope/core/models/registry.h"

namespace segscope::core {
void registerResNetModels(std::vector<ModelEntry>&) {}
void registerSegFormerModels(std::vector<ModelEntry>&) {}
void registerVitModels(std::vector<ModelEntry>&) {}
} // namespace segscope::core
