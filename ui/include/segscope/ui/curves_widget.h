#pragma once
// Live training curves (QCustomPlot) for one or several runs.
//
// Top: training loss per step (raw, thin; EMA-smoothed, bold) with the learning rate on the
// right axis. Bottom: validation mIoU, aAcc and mAcc, per-class IoU curves (toggled per class),
// the best epoch marked. The x axis shows step, epoch or wall time. Data lives in plain vectors;
// a timer rebuilds the graphs at most a few times per second, downsampled (min/max per pixel
// column) to the plot's width, and replots through QCustomPlot's queued replot. GUI thread only.
#include "segscope/core/training/trainer.h"

#include <QColor>
#include <QHash>
#include <QSet>
#include <QStringList>
#include <QVector>
#include <QWidget>

class QCheckBox;
class QComboBox;
class QCPGraph;
class QCPItemText;
class QCustomPlot;
class QListWidget;
class QSlider;
class QTimer;

namespace segscope::core {
class RunStore;
}

namespace segscope::ui {

enum class XAxisMode { Step, Epoch, WallTime };

class CurvesWidget : public QWidget {
    Q_OBJECT
public:
    explicit CurvesWidget(QWidget* parent = nullptr);

    // Adds a run (a no-op when present); each run gets its own colour.
    void addRun(const QString& runId, const QString& label);
    void removeRun(const QString& runId);
    void clear();
    QStringList runs() const { return order_; }
    void setStepsPerEpoch(const QString& runId, std::int64_t stepsPerEpoch);
    void setClassNames(const QString& runId, const QStringList& names);
    void appendSteps(const QString& runId, const QVector<core::StepEvent>& steps);
    void appendValidation(const QString& runId, const core::ValidationEvent& event);
    // Loads a recorded run's steps and evaluations from the store (compare, replay sources).
    void loadFromStore(core::RunStore& store, const QString& runId, const QString& label);

    void setXAxisMode(XAxisMode mode);
    void setLogScale(bool logScale);
    void setSmoothing(double weight);  // EMA weight in [0, 0.999]
    void setPresenterMode(bool on);    // thick, high-contrast curves and large fonts

    // Exports the two plots as NAME-loss.EXT and NAME-validation.EXT next to `path`, by its
    // suffix: .pdf and .svg as vector graphics, anything else as PNG (1200 x 500). Returns false
    // when a file cannot be written.
    bool exportPlots(const QString& path);
    // CSV of every recorded point of every run.
    bool exportCsv(const QString& path) const;

    int stepPointCount(const QString& runId) const;
    int validationPointCount(const QString& runId) const;
    // Per-class IoU toggles: every class is shown unless the user unticks it; the classes with the
    // lowest IoU at the latest evaluation are marked (bold, red, tooltip).
    QListWidget* classToggles() const { return classToggles_; }
    QStringList worstClasses() const { return worstClasses_; }
    QCustomPlot* lossPlot() const { return lossPlot_; }
    QCustomPlot* validationPlot() const { return validationPlot_; }
    // Forces the pending rebuild now (tests, screenshots).
    void rebuildNow();

private:
    struct Series {
        QString label;
        QColor color;
        std::int64_t stepsPerEpoch = 0;
        QVector<double> step, epoch, time, loss, rate;
        QVector<double> valStep, valEpoch, valTime, miou, aacc, macc;
        QVector<QVector<double>> classIou;  // [class][evaluation], NaN where undefined
        QStringList classNames;
        int bestIndex = -1;
    };
    void markDirty();
    void rebuild();
    void rebuildClassToggles();
    void markWorstClasses();
    const QVector<double>& xFor(const Series& s, bool validation) const;

    QHash<QString, Series> series_;
    QStringList order_;
    XAxisMode xMode_ = XAxisMode::Step;
    bool logScale_ = false;
    double smoothing_ = 0.9;
    bool presenter_ = false;
    bool dirty_ = false;
    QCustomPlot* lossPlot_ = nullptr;
    QCustomPlot* validationPlot_ = nullptr;
    QComboBox* xAxis_ = nullptr;
    QCheckBox* log_ = nullptr;
    QCheckBox* autoFit_ = nullptr;
    QSlider* smoothingSlider_ = nullptr;
    QListWidget* classToggles_ = nullptr;
    QSet<QString> hiddenClasses_;  // unticked by the user
    QStringList worstClasses_;
    QTimer* replotTimer_ = nullptr;
    struct BestLabel {
        QCPItemText* label;
        QCPGraph* aacc;
        QCPGraph* macc;
    };
    QVector<BestLabel> bestLabels_;  // the plot owns them; cleared with its items
};

}  // namespace segscope::ui
