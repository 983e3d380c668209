//! Rendering with `plotters`' SVG backend into a `String`. Text is emitted as SVG `<text>` with a
//! generic `sans-serif` family: no font files are read and nothing is rasterized.

use plotters::coord::Shift;
use plotters::coord::types::RangedCoordf64;
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::data::{
    Bins, clean_points, clean_scores, ellipsize, extent, fractions, pad, plottable, tick_label,
    union,
};
use super::{Chart, Series};
use crate::error::BoxError;

/// Whole image size in pixels (plot + legend column).
const SIZE: (u32, u32) = (960, 540);
/// Font family: generic, resolved by whatever renders the SVG.
const FONT: &str = "sans-serif";
/// Title, axis description, tick label, legend and note font sizes, in `plotters` units (the SVG
/// `font-size` is these divided by 1.24: 21, 15, 13, 14 and 12 px).
const TITLE_PX: u32 = 26;
const DESC_PX: u32 = 19;
const TICK_PX: u32 = 16;
const LEGEND_PX: u32 = 17;
const NOTE_PX: u32 = 15;
/// Legend column width bounds, and the longest name shown in it.
const LEGEND_MIN_W: u32 = 150;
const LEGEND_MAX_W: u32 = 300;
const LEGEND_MAX_CHARS: usize = 30;
/// Series with at most this many points also get a marker on each point.
const MARKERS_UP_TO: usize = 60;
/// Opacity of the histogram fills.
const FILL_ALPHA: f64 = 0.45;

