//! Charts for the weekly report, drawn with plotters into SVG strings that the HTML page inlines (no
//! network, no font files: the browser renders the text, Chinese included) and `crate::raster` turns into
//! PNGs. Each function takes plain data and the words to show (already in the report's language) and
//! returns one `<svg>` element.

use anyhow::{anyhow, Result};
use plotters::prelude::*;

const WIDTH: u32 = 900;
const HEIGHT: u32 = 320;
const HIGHLIGHT: RGBColor = RGBColor(214, 96, 34);
const BASE: RGBColor = RGBColor(120, 150, 190);

fn err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("drawing a chart: {e:?}")
}

/// The label of band `i` of `n` when the axis position `v` is that band's centre, else "" (axes whose
/// categories are drawn as bands [i, i + 1) label only the centres).
fn band_label(v: f64, n: usize, name: &dyn Fn(usize) -> String) -> String {
    let band = v.floor() as usize;
    if (v - band as f64 - 0.5).abs() < 0.01 && band < n {
        name(band)
    } else {
        String::new()
    }
}

/// Net revenue per day (yuan), the days of the report week highlighted.
pub fn daily_revenue(days: &[(String, f64, bool)], title: &str, y_desc: &str) -> Result<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let max = days.iter().map(|d| d.1).fold(0.0, f64::max).max(1.0) * 1.1;
        let n = days.len().max(1);
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(30)
            .y_label_area_size(60)
            .build_cartesian_2d(0..n, 0.0..max)
            .map_err(err)?;
        let labels: Vec<String> = days.iter().map(|d| d.0.clone()).collect();
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(8)
            .x_label_formatter(&|i| labels.get(*i).map(|s| s[5..].to_string()).unwrap_or_default())
            .y_desc(y_desc)
            .draw()
            .map_err(err)?;
        chart
            .draw_series(days.iter().enumerate().map(|(i, (_, v, hi))| {
                let color = if *hi { HIGHLIGHT } else { BASE };
                Rectangle::new([(i, 0.0), (i + 1, *v)], color.filled())
            }))
            .map_err(err)?;
        root.present().map_err(err)?;
    }
    Ok(svg)
}

/// Each segment's share of customers and of revenue, side by side.
pub fn segment_shares(rows: &[(String, f64, f64)], legends: [&str; 2], title: &str) -> Result<String> {
    let mut svg = String::new();
    {
        let height = 60 + 26 * rows.len() as u32;
        let root = SVGBackend::with_string(&mut svg, (WIDTH, height.max(200))).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let n = rows.len().max(1);
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(30)
            .y_label_area_size(170)
            .build_cartesian_2d(0.0..1.0f64, 0.0..n as f64)
            .map_err(err)?;
        let names: Vec<String> = rows.iter().map(|r| r.0.clone()).collect();
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(n * 2 + 1)
            .y_label_formatter(&|y| band_label(*y, n, &|b| names.get(n - 1 - b).cloned().unwrap_or_default()))
            .x_label_formatter(&|v| format!("{:.0} %", v * 100.0))
            .draw()
            .map_err(err)?;
        for (k, (color, label)) in [(BASE, legends[0]), (HIGHLIGHT, legends[1])].into_iter().enumerate() {
            chart
                .draw_series(rows.iter().enumerate().map(move |(i, r)| {
                    let v = if k == 0 { r.1 } else { r.2 };
                    let y = (n - 1 - i) as f64;
                    let (lo, hi) = if k == 0 { (0.5, 0.85) } else { (0.15, 0.5) };
                    Rectangle::new([(0.0, y + lo), (v, y + hi)], color.filled())
                }))
                .map_err(err)?
                .label(label)
                .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], color.filled()));
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(err)?;
        root.present().map_err(err)?;
    }
    Ok(svg)
}

