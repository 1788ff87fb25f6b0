// Placeholder: this family's models are not implemented yet.
#include "segscope/core/models/registry.h"

namespace segscope::core {
void registerVitModels(std::vector<ModelEntry>&) {}
} // namespace segscope::core
