//! PNG copies of the report's charts, for sharing in chat apps. The charts are drawn once, as SVG by
//! `crate::charts`; this module rasterises those SVG strings with resvg, so the PNG and the page show the
//! same chart. Text needs a font that covers Chinese: the one named by `chart_font` in paylens.toml, else
//! the first of the usual CJK families found among the system fonts (Debian: `fonts-wqy-microhei` or
//! `fonts-noto-cjk`; macOS and Windows ship one).

use std::path::Path;
use std::sync::Arc;

use anyhow::{anyhow, Context, Result};
use resvg::tiny_skia::{Color, Pixmap, Transform};
use resvg::usvg::{self, fontdb};

/// Families tried in order when no font file is configured.
const CJK_FAMILIES: [&str; 11] = [
    "Noto Sans CJK SC",
    "Source Han Sans SC",
    "WenQuanYi Micro Hei",
    "WenQuanYi Zen Hei",
    "Noto Sans SC",
    "PingFang SC",
    "Hiragino Sans GB",
    "Microsoft YaHei",
    "SimHei",
    "Droid Sans Fallback",
    "AR PL UMing CN",
];

/// Pixels per SVG unit: charts are 900 wide, so PNGs are 1800 wide and stay sharp on a phone.
const SCALE: f32 = 2.0;

/// Rasterises SVG charts with one font database, loaded once per report.
pub struct Rasteriser {
    options: usvg::Options<'static>,
    /// The family used for `sans-serif`, when one covering Chinese was found.
    pub cjk_family: Option<String>,
}

impl Rasteriser {
    /// Loads the system fonts and `font_file` (which wins) and picks the family for `sans-serif`.
    pub fn new(font_file: Option<&Path>) -> Result<Rasteriser> {
        let mut db = fontdb::Database::new();
        let mut chosen = None;
        if let Some(file) = font_file {
            db.load_font_file(file)
                .with_context(|| format!("reading the chart font {}", file.display()))?;
            chosen = db.faces().next().and_then(|f| f.families.first()).map(|f| f.0.clone());
        }
        db.load_system_fonts();
        if chosen.is_none() {
            chosen = CJK_FAMILIES
                .iter()
                .find(|want| db.faces().any(|f| f.families.iter().any(|(name, _)| name == *want)))
                .map(|s| s.to_string());
        }
        let mut options = usvg::Options::default();
        if let Some(family) = &chosen {
            share_family(&mut db, family);
            db.set_sans_serif_family(family.clone());
            options.font_family = family.clone();
        } else {
            options.font_family = "sans-serif".into();
        }
        options.fontdb = Arc::new(db);
        Ok(Rasteriser {
            options,
            cjk_family: chosen,
        })
    }

    /// Whether any font at all was found (without one, PNG charts have no text).
    pub fn has_fonts(&self) -> bool {
        !self.options.fontdb.is_empty()
    }

    /// The chart as PNG bytes, on white.
    pub fn png(&self, svg: &str) -> Result<Vec<u8>> {
        encode_opaque(&self.render(svg)?)
    }

    /// The chart drawn on white.
    fn render(&self, svg: &str) -> Result<Pixmap> {
        let svg = stroke_opacity(svg);
        let tree = usvg::Tree::from_str(&svg, &self.options).map_err(|e| anyhow!("reading a chart's SVG: {e}"))?;
        let size = tree.size().to_int_size();
        let (w, h) = (
            (size.width() as f32 * SCALE).ceil() as u32,
            (size.height() as f32 * SCALE).ceil() as u32,
        );
        let mut pixmap = Pixmap::new(w, h).ok_or_else(|| anyhow!("a chart of {w} x {h} pixels"))?;
        pixmap.fill(Color::WHITE);
        resvg::render(&tree, Transform::from_scale(SCALE, SCALE), &mut pixmap.as_mut());
        Ok(pixmap)
    }
}

/// The chart with the opacity of its lines (plotters' grid lines: `<line opacity="0.1" stroke=..>`, and
/// strokes without fill) given as their strokes' opacity, which draws the same. resvg draws an element with
/// `opacity` below 1 as a group: into a layer of its own, then blended onto the picture; a few hundred
/// grid lines made a chart's PNG take several times as long.
fn stroke_opacity(svg: &str) -> std::borrow::Cow<'_, str> {
    const STROKE_ONLY: [(&str, &str); 2] = [
        ("<line opacity=", "<line stroke-opacity="),
        (
            "<polyline fill=\"none\" opacity=",
            "<polyline fill=\"none\" stroke-opacity=",
        ),
    ];
    let mut svg = std::borrow::Cow::Borrowed(svg);
    for (from, to) in STROKE_ONLY {
        if svg.contains(from) {
            svg = std::borrow::Cow::Owned(svg.replace(from, to));
        }
    }
    svg
}

