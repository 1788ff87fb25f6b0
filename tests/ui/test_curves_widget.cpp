// Offscreen tests of the curves widget: downsampling, the class toggles, export.
#include "segscope/ui/curves_widget.h"
#include "segscope/ui/qcustomplot_include.h"

#include "test_support.h"

#include <gtest/gtest.h>
#include <QElapsedTimer>
#include <QFile>
#include <QImage>
#include <QListWidget>
#include <QPainterPath>
#include <QPainterPathStroker>

#include <cmath>

using namespace segscope;

TEST(CurvesWidget, HundredThousandPointsPerRunDownsampleToTheWidth) {
    ui::CurvesWidget curves;
    curves.resize(1000, 600);
    for (int r = 0; r < 4; ++r) {
        const QString id = QStringLiteral("run%1").arg(r);
        curves.addRun(id, id);
        QVector<core::StepEvent> steps;
        for (int s = 1; s <= 100000; ++s) {
            core::StepEvent e;
            e.step = s;
            e.loss = 1.0 / std::sqrt(double(s)) + r;
            e.learningRate = 1e-3;
            steps.push_back(e);
        }
        curves.appendSteps(id, steps);
    }
    QElapsedTimer timer;
    timer.start();
    curves.rebuildNow();
    const qint64 rebuildMs = timer.elapsed();
    EXPECT_EQ(curves.stepPointCount(QStringLiteral("run3")), 100000);
    // Each drawn graph holds at most ~2 points per pixel column, not 100k.
    for (int g = 0; g < curves.lossPlot()->graphCount(); ++g)
        EXPECT_LE(curves.lossPlot()->graph(g)->dataCount(), 2 * 1000 + 2);
    RecordProperty("rebuild_ms", int(rebuildMs));
}

TEST(CurvesWidget, ClassesAreShownAtOnceWithTheWorstMarked) {
    ui::CurvesWidget curves;
    curves.addRun(QStringLiteral("r"), QStringLiteral("r"));
    curves.setClassNames(QStringLiteral("r"),
                         {QStringLiteral("background"), QStringLiteral("circle"), QStringLiteral("square"),
                          QStringLiteral("triangle"), QStringLiteral("cross"), QStringLiteral("star")});
    core::ValidationEvent e;
    e.epoch = 1;
    e.step = 4;
    const double ious[] = {0.9, 0.2, 0.7, 0.1, 0.8, 0.5};
    const char* names[] = {"background", "circle", "square", "triangle", "cross", "star"};
    for (int c = 0; c < 6; ++c) {
        core::ClassMetrics m;
        m.name = names[c];
        m.iou = ious[c];
        e.metrics.perClass.push_back(m);
    }
    e.metrics.mIoU = 0.533;
    curves.appendValidation(QStringLiteral("r"), e);
    QListWidget* toggles = curves.classToggles();
    ASSERT_EQ(toggles->count(), 6);
    for (int i = 0; i < toggles->count(); ++i) EXPECT_EQ(toggles->item(i)->checkState(), Qt::Checked);
    // The worst third: triangle (0.1) and circle (0.2).
    EXPECT_EQ(curves.worstClasses(), (QStringList{QStringLiteral("triangle"), QStringLiteral("circle")}));
    for (int i = 0; i < toggles->count(); ++i) {
        const bool worst = curves.worstClasses().contains(toggles->item(i)->text());
        EXPECT_EQ(toggles->item(i)->font().bold(), worst) << toggles->item(i)->text().toStdString();
    }
    // A class the user unticks stays unticked when the classes are rebuilt.
    toggles->item(0)->setCheckState(Qt::Unchecked);
    curves.setClassNames(QStringLiteral("r"),
                         {QStringLiteral("background"), QStringLiteral("circle"), QStringLiteral("square"),
                          QStringLiteral("triangle"), QStringLiteral("cross"), QStringLiteral("star")});
    EXPECT_EQ(curves.classToggles()->item(0)->checkState(), Qt::Unchecked);
    EXPECT_EQ(curves.classToggles()->item(1)->checkState(), Qt::Checked);
}

TEST(CurvesWidget, ExportsPngPdfAndSvgAndCsv) {
    test::TempDir dir;
    ui::CurvesWidget curves;
    curves.resize(900, 600);
    curves.addRun(QStringLiteral("r"), QStringLiteral("r"));
    QVector<core::StepEvent> steps;
    for (int s = 1; s <= 50; ++s) {
        core::StepEvent e;
        e.step = s;
        e.loss = 2.0 / s;
        e.learningRate = 1e-3;
        steps.push_back(e);
    }
    curves.appendSteps(QStringLiteral("r"), steps);
    const auto at = [&](const char* name) { return QString::fromStdString((dir / name).string()); };
    ASSERT_TRUE(curves.exportPlots(at("curves.png")));
    EXPECT_EQ(QImage(at("curves-loss.png")).size(), QSize(1200, 500));
    ASSERT_TRUE(curves.exportPlots(at("curves.pdf")));
    QFile pdf(at("curves-validation.pdf"));
    ASSERT_TRUE(pdf.open(QIODevice::ReadOnly));
    EXPECT_TRUE(pdf.read(5) == "%PDF-");
    ASSERT_TRUE(curves.exportPlots(at("curves.svg")));
    QFile svg(at("curves-loss.svg"));
    ASSERT_TRUE(svg.open(QIODevice::ReadOnly));
    const QByteArray text = svg.readAll();
    EXPECT_TRUE(text.contains("<svg")) << text.left(200).toStdString();
    EXPECT_TRUE(text.contains("<path") || text.contains("<polyline")) << "the curve is drawn as vectors";
    ASSERT_TRUE(curves.exportCsv(at("curves.csv")));
    QFile csv(at("curves.csv"));
    ASSERT_TRUE(csv.open(QIODevice::ReadOnly));
    EXPECT_EQ(csv.readAll().count('\n'), 51) << "a header and one line per step";
}