/// A heatmap of retention: rows are cohorts, columns periods after; empty cells (not reached) blank.
pub fn retention_heatmap(
    cohorts: &[String],
    cells: &[(usize, usize, Option<f64>)],
    x_desc: &str,
    title: &str,
) -> Result<String> {
    let mut svg = String::new();
    {
        let rows = cohorts.len().max(1);
        let cols = cells.iter().map(|c| c.1 + 1).max().unwrap_or(1);
        let height = 70 + 24 * rows as u32;
        let root = SVGBackend::with_string(&mut svg, (WIDTH, height.max(200))).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(30)
            .y_label_area_size(80)
            .build_cartesian_2d(0.0..cols as f64, 0.0..rows as f64)
            .map_err(err)?;
        // Row r is drawn in the band [rows - 1 - r, rows - r); labels sit at band centres.
        chart
            .configure_mesh()
            .disable_mesh()
            .x_labels(cols * 2 + 1)
            .y_labels(rows * 2 + 1)
            .x_label_formatter(&|v| band_label(*v, cols, &|b| b.to_string()))
            .y_label_formatter(&|v| band_label(*v, rows, &|b| cohorts.get(rows - 1 - b).cloned().unwrap_or_default()))
            .x_desc(x_desc)
            .draw()
            .map_err(err)?;
        chart
            .draw_series(cells.iter().filter_map(|(r, c, v)| {
                let v = (*v)?;
                let (x, y) = (*c as f64, (rows - 1 - r) as f64);
                let shade = RGBColor(255 - (v * 200.0) as u8, 255 - (v * 120.0) as u8, 255);
                Some(Rectangle::new([(x, y), (x + 1.0, y + 1.0)], shade.filled()))
            }))
            .map_err(err)?;
        chart
            .draw_series(cells.iter().filter_map(|(r, c, v)| {
                let v = (*v)?;
                let (x, y) = (*c as f64 + 0.15, (rows - 1 - r) as f64 + 0.75);
                Some(Text::new(
                    format!("{:.0}%", v * 100.0),
                    (x, y),
                    ("sans-serif", 11).into_font(),
                ))
            }))
            .map_err(err)?;
        root.present().map_err(err)?;
    }
    Ok(svg)
}

const PALETTE: [RGBColor; 6] = [
    RGBColor(66, 110, 170),
    RGBColor(214, 96, 34),
    RGBColor(90, 160, 90),
    RGBColor(150, 90, 170),
    RGBColor(200, 160, 40),
    RGBColor(120, 120, 120),
];

/// The corner where the legend covers the fewest points: each corner box spans 45 % of the width and
/// 35 % of the height of the plot.
fn legend_corner(series: &[(String, Vec<f64>)], max: f64) -> SeriesLabelPosition {
    let corners = [
        (SeriesLabelPosition::UpperLeft, false, true),
        (SeriesLabelPosition::UpperRight, true, true),
        (SeriesLabelPosition::LowerRight, true, false),
        (SeriesLabelPosition::LowerLeft, false, false),
    ];
    let covered = |right: bool, upper: bool| {
        series
            .iter()
            .flat_map(|(_, v)| {
                let n = v.len().max(2) - 1;
                v.iter().enumerate().map(move |(i, y)| (i as f64 / n as f64, y / max))
            })
            .filter(|(x, y)| {
                (if right { *x >= 0.55 } else { *x <= 0.45 }) && (if upper { *y >= 0.65 } else { *y <= 0.35 })
            })
            .count()
    };
    corners
        .into_iter()
        .min_by_key(|(_, right, upper)| covered(*right, *upper))
        .map(|c| c.0)
        .unwrap_or(SeriesLabelPosition::UpperLeft)
}

/// Lines over labelled x positions (weeks), one per series, with a legend.
pub fn lines(x_labels: &[String], series: &[(String, Vec<f64>)], y_desc: &str, title: &str) -> Result<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let n = x_labels.len().max(2);
        let max = series
            .iter()
            .flat_map(|s| s.1.iter().copied())
            .fold(0.0, f64::max)
            .max(1.0)
            * 1.1;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(12)
            .margin_right(40)
            .x_label_area_size(30)
            .y_label_area_size(60)
            .build_cartesian_2d(0..n - 1, 0.0..max)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_labels(n)
            .x_label_formatter(&|i| x_labels.get(*i).cloned().unwrap_or_default())
            .y_desc(y_desc)
            .draw()
            .map_err(err)?;
        for (k, (name, values)) in series.iter().enumerate() {
            let color = PALETTE[k % PALETTE.len()];
            chart
                .draw_series(LineSeries::new(
                    values.iter().enumerate().map(|(i, v)| (i, *v)),
                    color.stroke_width(2),
                ))
                .map_err(err)?
                .label(name.clone())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2)));
        }
        chart
            .configure_series_labels()
            .position(legend_corner(series, max))
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(err)?;
        root.present().map_err(err)?;
    }
    Ok(svg)
}

