// Precompiled for segscope_core and the core tests: the heavy, stable third-party headers.
#pragma once
#include <torch/torch.h>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>
#include <string>
#include <vector>
