#pragma once
#include <torch/types.h>
#include <QtWidgets>
#include <opencv2/core.hpp>
#include "segscope/ui/qcustomplot_include.h"