/// PNG bytes of a pixmap drawn on an opaque background. Every pixel's alpha is 255, so its premultiplied
/// colour is its colour: the pixels are written as they are, where tiny-skia's `encode_png` copies the
/// image to undo the premultiplication. Deflate at level 2 instead of the default 6: the 12 charts of the
/// 1M-row benchmark's report come to 468 KB against 441 KB (fdeflate's fast setting: 1.2 MB).
fn encode_opaque(pixmap: &Pixmap) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, pixmap.width(), pixmap.height());
    encoder.set_color(png::ColorType::Rgba);
    encoder.set_depth(png::BitDepth::Eight);
    encoder.set_deflate_compression(png::DeflateCompression::Level(2));
    let failed = |e: png::EncodingError| anyhow!("encoding a PNG chart: {e}");
    let mut writer = encoder.write_header().map_err(failed)?;
    writer
        .write_image_data(pixmap.data())
        .and_then(|()| writer.finish())
        .map_err(failed)?;
    Ok(out)
}

/// Maps the files of `family`'s faces once, for the whole report. fontdb otherwise opens, maps and
/// unmaps a font file each time it reads a face: once per glyph of every label (2,500 times for one
/// report, each unmap a TLB shootdown on every core).
fn share_family(db: &mut fontdb::Database, family: &str) {
    let ids: Vec<fontdb::ID> = db
        .faces()
        .filter(|f| f.families.iter().any(|(name, _)| name == family))
        .map(|f| f.id)
        .collect();
    for id in ids {
        // SAFETY: the mapping is read-only and lives as long as the report; fontdb maps the same files
        // on every read anyway, so a font file changed on disk meanwhile is no new risk.
        unsafe {
            db.make_shared_face_data(id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_a_chart_at_twice_its_size() {
        let svg = crate::charts::hbars(&[("燕麦拿铁 oat latte".into(), 3.0, 0)], "units", "To order").unwrap();
        let r = Rasteriser::new(None).unwrap();
        let png = r.png(&svg).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        // IHDR: width and height, big-endian, at bytes 16..24.
        let w = u32::from_be_bytes(png[16..20].try_into().unwrap());
        assert_eq!(w, 1800);
    }

    /// A line chart's grid lines drawn with their strokes' opacity look as drawn through a layer each
    /// (resvg's way with `opacity`): every pixel within rounding (2 of 255).
    #[test]
    fn grid_lines_with_stroke_opacity_draw_the_same() {
        let labels: Vec<String> = (1..=30).map(|d| format!("2026-11-{d:02}")).collect();
        let values: Vec<f64> = (0..30).map(|i| 100.0 + (i * 37 % 11) as f64 * 9.5).collect();
        let svg = crate::charts::lines(&labels, &[("净收入".into(), values)], "yuan", "Daily").unwrap();
        assert!(
            svg.contains("<line opacity=\"0.1\""),
            "plotters' grid lines as expected"
        );
        let flattened = stroke_opacity(&svg);
        assert!(!flattened.contains("<line opacity=") && flattened.contains("<line stroke-opacity=\"0.1\""));
        let r = Rasteriser::new(None).unwrap();
        let through_layers = {
            let tree = usvg::Tree::from_str(&svg, &r.options).unwrap();
            let size = tree.size().to_int_size();
            let mut pixmap = Pixmap::new(size.width() * 2, size.height() * 2).unwrap();
            pixmap.fill(Color::WHITE);
            resvg::render(&tree, Transform::from_scale(SCALE, SCALE), &mut pixmap.as_mut());
            pixmap
        };
        let drawn = r.render(&svg).unwrap();
        assert_eq!(drawn.data().len(), through_layers.data().len());
        let worst = drawn
            .data()
            .iter()
            .zip(through_layers.data())
            .map(|(a, b)| a.abs_diff(*b))
            .max();
        assert!(worst <= Some(2), "{worst:?}");
        assert_ne!(drawn.data(), Pixmap::new(drawn.width(), drawn.height()).unwrap().data());
    }

    /// The PNG written from the pixels as they are decodes to the image tiny-skia's own encoder (which
    /// undoes the premultiplication first) writes: the same pixels, every one opaque.
    #[test]
    fn a_chart_png_has_the_pixels_tiny_skia_writes() {
        let svg = crate::charts::hbars(
            &[("燕麦拿铁 oat latte".into(), 3.0, 0), ("可颂".into(), 1.5, 1)],
            "units",
            "To order",
        )
        .unwrap();
        let r = Rasteriser::new(None).unwrap();
        let pixmap = r.render(&svg).unwrap();
        let decode = |bytes: &[u8]| {
            let mut reader = png::Decoder::new(std::io::Cursor::new(bytes)).read_info().unwrap();
            let mut buf = vec![0; reader.output_buffer_size().unwrap()];
            let info = reader.next_frame(&mut buf).unwrap();
            assert_eq!(
                (info.color_type, info.bit_depth),
                (png::ColorType::Rgba, png::BitDepth::Eight)
            );
            buf.truncate(info.buffer_size());
            buf
        };
        let ours = decode(&encode_opaque(&pixmap).unwrap());
        assert_eq!(ours, decode(&pixmap.encode_png().unwrap()));
        assert!(ours.chunks(4).all(|p| p[3] == 255));
        assert!(ours.chunks(4).any(|p| p[..3] != [255, 255, 255]), "something is drawn");
    }

    #[test]
    fn a_missing_font_file_is_named() {
        let e = Rasteriser::new(Some(Path::new("/nonexistent/font.ttc"))).err().unwrap();
        assert!(format!("{e:#}").contains("/nonexistent/font.ttc"), "{e:#}");
    }
}
