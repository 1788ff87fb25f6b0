// Offscreen tests of the Predictions tab's Images view on predictions whose confusion is known in
// advance: the error-class picker shows its entries whole, the legend swatches show on a light
// background, and a confusion cell's pixels have a colour of their own with a legend.
#include "segscope/core/analysis/predictions.h"
#include "segscope/core/data/classes.h"
#include "segscope/core/data/demo_data.h"
#include "segscope/ui/prediction_images_view.h"

#include "test_support.h"
#include "ui_test_support.h"

#include <gtest/gtest.h>
#include <QApplication>
#include <QComboBox>
#include <QStyle>
#include <QStyleOptionComboBox>

using namespace segscope;

namespace {

std::size_t indexOf(const core::PredictionSet& set, const std::string& id) {
    std::size_t i = 0;
    while (set.image(i).id != id) ++i;
    return i;
}

QColor qcolor(const core::Rgb& c) {
    return QColor(c.r, c.g, c.b);
}

}  // namespace

TEST(PredictionImagesView, ErrorClassPickerShowsEveryEntryWhole) {
    test::TempDir dir;
    auto set = std::make_shared<const core::PredictionSet>(test::knownPredictionSet(dir.path()));
    ui::PredictionImagesView view;
    view.setPredictions(set, set->classInfo());
    view.resize(1366, 700);
    view.show();
    QApplication::processEvents();
    QComboBox* combo = view.errorClassCombo();
    ASSERT_EQ(combo->count(), 4);
    EXPECT_EQ(combo->itemText(0), QStringLiteral("(none: prediction overlay)"));
    for (int i = 0; i < combo->count(); ++i) {
        QStyleOptionComboBox option;
        option.initFrom(combo);
        option.currentText = combo->itemText(i);
        const QRect field =
            combo->style()->subControlRect(QStyle::CC_ComboBox, &option, QStyle::SC_ComboBoxEditField, combo);
        EXPECT_GE(field.width(), combo->fontMetrics().horizontalAdvance(combo->itemText(i)))
            << combo->itemText(i).toStdString() << " is cut in a field of " << field.width() << " px";
    }
}

TEST(PredictionImagesView, IgnoredSwatchShowsOnALightBackground) {
    ui::PredictionImagesView view;
    for (const auto outcome : {core::PixelOutcome::TruePositive, core::PixelOutcome::FalsePositive,
                               core::PixelOutcome::FalseNegative, core::PixelOutcome::Ignored}) {
        const QImage swatch = view.errorSwatch(outcome).toImage();
        ASSERT_EQ(swatch.size(), QSize(14, 14));
        EXPECT_EQ(swatch.pixelColor(7, 7), qcolor(core::outcomeColor(outcome))) << "the outcome's colour inside";
        for (const QPoint corner : {QPoint(0, 0), QPoint(13, 0), QPoint(0, 13), QPoint(13, 13), QPoint(7, 0)})
            EXPECT_EQ(swatch.pixelColor(corner), QColor(60, 60, 60)) << "a dark border";
    }
    // White (ignored) inside; the border stands out from the window's light background.
    EXPECT_EQ(view.errorSwatch(core::PixelOutcome::Ignored).toImage().pixelColor(7, 7), QColor(255, 255, 255));
    EXPECT_GT(view.palette().window().color().lightness(), QColor(60, 60, 60).lightness() + 100);
}

TEST(PredictionImagesView, ConfusionCellHasItsOwnColourAndALegend) {
    // The highlight is none of the demo's or VOC's class colours, nor an error-map colour.
    const core::Rgb highlight = ui::PredictionImagesView::cellHighlightColor();
    const auto same = [&](const core::Rgb& c) {
        return c.r == highlight.r && c.g == highlight.g && c.b == highlight.b;
    };
    for (const auto& info : core::demoClasses()) EXPECT_FALSE(same(info.color)) << info.name;
    for (int c = 0; c < 21; ++c) EXPECT_FALSE(same(core::vocColor(c))) << c;
    for (const auto outcome : {core::PixelOutcome::TruePositive, core::PixelOutcome::FalsePositive,
                               core::PixelOutcome::FalseNegative, core::PixelOutcome::Ignored})
        EXPECT_FALSE(same(core::outcomeColor(outcome)));

    test::TempDir dir;
    auto set = std::make_shared<const core::PredictionSet>(test::knownPredictionSet(dir.path()));
    ui::PredictionImagesView view;
    view.setPredictions(set, set->classInfo());
    view.setOpacity(1.0);
    const std::size_t c = indexOf(*set, "c");
    view.showImage(c);
    EXPECT_TRUE(view.cellLegend()->isHidden()) << "no cell, no cell legend";
    // True dog predicted as cat: the bottom half of c.
    view.showImage(c, std::make_pair(2, 1));
    EXPECT_FALSE(view.cellLegend()->isHidden());
    EXPECT_EQ(view.cellLegendText(), QStringLiteral("true dog predicted as cat (8 pixels)"));
    EXPECT_EQ(view.predictionPane().pixelColor(0, 3), QColor(0, 255, 255));
    EXPECT_EQ(view.predictionPane().pixelColor(0, 0), QColor(100, 100, 100));
    view.showImage(c);
    EXPECT_TRUE(view.cellLegend()->isHidden());
    EXPECT_EQ(view.cellLegendText(), QString());
}