namespace {

// The "best" labels' boxes in pixels, once the plot is laid out.
std::vector<QRectF> bestLabelBoxes(QCustomPlot* plot) {
    std::vector<QRectF> boxes;
    for (int i = 0; i < plot->itemCount(); ++i)
        if (auto* text = qobject_cast<QCPItemText*>(plot->item(i)))
            if (text->text().startsWith(QStringLiteral("best ")))
                boxes.push_back(
                    QRectF(text->topLeft->pixelPosition(), text->bottomRight->pixelPosition()).normalized());
    return boxes;
}

// The same boxes less their padding: the text itself.
std::vector<QRectF> bestLabelTextBoxes(QCustomPlot* plot) {
    std::vector<QRectF> boxes;
    for (int i = 0; i < plot->itemCount(); ++i)
        if (auto* text = qobject_cast<QCPItemText*>(plot->item(i)))
            if (text->text().startsWith(QStringLiteral("best "))) {
                const QMargins p = text->padding();
                boxes.push_back(QRectF(text->topLeft->pixelPosition(), text->bottomRight->pixelPosition())
                                    .normalized()
                                    .adjusted(p.left(), p.top(), -p.right(), -p.bottom()));
            }
    return boxes;
}

// Whether a graph's polyline, in pixels, crosses a box.
bool lineCrosses(const QCPGraph* graph, const QRectF& box) {
    QPainterPath line;
    bool first = true;
    for (auto it = graph->data()->constBegin(); it != graph->data()->constEnd(); ++it) {
        const QPointF p = graph->coordsToPixels(it->key, it->value);
        if (first)
            line.moveTo(p);
        else
            line.lineTo(p);
        first = false;
    }
    QPainterPathStroker stroker;
    stroker.setWidth(2);
    return stroker.createStroke(line).intersects(box);
}

}  // namespace

TEST(CurvesWidget, BestLabelStaysInsideThePlotAndOffTheAccuracyLine) {
    ui::CurvesWidget curves;
    curves.resize(900, 600);
    curves.show();
    curves.addRun(QStringLiteral("r"), QStringLiteral("r"));
    QVector<core::StepEvent> steps;
    for (int s = 1; s <= 40; ++s) {
        core::StepEvent e;
        e.step = s;
        e.loss = 2.0 / s;
        e.learningRate = 1e-3;
        steps.push_back(e);
    }
    curves.appendSteps(QStringLiteral("r"), steps);
    // The best mIoU is the last evaluation (the right edge) and near the top, with aAcc just above it.
    const double miou[] = {0.5, 0.7, 0.85, 0.96};
    for (int i = 0; i < 4; ++i) {
        core::ValidationEvent e;
        e.epoch = i + 1;
        e.step = 10 * (i + 1);
        e.metrics.mIoU = miou[i];
        e.metrics.aAcc = std::min(1.0, miou[i] + 0.03);
        e.metrics.mAcc = miou[i] + 0.01;
        for (const char* name : {"background", "circle", "square", "triangle", "cross"}) {
            core::ClassMetrics m;
            m.name = name;
            m.iou = miou[i] / 2;
            e.metrics.perClass.push_back(m);
        }
        curves.appendValidation(QStringLiteral("r"), e);
    }
    curves.rebuildNow();
    QCustomPlot* plot = curves.validationPlot();
    plot->replot(QCustomPlot::rpImmediateRefresh);
    const std::vector<QRectF> boxes = bestLabelBoxes(plot);
    ASSERT_EQ(boxes.size(), 1u);
    const QRectF area = QRectF(plot->axisRect()->rect()).adjusted(-0.5, -0.5, 0.5, 0.5);
    EXPECT_TRUE(area.contains(boxes[0])) << "label " << boxes[0].x() << "," << boxes[0].y() << " " << boxes[0].width()
                                         << "x" << boxes[0].height() << " in " << area.width() << "x" << area.height();
    // The graphs in order: mIoU, aAcc, mAcc.
    ASSERT_GE(plot->graphCount(), 3);
    const std::vector<QRectF> texts = bestLabelTextBoxes(plot);
    ASSERT_EQ(texts.size(), 1u);
    EXPECT_FALSE(lineCrosses(plot->graph(1), texts[0])) << "the label covers the aAcc line";
    // Eight legend entries fill the plot's height: the legend moves off the best point and its label.
    ASSERT_TRUE(plot->legend->visible());
    EXPECT_FALSE(QRectF(plot->legend->outerRect()).intersects(boxes[0]));
    EXPECT_FALSE(QRectF(plot->legend->outerRect()).contains(plot->graph(0)->coordsToPixels(40, 0.96)));
    // Left of the point, since the point is at the right edge.
    const QPointF point = plot->graph(0)->coordsToPixels(40, 0.96);
    EXPECT_LE(boxes[0].right(), point.x());
}
