#pragma once
// Private to the core: CUDA autocast for the lifetime of a scope (training and evaluation). In
// models/, beside eval_mode_scope.h, so that analysis/ can use it without including training/.
#include <ATen/autocast_mode.h>

namespace segscope::core {

class AutocastScope {
public:
    AutocastScope(bool enabled, at::ScalarType dtype) : enabled_(enabled) {
        if (!enabled_) return;
        previous_ = at::autocast::is_autocast_enabled(at::kCUDA);
        previousType_ = at::autocast::get_autocast_dtype(at::kCUDA);
        at::autocast::set_autocast_enabled(at::kCUDA, true);
        at::autocast::set_autocast_dtype(at::kCUDA, dtype);
    }
    ~AutocastScope() {
        if (!enabled_) return;
        at::autocast::set_autocast_enabled(at::kCUDA, previous_);
        at::autocast::set_autocast_dtype(at::kCUDA, previousType_);
        at::autocast::clear_cache();
    }
    AutocastScope(const AutocastScope&) = delete;
    AutocastScope& operator=(const AutocastScope&) = delete;

private:
    bool enabled_;
    bool previous_ = false;
    at::ScalarType previousType_ = at::kHalf;
};

}  // namespace segscope::core
