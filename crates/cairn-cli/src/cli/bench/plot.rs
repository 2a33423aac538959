//! The `--plot` chart: bytes left after dedup and after compression (left
//! axis, solid) and throughput (right axis, dashed) against the average
//! chunk size (log scale), one colour per zstd level. SVG only: text is
//! left to the viewer's fonts, so nothing here needs a font file.

use std::path::Path;

use anyhow::{anyhow, Result};
use cairn::bench::{size_label, BenchReport, SettingReport};
use plotters::prelude::*;

const SIZE: (u32, u32) = (960, 540);
const MIB: f64 = (1 << 20) as f64;
/// One colour per level, in ascending level order (then repeated).
const COLOURS: [RGBColor; 5] = [
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0xd6, 0x27, 0x28),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0x94, 0x67, 0xbd),
    RGBColor(0xff, 0x7f, 0x0e),
];
const GREY: RGBColor = RGBColor(0x55, 0x55, 0x55);

/// Writes the chart of `report` to `path` as SVG.
pub fn write(path: &Path, report: &BenchReport) -> Result<()> {
    let mut svg = String::new();
    draw(&mut svg, report).map_err(|e| anyhow!("drawing the chart: {e}"))?;
    std::fs::write(path, svg)?;
    Ok(())
}

/// A point per setting of one level: x is log2 of the chunk size (chunk
/// sizes are powers of two or close to one; the label says the exact size).
fn points(
    settings: &[&SettingReport],
    value: impl Fn(&SettingReport) -> f64,
) -> Vec<(SegmentValue<u32>, f64)> {
    settings
        .iter()
        .map(|s| (SegmentValue::CenterOf(s.chunk_avg.ilog2()), value(s)))
        .collect()
}

fn draw(svg: &mut String, report: &BenchReport) -> Result<(), Box<dyn std::error::Error>> {
    let mut levels: Vec<i32> = report.settings.iter().map(|s| s.level).collect();
    levels.sort_unstable();
    levels.dedup();
    let by_level = |level: i32| -> Vec<&SettingReport> {
        report
            .settings
            .iter()
            .filter(|s| s.level == level)
            .collect()
    };
    let sizes: Vec<u32> = by_level(levels[0]).iter().map(|s| s.chunk_avg).collect();
    // Integer ranges are inclusive here: one segment per power of two.
    let (x_lo, x_hi) = (sizes[0].ilog2(), sizes[sizes.len() - 1].ilog2());
    let most_bytes = (report.settings.iter())
        .map(|s| s.total.new_bytes.max(s.total.stored_bytes) as f64 / MIB)
        .fold(0.0, f64::max);
    let most_speed = (report.settings.iter())
        .map(|s| s.throughput_bytes_per_sec / MIB)
        .fold(0.0, f64::max);
    let logical = report.settings[0].total.logical_bytes as f64 / MIB;

    let root = SVGBackend::with_string(svg, SIZE).into_drawing_area();
    root.fill(&WHITE)?;
    let caption = format!(
        "cairn bench: {} version{}, {:.1} MiB logical",
        report.versions.len(),
        if report.versions.len() == 1 { "" } else { "s" },
        logical
    );
    // Head room above the data for the legend: the data stay in the lower
    // part of the plot whatever the number of legend rows.
    let head_room = 1.3 + 0.1 * (1 + 2 * levels.len()) as f64;
    let mut chart = ChartBuilder::on(&root)
        .caption(caption, ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(72)
        .right_y_label_area_size(72)
        .build_cartesian_2d(
            (x_lo..x_hi).into_segmented(),
            0.0..(most_bytes * head_room).max(1.0),
        )?
        .set_secondary_coord(
            (x_lo..x_hi).into_segmented(),
            0.0..(most_speed * head_room).max(1.0),
        );
    // Label each tick with the exact size measured there.
    let x_label = |v: &SegmentValue<u32>| match v {
        SegmentValue::CenterOf(k) | SegmentValue::Exact(k) => sizes
            .iter()
            .find(|s| s.ilog2() == *k)
            .map_or_else(|| size_label(1 << k), |&s| size_label(s.into())),
        SegmentValue::Last => String::new(),
    };
    chart
        .configure_mesh()
        .x_desc("average chunk size (log scale)")
        .y_desc("size (MiB), solid")
        .x_labels((x_hi - x_lo + 1) as usize)
        .x_label_formatter(&x_label)
        .y_label_formatter(&|v| format!("{v:.0}"))
        .axis_desc_style(("sans-serif", 16))
        .label_style(("sans-serif", 14))
        .light_line_style(WHITE.mix(0.0))
        .bold_line_style(BLACK.mix(0.08))
        .draw()?;
    chart
        .configure_secondary_axes()
        .y_desc("throughput (MiB/s), dashed")
        .y_label_formatter(&|v| format!("{v:.0}"))
        .axis_desc_style(("sans-serif", 16))
        .label_style(("sans-serif", 14))
        .draw()?;

    // After dedup does not depend on the level: one grey line.
    let deduped = points(&by_level(levels[0]), |s| s.total.new_bytes as f64 / MIB);
    chart
        .draw_series(LineSeries::new(deduped.clone(), GREY.stroke_width(2)))?
        .label("after dedup")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 24, y)], GREY.stroke_width(2)));
    chart.draw_series(
        deduped
            .iter()
            .map(|p| Circle::new(p.clone(), 3, GREY.filled())),
    )?;

    for (i, &level) in levels.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let settings = by_level(level);
        let stored = points(&settings, |s| s.total.stored_bytes as f64 / MIB);
        chart
            .draw_series(LineSeries::new(stored.clone(), colour.stroke_width(2)))?
            .label(format!("stored, zstd {level}"))
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 24, y)], colour.stroke_width(2)));
        chart.draw_series(
            stored
                .iter()
                .map(|p| Circle::new(p.clone(), 4, colour.filled())),
        )?;

        let speed = points(&settings, |s| s.throughput_bytes_per_sec / MIB);
        chart
            .draw_secondary_series(DashedLineSeries::new(
                speed.clone(),
                8,
                5,
                colour.stroke_width(2),
            ))?
            .label(format!("throughput, zstd {level}"))
            .legend(move |(x, y)| {
                EmptyElement::at((x, y))
                    + PathElement::new([(0, 0), (9, 0)], colour.stroke_width(2))
                    + PathElement::new([(15, 0), (24, 0)], colour.stroke_width(2))
            });
        chart.draw_secondary_series(
            speed
                .iter()
                .map(|p| TriangleMarker::new(p.clone(), 5, colour.filled())),
        )?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK.mix(0.3))
        .label_font(("sans-serif", 14))
        .draw()?;
    root.present()?;
    Ok(())
}
