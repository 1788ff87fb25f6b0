#pragma once
// segscope_ui builds with QT_NO_KEYWORDS (LibTorch has members named `slots`) and QT_NO_FOREACH.
// QCustomPlot's header still spells `signals:`, `slots` and two `foreach` loops over member
// lists in templates, so give it those words alone; a range-for over the same list is what
// those loops mean.
#define signals Q_SIGNALS
#define slots Q_SLOTS
#define foreach(variable, container) for (variable : container)
#include <qcustomplot.h>
#undef foreach
#undef signals
#undef slots
