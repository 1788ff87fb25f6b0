#pragma once
#include <torch/types.h>
#include <opencv2/core.hpp>
#include <QtWidgets>
#include "segscope/ui/qcustomplot_include.h"