/// Counts on a weekday x hour grid (rows Monday..Sunday, columns hours), darker = more.
pub fn weekday_hour_heatmap(counts: &[[f64; 24]; 7], title: &str) -> Result<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, 260)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let max = counts
            .iter()
            .flat_map(|r| r.iter().copied())
            .fold(0.0, f64::max)
            .max(1.0);
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(30)
            .y_label_area_size(50)
            .build_cartesian_2d(0.0..24.0, 0.0..7.0)
            .map_err(err)?;
        chart
            .configure_mesh()
            .disable_mesh()
            .x_labels(25)
            .y_labels(15)
            .x_label_formatter(&|h: &f64| {
                if (h.fract()).abs() < 0.01 && (*h as i32) % 3 == 0 {
                    format!("{h:.0}:00")
                } else {
                    String::new()
                }
            })
            .y_label_formatter(&|v: &f64| {
                band_label(*v, 7, &|b| {
                    chrono::Weekday::try_from((6 - b) as u8)
                        .map_or(String::new(), |w| crate::i18n::weekday(w).to_string())
                })
            })
            .draw()
            .map_err(err)?;
        chart
            .draw_series(counts.iter().enumerate().flat_map(|(d, row)| {
                row.iter().enumerate().map(move |(h, v)| {
                    let t = v / max;
                    let shade = RGBColor(255 - (t * 190.0) as u8, 255 - (t * 140.0) as u8, 255 - (t * 60.0) as u8);
                    let y = (6 - d) as f64;
                    Rectangle::new([(h as f64, y), (h as f64 + 1.0, y + 1.0)], shade.filled())
                })
            }))
            .map_err(err)?;
        root.present().map_err(err)?;
    }
    Ok(svg)
}

/// Horizontal bars with a label and a colour index each (values may be negative).
pub fn hbars(rows: &[(String, f64, usize)], x_desc: &str, title: &str) -> Result<String> {
    let mut svg = String::new();
    {
        let height = 70 + 24 * rows.len() as u32;
        let root = SVGBackend::with_string(&mut svg, (WIDTH, height.max(160))).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let n = rows.len().max(1);
        let lo = rows.iter().map(|r| r.1).fold(0.0, f64::min) * 1.1;
        let hi = rows
            .iter()
            .map(|r| r.1)
            .fold(0.0, f64::max)
            .max(if lo < 0.0 { 0.0 } else { 1.0 })
            * 1.1;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(12)
            .margin_right(40)
            .x_label_area_size(30)
            .y_label_area_size(170)
            .build_cartesian_2d(lo..hi.max(lo + 1.0), 0.0..n as f64)
            .map_err(err)?;
        let names: Vec<String> = rows.iter().map(|r| r.0.clone()).collect();
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(n * 2 + 1)
            .y_label_formatter(&|v: &f64| band_label(*v, n, &|b| names.get(n - 1 - b).cloned().unwrap_or_default()))
            .x_desc(x_desc)
            .draw()
            .map_err(err)?;
        chart
            .draw_series(rows.iter().enumerate().map(|(i, (_, v, c))| {
                let y = (n - 1 - i) as f64;
                Rectangle::new([(0.0, y + 0.2), (*v, y + 0.8)], PALETTE[*c % PALETTE.len()].filled())
            }))
            .map_err(err)?;
        root.present().map_err(err)?;
    }
    Ok(svg)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A shop without inventory, movers or history still gets every chart (empty, not a crash).
    #[test]
    fn every_chart_draws_from_empty_data() {
        let empty: Vec<String> = Vec::new();
        for svg in [
            daily_revenue(&[], "t", "yuan").unwrap(),
            segment_shares(&[], ["a", "b"], "t").unwrap(),
            retention_heatmap(&empty, &[], "x", "t").unwrap(),
            lines(&empty, &[], "y", "t").unwrap(),
            lines(&["w".into()], &[("s".into(), vec![])], "y", "t").unwrap(),
            weekday_hour_heatmap(&[[0.0; 24]; 7], "t").unwrap(),
            hbars(&[], "x", "t").unwrap(),
        ] {
            assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"), "{svg}");
        }
    }
}