/// Okabe–Ito colour-blind-safe palette, reordered so that the first four differ most (yellow
/// left out: unreadable on white).
const PALETTE: [RGBColor; 7] = [
    RGBColor(0, 114, 178),
    RGBColor(213, 94, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(230, 159, 0),
    RGBColor(86, 180, 233),
    RGBColor(0, 0, 0),
];
/// Histogram fills: Okabe–Ito blue (in-distribution) and orange (out-of-distribution).
const IN_COLOR: RGBColor = RGBColor(0, 114, 178);
const OUT_COLOR: RGBColor = RGBColor(230, 159, 0);
const GRID_MAJOR: RGBColor = RGBColor(215, 215, 215);
const GRID_MINOR: RGBColor = RGBColor(240, 240, 240);
const NOTE_GREY: RGBColor = RGBColor(110, 110, 110);

/// Colour of series `i`, and whether it is dashed (after the palette is used up once).
fn series_style(i: usize) -> (RGBColor, bool) {
    (PALETTE[i % PALETTE.len()], (i / PALETTE.len()) % 2 == 1)
}

type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;

/// What a legend row shows left of its label.
enum Swatch {
    /// A line (solid or dashed) with a marker.
    Line(RGBColor, bool),
    /// A filled box (histograms).
    Fill(RGBColor),
    /// A dashed vertical-threshold line.
    Threshold,
    /// Nothing: a note in the legend.
    Nothing,
}

/// Width of the legend column for these labels (an estimate: SVG text is measured by the
/// renderer, not here).
fn legend_width(labels: &[String]) -> u32 {
    let chars = labels.iter().map(|l| l.chars().count()).max().unwrap_or(0);
    let chars = u32::try_from(chars).unwrap_or(u32::MAX);
    chars.saturating_mul(8).saturating_add(64).clamp(LEGEND_MIN_W, LEGEND_MAX_W)
}

/// Draws the legend rows at the top of `area` (the column right of the plot), in a framed box.
fn draw_legend(area: &Area<'_>, rows: &[(Swatch, String)]) -> Result<(), BoxError> {
    if rows.is_empty() {
        return Ok(());
    }
    let (w, _) = area.dim_in_pixel();
    let w = i32::try_from(w).unwrap_or(i32::MAX);
    let row_h = 24;
    let top = 18;
    let n = i32::try_from(rows.len()).unwrap_or(i32::MAX);
    let bottom = top + 8 + n.saturating_mul(row_h);
    area.draw(&Rectangle::new([(4, top - 6), (w - 10, bottom)], WHITE.filled()))?;
    area.draw(&Rectangle::new([(4, top - 6), (w - 10, bottom)], GRID_MAJOR.stroke_width(1)))?;
    let text = TextStyle::from((FONT, LEGEND_PX).into_font())
        .color(&BLACK)
        .pos(Pos::new(HPos::Left, VPos::Center));
    for (k, (swatch, label)) in rows.iter().enumerate() {
        let y = top + 8 + i32::try_from(k).unwrap_or(i32::MAX).saturating_mul(row_h);
        match *swatch {
            Swatch::Line(c, false) => {
                area.draw(&PathElement::new([(14, y), (44, y)], c.stroke_width(2)))?;
                area.draw(&Circle::new((29, y), 3, c.filled()))?;
            }
            Swatch::Line(c, true) => {
                area.draw(&DashedPathElement::new([(14, y), (44, y)], 6, 4, c.stroke_width(2)))?;
                area.draw(&Circle::new((29, y), 3, c.filled()))?;
            }
            Swatch::Fill(c) => {
                area.draw(&Rectangle::new([(16, y - 7), (42, y + 7)], c.mix(FILL_ALPHA).filled()))?;
                area.draw(&Rectangle::new([(16, y - 7), (42, y + 7)], c.stroke_width(1)))?;
            }
            Swatch::Nothing => {}
            Swatch::Threshold => {
                area.draw(&DashedPathElement::new(
                    [(29, y - 9), (29, y + 9)],
                    4,
                    3,
                    BLACK.stroke_width(2),
                ))?;
            }
        }
        area.draw_text(&ellipsize(label, LEGEND_MAX_CHARS), &text, (52, y))?;
    }
    Ok(())
}

/// Splits the image into title, plot area and legend column; writes the skipped-values note.
fn layout<'a>(
    root: &Area<'a>,
    title: &str,
    legend_w: u32,
    skipped: usize,
) -> Result<(Area<'a>, Area<'a>), BoxError> {
    root.fill(&WHITE)?;
    // Long titles get a smaller font rather than running off the image.
    let title_px = if title.chars().count() > 70 { TITLE_PX * 3 / 4 } else { TITLE_PX };
    let body = root.margin(8, 0, 0, 0).titled(title, (FONT, title_px).into_font().color(&BLACK))?;
    if skipped > 0 {
        let s = if skipped == 1 { "" } else { "s" };
        let note = format!("{skipped} non-finite value{s} skipped");
        let style = TextStyle::from((FONT, NOTE_PX).into_font())
            .color(&NOTE_GREY)
            .pos(Pos::new(HPos::Left, VPos::Bottom));
        let (_, h) = root.dim_in_pixel();
        root.draw_text(&note, &style, (8, i32::try_from(h).unwrap_or(i32::MAX) - 6))?;
    }
    let (w, _) = body.dim_in_pixel();
    Ok(body.split_horizontally(w.saturating_sub(legend_w)))
}

/// Width in pixels of the y tick-label area: room for the longest label of the axis (estimated
/// from its ends and middle; 8 px a character) plus the axis description.
fn y_label_area(y0: f64, y1: f64) -> u32 {
    let span = y1 - y0;
    let chars = [y0, f64::midpoint(y0, y1), y1]
        .iter()
        .map(|&v| tick_label(v, span).chars().count())
        .max()
        .unwrap_or(0);
    u32::try_from(chars).unwrap_or(u32::MAX).saturating_mul(8).saturating_add(40).clamp(64, 130)
}

/// A "no data" message on the plotting area, at `(fx, fy)` fractions of the x and y ranges.
fn no_data<DB: DrawingBackend>(
    area: &DrawingArea<DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>,
    (x0, x1): (f64, f64),
    (y0, y1): (f64, f64),
    (fx, fy): (f64, f64),
) -> Result<(), BoxError>
where
    DB::ErrorType: 'static,
{
    let style = TextStyle::from((FONT, 24).into_font())
        .color(&NOTE_GREY)
        .pos(Pos::new(HPos::Center, VPos::Center));
    area.draw(&Text::new("no data", (x0 + fx * (x1 - x0), y0 + fy * (y1 - y0)), style))?;
    Ok(())
}

/// Renders a line chart (see [`super::line_chart`]). `chart.y_range` was validated by the caller.
pub(super) fn line_chart_svg(chart: &Chart<'_>) -> Result<String, BoxError> {
    let mut skipped = 0;
    let series: Vec<(&Series, Vec<(f64, f64)>)> = chart
        .series
        .iter()
        .map(|s| {
            let (pts, n) = clean_points(&s.points);
            skipped += n;
            (s, pts)
        })
        .collect();
    let all = || series.iter().flat_map(|(_, p)| p.iter().copied());
    let x_data = extent(all().map(|p| p.0));
    let y_data = extent(all().map(|p| p.1));
    let (x0, x1) = match x_data {
        Some((lo, hi)) if hi > lo => (lo, hi),
        Some((lo, hi)) => pad(lo, hi, 0.0),
        None => (0.0, 1.0),
    };
    let (y0, y1) = match (chart.y_range, y_data) {
        (Some(given), data) => {
            let u = union(Some(given), data).unwrap_or(given);
            // Data outside the requested range widens it, with a little room.
            if u == given { given } else { pad(u.0, u.1, 0.03) }
        }
        (None, Some((lo, hi))) => pad(lo, hi, 0.05),
        (None, None) => (0.0, 1.0),
    };

    let labels: Vec<String> = chart.series.iter().map(|s| s.name.clone()).collect();
    let mut buf = String::new();
    {
        let root = SVGBackend::with_string(&mut buf, SIZE).into_drawing_area();
        let (plot, legend) = layout(&root, chart.title, legend_width(&labels), skipped)?;
        let mut ctx = ChartBuilder::on(&plot)
            .margin_top(12)
            .margin_right(20)
            .margin_left(8)
            .margin_bottom(16)
            .x_label_area_size(52)
            .y_label_area_size(y_label_area(y0, y1))
            .build_cartesian_2d(x0..x1, y0..y1)?;
        let (xs, ys) = (x1 - x0, y1 - y0);
        ctx.configure_mesh()
            .x_desc(chart.x_label)
            .y_desc(chart.y_label)
            .x_labels(8)
            .y_labels(8)
            .x_label_formatter(&|v| tick_label(*v, xs))
            .y_label_formatter(&|v| tick_label(*v, ys))
            .axis_desc_style((FONT, DESC_PX))
            .label_style((FONT, TICK_PX))
            .bold_line_style(GRID_MAJOR)
            .light_line_style(GRID_MINOR)
            .max_light_lines(1)
            .draw()?;
        let mut rows = Vec::with_capacity(series.len());
        for (i, (s, pts)) in series.iter().enumerate() {
            let (c, dashed) = series_style(i);
            let style = c.stroke_width(2);
            if dashed {
                ctx.draw_series(std::iter::once(DashedPathElement::new(
                    pts.iter().copied(),
                    8,
                    5,
                    style,
                )))?;
            } else {
                ctx.draw_series(std::iter::once(PathElement::new(pts.clone(), style)))?;
            }
            if pts.len() <= MARKERS_UP_TO {
                ctx.draw_series(pts.iter().map(|&p| Circle::new(p, 3, c.filled())))?;
            }
            rows.push((Swatch::Line(c, dashed), s.name.clone()));
        }
        if x_data.is_none() {
            no_data(ctx.plotting_area(), (x0, x1), (y0, y1), (0.5, 0.5))?;
        }
        draw_legend(&legend, &rows)?;
        root.present()?;
    }
    Ok(buf)
}

/// Renders two overlaid score histograms (see [`super::score_histograms`]). `threshold` was
/// validated by the caller.
pub(super) fn histograms_svg(
    title: &str,
    in_scores: &[f32],
    out_scores: &[f32],
    threshold: Option<f32>,
) -> Result<String, BoxError> {
    const IN_LABEL: &str = "in-distribution";
    const OUT_LABEL: &str = "out-of-distribution";
    let (ins, skip_in) = clean_scores(in_scores);
    let (outs, skip_out) = clean_scores(out_scores);
    let bins = Bins::new(&ins, &outs);
    let t = threshold.map(f64::from).filter(|&t| plottable(t));
    let data_x = bins.as_ref().map(|b| (b.lo, b.hi()));
    let (x0, x1) = match union(data_x, t.map(|t| (t, t))) {
        Some((lo, hi)) if hi > lo => pad(lo, hi, 0.03),
        Some((lo, hi)) => pad(lo, hi, 0.0),
        None => (0.0, 1.0),
    };
    let fa = bins.as_ref().map(|bins| fractions(&bins.first, ins.len())).unwrap_or_default();
    let fb = bins.as_ref().map(|bins| fractions(&bins.second, outs.len())).unwrap_or_default();
    let top = fa.iter().chain(&fb).copied().fold(0.0_f64, f64::max);
    let y1 = if top > 0.0 { top * 1.12 } else { 1.0 };

    let mut rows = vec![
        (Swatch::Fill(IN_COLOR), format!("{IN_LABEL} (n={})", ins.len())),
        (Swatch::Fill(OUT_COLOR), format!("{OUT_LABEL} (n={})", outs.len())),
    ];
    match (threshold, t) {
        (_, Some(t)) => {
            rows.push((Swatch::Threshold, format!("threshold = {}", tick_label(t, x1 - x0))));
        }
        (Some(bad), None) => rows.push((Swatch::Nothing, format!("threshold {bad}: not drawn"))),
        (None, None) => {}
    }
    let labels: Vec<String> = rows.iter().map(|r| r.1.clone()).collect();
    let mut buf = String::new();
    {
        let root = SVGBackend::with_string(&mut buf, SIZE).into_drawing_area();
        let (plot, legend) = layout(&root, title, legend_width(&labels), skip_in + skip_out)?;
        let mut ctx = ChartBuilder::on(&plot)
            .margin_top(12)
            .margin_right(20)
            .margin_left(8)
            .margin_bottom(16)
            .x_label_area_size(52)
            .y_label_area_size(y_label_area(0.0, y1))
            .build_cartesian_2d(x0..x1, 0.0..y1)?;
        let xs = x1 - x0;
        ctx.configure_mesh()
            .x_desc("score")
            .y_desc("fraction of the set")
            .x_labels(10)
            .y_labels(8)
            .x_label_formatter(&|v| tick_label(*v, xs))
            .y_label_formatter(&|v| tick_label(*v, y1))
            .axis_desc_style((FONT, DESC_PX))
            .label_style((FONT, TICK_PX))
            .bold_line_style(GRID_MAJOR)
            .light_line_style(GRID_MINOR)
            .max_light_lines(1)
            .draw()?;
        if let Some(bins) = &bins {
            for (fr, c) in [(&fa, IN_COLOR), (&fb, OUT_COLOR)] {
                let bars = fr.iter().enumerate().filter(|&(_, &f)| f > 0.0).map(|(i, &f)| {
                    let (l, r) = bins.edges(i);
                    [(l, 0.0), (r, f)]
                });
                ctx.draw_series(
                    bars.clone().map(|r| Rectangle::new(r, c.mix(FILL_ALPHA).filled())),
                )?;
                ctx.draw_series(bars.map(|r| Rectangle::new(r, c.stroke_width(1))))?;
            }
        } else {
            // Left of centre: a threshold line may run through the middle.
            no_data(ctx.plotting_area(), (x0, x1), (0.0, y1), (0.25, 0.5))?;
        }
        if let Some(t) = t {
            ctx.draw_series(std::iter::once(DashedPathElement::new(
                [(t, 0.0), (t, y1)],
                6,
                4,
                BLACK.stroke_width(2),
            )))?;
        }
        draw_legend(&legend, &rows)?;
        root.present()?;
    }
    Ok(buf)
}
