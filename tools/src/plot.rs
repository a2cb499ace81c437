//! Plots of `tinyrnn eval`: the confusion matrix (a count in every cell, class names on the
//! axes when given) and, with a reference, a scatter of the evaluated model's outputs
//! against the reference's (points on the diagonal are exact).
//!
//! SVG via plotters' SVG backend (text as SVG `<text>`, drawn by the viewer's sans-serif
//! font). PNG is the same drawing rasterized by plotters' bitmap backend and encoded here
//! (zlib via miniz_oxide). Its text is drawn by ab_glyph with a font compiled into the
//! binary, `tools/assets/DejaVuSans-subset.ttf` (DejaVu Sans 2.37 cut to Latin, Greek and
//! Cyrillic, 69 kB; licence next to it), so the PNG carries the same text as the SVG and
//! needs no system font. Characters outside that subset show as the font's empty box.

use std::path::Path;
use std::sync::OnceLock;

use anyhow::{anyhow, bail, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::FontTransform;

use crate::cmd::eval::EvalResult;

/// The family every text of the plots uses: the bundled font in the PNG, the viewer's
/// sans-serif in the SVG.
const FONT: &str = "sans-serif";
/// DejaVu Sans subset (tools/scripts/subset_font.py).
static FONT_TTF: &[u8] = include_bytes!("../assets/DejaVuSans-subset.ttf");

/// Height of the plots and side of the scatter panel, in pixels.
const H_MIN: u32 = 480;
/// Largest confusion-matrix panel: beyond it, cells shrink (see [`count_font_size`]).
const SIDE_MAX: u32 = 1400;
/// Largest scatter panel (it stays square, at the top, beside a taller confusion matrix).
const SCATTER_MAX: u32 = 720;
/// Class names longer than this are cut (with `…`) on the axes.
const NAME_MAX: usize = 16;

fn perr<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("drawing the plot: {e:?}")
}

/// Registers the bundled font with plotters (once per process).
fn font_ready() -> Result<()> {
    static OK: OnceLock<bool> = OnceLock::new();
    let ok = *OK
        .get_or_init(|| plotters::style::register_font(FONT, FontStyle::Normal, FONT_TTF).is_ok());
    if !ok {
        bail!("drawing the plot: the bundled font (tools/assets/DejaVuSans-subset.ttf) is invalid");
    }
    Ok(())
}

/// Draws `res` (and the output pairs `(model, reference)`) into `path` (.svg or .png).
///
/// # Errors
/// An unsupported extension or an unwritable file.
pub fn eval_plot(path: &Path, res: &EvalResult, pairs: Option<&Vec<(f64, f64)>>) -> Result<()> {
    let bytes = render(path, res, pairs)?;
    crate::output::write_atomic(path, &bytes, &[])
}

/// The bytes of the plot [`eval_plot`] draws, in the format `path`'s extension names.
///
/// # Errors
/// An unsupported extension.
pub fn render(path: &Path, res: &EvalResult, pairs: Option<&Vec<(f64, f64)>>) -> Result<Vec<u8>> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    match ext.as_deref() {
        Some("svg") => render_svg(res, pairs).map(String::into_bytes),
        Some("png") => {
            let (w, h, rgb, _) = render_rgb(res, pairs)?;
            Ok(png_rgb(w, h, &rgb))
        }
        _ => bail!(
            "--plot {}: unsupported format (use .svg or .png)",
            path.display()
        ),
    }
}

/// Canvas size: a confusion panel that grows with the number of classes, and the scatter
/// panel beside it when there is a reference.
fn canvas(res: &EvalResult, pairs: Option<&Vec<(f64, f64)>>) -> (u32, u32, u32) {
    let k = u32::try_from(res.classes).unwrap_or(u32::MAX);
    let side = k
        .saturating_mul(44)
        .saturating_add(160)
        .clamp(H_MIN, SIDE_MAX);
    let w = if pairs.is_some() {
        side + scatter_side(side) + 20
    } else {
        side
    };
    (w, side, side)
}

fn render_svg(res: &EvalResult, pairs: Option<&Vec<(f64, f64)>>) -> Result<String> {
    font_ready()?;
    let (w, h, side) = canvas(res, pairs);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (w, h)).into_drawing_area();
        draw(&root, res, pairs, side)?;
        root.present().map_err(perr)?;
    }
    Ok(svg)
}

/// The scatter panel is square, at most [`SCATTER_MAX`] pixels.
fn scatter_side(side: u32) -> u32 {
    side.min(SCATTER_MAX)
}

/// Rasterizes the plot: width, height, 8-bit RGB pixels and where things were drawn.
fn render_rgb(
    res: &EvalResult,
    pairs: Option<&Vec<(f64, f64)>>,
) -> Result<(u32, u32, Vec<u8>, Drawn)> {
    font_ready()?;
    let (w, h, side) = canvas(res, pairs);
    let mut buf = vec![0u8; w as usize * h as usize * 3];
    let drawn = {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        let d = draw(&root, res, pairs, side)?;
        root.present().map_err(perr)?;
        d
    };
    Ok((w, h, buf, drawn))
}

/// Pixel boxes `[x0, y0, x1, y1)` of what the confusion panel drew (for the tests).
#[derive(Debug, Clone, Default)]
struct Drawn {
    /// The title line.
    title: [i32; 4],
    /// `cells[true * k + predicted]`.
    cells: Vec<[i32; 4]>,
    /// Tick label boxes: rows (true class), then columns (predicted).
    row_labels: Vec<[i32; 4]>,
    col_labels: Vec<[i32; 4]>,
}

fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    res: &EvalResult,
    pairs: Option<&Vec<(f64, f64)>>,
    side: u32,
) -> Result<Drawn> {
    root.fill(&WHITE).map_err(perr)?;
    let (left, right) = root.split_horizontally(side);
    let d = confusion(&left, res)?;
    if let Some(p) = pairs {
        let s = scatter_side(side);
        let square = right.margin(0, 0, 0, 20).shrink((0, 0), (s, s));
        scatter(&square, res, p)?;
    }
    Ok(d)
}

/// The axis label of class `i`: its name (cut to [`NAME_MAX`] characters) or its index.
fn class_label(res: &EvalResult, i: usize) -> String {
    match res.class_names.as_ref().and_then(|n| n.get(i)) {
        Some(name) if name.chars().count() > NAME_MAX => {
            let mut s: String = name.chars().take(NAME_MAX - 1).collect();
            s.push('…');
            s
        }
        Some(name) => name.clone(),
        None => i.to_string(),
    }
}

/// Font size of the counts in a `cell_w` × `cell_h` cell holding up to `digits` digits:
/// 14 px, smaller when the cell is narrow; `None` below 6 px (cells of fewer than ~10 px,
/// more than ~130 classes), where no count would be legible.
fn count_font_size(cell_w: i32, cell_h: i32, digits: usize) -> Option<f64> {
    // DejaVu Sans digits advance 0.636 em.
    let by_w = f64::from(cell_w - 4) / (0.64 * digits as f64);
    let by_h = f64::from(cell_h) * 0.55;
    let s = by_w.min(by_h).min(14.0).floor();
    (s >= 6.0).then_some(s)
}

fn text_w<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    s: &str,
    t: &TextStyle,
) -> Result<i32> {
    let (w, _) = area.estimate_text_size(s, t).map_err(perr)?;
    Ok(i32::try_from(w).unwrap_or(i32::MAX))
}

fn confusion<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, res: &EvalResult) -> Result<Drawn> {
    let k = res.classes.max(1);
    let ki = i32::try_from(k).map_err(|_| anyhow!("too many classes to plot ({k})"))?;
    let (aw, ah) = area.dim_in_pixel();
    let (aw, ah) = (aw as i32, ah as i32);
    let margin = 12;
    let title_style =
        TextStyle::from((FONT, 18).into_font()).pos(Pos::new(HPos::Center, VPos::Top));
    let tick = TextStyle::from((FONT, 13).into_font());
    let desc = TextStyle::from((FONT, 15).into_font());
    let labels: Vec<String> = (0..k).map(|i| class_label(res, i)).collect();
    let mut label_w = 0;
    for l in &labels {
        label_w = label_w.max(text_w(area, l, &tick)?);
    }
    // Layout: title, matrix, column labels and "predicted class" below, row labels and
    // "true class" (rotated) on the left.
    let top = margin + 18 + 14;
    let left = margin + 22 + label_w + 8;
    let plot_w = aw - left - margin;
    let cell_w = plot_w / ki;
    let rotate = label_w + 6 > cell_w;
    let bottom = margin + 22 + if rotate { label_w + 10 } else { 24 };
    let plot_h = ah - top - bottom;
    let cell_h = plot_h / ki;
    if cell_w < 1 || cell_h < 1 {
        bail!("drawing the plot: too many classes ({k}) or names too long for the image");
    }
    let (x0, y0) = (left, top);
    let (x1, y1) = (x0 + cell_w * ki, y0 + cell_h * ki);

    let mut drawn = Drawn::default();
    let title = format!(
        "{}: accuracy {:.2}% (N = {})",
        res.model,
        100.0 * res.accuracy,
        res.samples
    );
    // Centred on the panel, smaller if a long model description would not fit.
    let tx = aw / 2;
    let mut tw = text_w(area, &title, &title_style)?;
    let room = aw - 2 * margin;
    let title_style = if tw > room {
        let size = (18.0 * f64::from(room) / f64::from(tw)).floor().max(9.0);
        let s = TextStyle::from((FONT, size).into_font()).pos(Pos::new(HPos::Center, VPos::Top));
        tw = text_w(area, &title, &s)?;
        s
    } else {
        title_style
    };
    area.draw(&Text::new(title.clone(), (tx, margin), title_style))
        .map_err(perr)?;
    drawn.title = [tx - tw / 2, margin, tx + tw / 2, margin + 22];

    let digits = res
        .confusion
        .iter()
        .flatten()
        .map(|v| v.to_string().len())
        .max()
        .unwrap_or(1);
    let count_size = count_font_size(cell_w, cell_h, digits);
    for (t, row) in res.confusion.iter().enumerate() {
        let total: u64 = row.iter().sum();
        for (p, &n) in row.iter().enumerate() {
            // Share of the true class; a floor keeps single errors visible.
            let f = match (total, n) {
                (0, _) | (_, 0) => 0.0,
                _ => (n as f64 / total as f64).max(0.2),
            };
            let shade = |c: u8| (255.0 - f * (255.0 - f64::from(c))) as u8;
            let color = if t == p {
                RGBColor(shade(30), shade(90), shade(200))
            } else {
                RGBColor(shade(220), shade(60), shade(40))
            };
            let (cx, cy) = (x0 + p as i32 * cell_w, y0 + t as i32 * cell_h);
            let cell = [cx, cy, cx + cell_w, cy + cell_h];
            area.draw(&Rectangle::new(
                [(cell[0], cell[1]), (cell[2], cell[3])],
                color.filled(),
            ))
            .map_err(perr)?;
            area.draw(&Rectangle::new(
                [(cell[0], cell[1]), (cell[2], cell[3])],
                RGBColor(225, 225, 225),
            ))
            .map_err(perr)?;
            if let Some(size) = count_size {
                let ink = match n {
                    0 => RGBColor(160, 160, 160),
                    _ if f > 0.6 => WHITE,
                    _ => BLACK,
                };
                let style = TextStyle::from((FONT, size).into_font())
                    .pos(Pos::new(HPos::Center, VPos::Center))
                    .color(&ink);
                area.draw(&Text::new(
                    n.to_string(),
                    (cx + cell_w / 2, cy + cell_h / 2),
                    style,
                ))
                .map_err(perr)?;
            }
            drawn.cells.push(cell);
        }
    }
    area.draw(&Rectangle::new([(x0, y0), (x1, y1)], BLACK))
        .map_err(perr)?;

    // Row labels (true class), right-aligned against the matrix.
    let row_style = tick.pos(Pos::new(HPos::Right, VPos::Center));
    for (i, l) in labels.iter().enumerate() {
        let y = y0 + i as i32 * cell_h + cell_h / 2;
        area.draw(&Text::new(l.clone(), (x0 - 6, y), row_style.clone()))
            .map_err(perr)?;
        let w = text_w(area, l, &tick)?;
        drawn.row_labels.push([x0 - 6 - w, y - 8, x0 - 6, y + 8]);
    }
    // Column labels (predicted class): horizontal, or read upwards when they do not fit.
    let col_style = if rotate {
        tick.pos(Pos::new(HPos::Right, VPos::Center))
            .transform(FontTransform::Rotate270)
    } else {
        tick.pos(Pos::new(HPos::Center, VPos::Top))
    };
    for (i, l) in labels.iter().enumerate() {
        let x = x0 + i as i32 * cell_w + cell_w / 2;
        area.draw(&Text::new(l.clone(), (x, y1 + 6), col_style.clone()))
            .map_err(perr)?;
        let w = text_w(area, l, &tick)?;
        drawn.col_labels.push(if rotate {
            [x - 8, y1 + 6, x + 8, y1 + 6 + w]
        } else {
            [x - w / 2, y1 + 6, x + w / 2, y1 + 22]
        });
    }
    let desc_y = y1 + if rotate { label_w + 16 } else { 28 };
    area.draw(&Text::new(
        "predicted class",
        ((x0 + x1) / 2, desc_y),
        desc.pos(Pos::new(HPos::Center, VPos::Top)),
    ))
    .map_err(perr)?;
    area.draw(&Text::new(
        "true class",
        (margin + 8, (y0 + y1) / 2),
        desc.pos(Pos::new(HPos::Center, VPos::Center))
            .transform(FontTransform::Rotate270),
    ))
    .map_err(perr)?;
    Ok(drawn)
}

fn scatter<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    res: &EvalResult,
    pairs: &[(f64, f64)],
) -> Result<()> {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for &(a, b) in pairs {
        lo = lo.min(a).min(b);
        hi = hi.max(a).max(b);
    }
    if !(lo.is_finite() && hi.is_finite()) {
        return Ok(());
    }
    let pad = ((hi - lo) * 0.05).max(1e-6);
    let (lo, hi) = (lo - pad, hi + pad);
    let mut chart = ChartBuilder::on(area)
        .caption(
            format!(
                "outputs vs reference: max |err| {:.2e}, agreement {:.2}%",
                res.max_abs_error.unwrap_or(0.0),
                100.0 * res.agreement.unwrap_or(0.0)
            ),
            (FONT, 16),
        )
        .margin(12)
        .x_label_area_size(44)
        .y_label_area_size(56)
        .build_cartesian_2d(lo..hi, lo..hi)
        .map_err(perr)?;
    chart
        .configure_mesh()
        .light_line_style(WHITE)
        .label_style((FONT, 12))
        .axis_desc_style((FONT, 14))
        .x_desc(format!(
            "reference ({})",
            res.reference.as_deref().unwrap_or("")
        ))
        .y_desc(res.model.clone())
        .draw()
        .map_err(perr)?;
    chart
        .draw_series(LineSeries::new(
            [(lo, lo), (hi, hi)],
            RGBColor(150, 150, 150),
        ))
        .map_err(perr)?;
    chart
        .draw_series(
            pairs
                .iter()
                .map(|&(a, b)| Circle::new((b, a), 2, RGBColor(30, 90, 200).mix(0.6).filled())),
        )
        .map_err(perr)?;
    Ok(())
}

/// Encodes 8-bit RGB pixels as a PNG (one IDAT, filter type 0 on every row).
pub fn png_rgb(w: u32, h: u32, rgb: &[u8]) -> Vec<u8> {
    const CRC: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);
    fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let start = out.len();
        out.extend_from_slice(kind);
        out.extend_from_slice(data);
        let crc = CRC.checksum(&out[start..]);
        out.extend_from_slice(&crc.to_be_bytes());
    }
    let row = w as usize * 3;
    let mut raw = Vec::with_capacity((row + 1) * h as usize);
    for r in rgb.chunks_exact(row) {
        raw.push(0); // filter: none
        raw.extend_from_slice(r);
    }
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::with_capacity(13);
    ihdr.extend_from_slice(&w.to_be_bytes());
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]); // 8-bit, truecolor, deflate, no filter, no interlace
    chunk(&mut out, b"IHDR", &ihdr);
    chunk(
        &mut out,
        b"IDAT",
        &miniz_oxide::deflate::compress_to_vec_zlib(&raw, 6),
    );
    chunk(&mut out, b"IEND", &[]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(model: &str, confusion: Vec<Vec<u64>>, names: Option<&[&str]>) -> EvalResult {
        let samples = confusion.iter().flatten().sum::<u64>() as usize;
        let correct: u64 = (0..confusion.len()).map(|i| confusion[i][i]).sum();
        EvalResult {
            model: model.into(),
            samples,
            accuracy: correct as f64 / samples as f64,
            classes: confusion.len(),
            confusion,
            class_names: names.map(|n| n.iter().map(|s| s.to_string()).collect()),
            reference: None,
            reference_accuracy: None,
            agreement: None,
            max_abs_error: None,
            mean_abs_error: None,
        }
    }

    fn px(rgb: &[u8], w: u32, x: i32, y: i32) -> [u8; 3] {
        let i = (y as usize * w as usize + x as usize) * 3;
        [rgb[i], rgb[i + 1], rgb[i + 2]]
    }

    /// Pixels inside `b` (inset by `inset`) whose colour is far from `bg`.
    fn ink(rgb: &[u8], w: u32, b: [i32; 4], inset: i32, bg: [u8; 3]) -> usize {
        let mut n = 0;
        for y in b[1] + inset..b[3] - inset {
            for x in b[0] + inset..b[2] - inset {
                let p = px(rgb, w, x, y);
                if (0..3).any(|c| p[c].abs_diff(bg[c]) > 60) {
                    n += 1;
                }
            }
        }
        n
    }

    #[test]
    fn png_has_title_labels_and_a_count_in_every_cell() {
        let res = result(
            "int8 blob",
            vec![vec![7, 0, 1], vec![0, 12, 0], vec![2, 0, 30]],
            Some(&["yes", "no", "maybe"]),
        );
        let (w, h, rgb, d) = render_rgb(&res, None).unwrap();
        assert_eq!(rgb.len(), (w * h * 3) as usize);
        let white = [255, 255, 255];
        // The title: at least some dark glyph pixels.
        let t = ink(&rgb, w, d.title, 0, white);
        assert!(t > 100, "title box {:?} has {t} ink pixels", d.title);
        for (i, b) in d.row_labels.iter().chain(&d.col_labels).enumerate() {
            let n = ink(&rgb, w, *b, 0, white);
            assert!(n > 15, "tick label {i} at {b:?} has {n} ink pixels");
        }
        // Every cell, zeros included: pixels unlike the cell's own fill (its centre-left
        // edge, where no digit reaches).
        assert_eq!(d.cells.len(), 9);
        for (i, b) in d.cells.iter().enumerate() {
            let fill = px(&rgb, w, b[0] + 3, (b[1] + b[3]) / 2);
            let n = ink(&rgb, w, *b, 3, fill);
            assert!(
                n > 10,
                "cell {i} at {b:?} (fill {fill:?}) has {n} text pixels"
            );
        }
    }

    #[test]
    fn png_counts_are_drawn_inside_the_cells() {
        // Same shares (so the same cell colours), other counts: only the digits differ.
        let a = result("m", vec![vec![2, 1], vec![0, 3]], None);
        let mut b = result("m", vec![vec![4, 2], vec![0, 6]], None);
        b.samples = a.samples;
        b.accuracy = a.accuracy;
        let (w, h, pa, d) = render_rgb(&a, None).unwrap();
        let (_, _, pb, _) = render_rgb(&b, None).unwrap();
        let mut per_cell = [0usize; 4];
        let mut outside = 0;
        for y in 0..h as i32 {
            for x in 0..w as i32 {
                if px(&pa, w, x, y) != px(&pb, w, x, y) {
                    match d
                        .cells
                        .iter()
                        .position(|c| x >= c[0] && x < c[2] && y >= c[1] && y < c[3])
                    {
                        Some(i) => per_cell[i] += 1,
                        None => outside += 1,
                    }
                }
            }
        }
        assert_eq!(outside, 0, "pixels changed outside the cells");
        // Cells [0][0], [0][1], [1][1] changed their digits; [1][0] stayed 0.
        assert!(
            per_cell[0] > 10 && per_cell[1] > 10 && per_cell[3] > 10,
            "{per_cell:?}"
        );
        assert_eq!(per_cell[2], 0, "{per_cell:?}");
    }

    #[test]
    fn png_title_differs_with_the_model() {
        let a = result("int8 blob", vec![vec![3, 1], vec![1, 3]], None);
        let b = result("float32 blob", vec![vec![3, 1], vec![1, 3]], None);
        let (w, _, pa, da) = render_rgb(&a, None).unwrap();
        let (_, _, pb, db) = render_rgb(&b, None).unwrap();
        let union = [
            da.title[0].min(db.title[0]),
            da.title[1],
            da.title[2].max(db.title[2]),
            da.title[3],
        ];
        let differ = (union[1]..union[3])
            .flat_map(|y| (union[0]..union[2]).map(move |x| (x, y)))
            .filter(|&(x, y)| px(&pa, w, x, y) != px(&pb, w, x, y))
            .count();
        assert!(differ > 50, "{differ} title pixels differ");
        assert_eq!(pa.len(), pb.len());
    }

    #[test]
    fn svg_has_the_same_text() {
        let res = result(
            "int8 blob",
            vec![vec![5, 0, 1], vec![0, 4, 0], vec![1, 0, 9]],
            Some(&["left", "right & up", "<stop>"]),
        );
        let svg = render_svg(&res, None).unwrap();
        for want in [
            "int8 blob: accuracy 90.00% (N = 20)",
            "predicted class",
            "true class",
            "left",
            "right &amp; up",
            "&lt;stop&gt;",
        ] {
            assert!(svg.contains(want), "{want:?} missing from the SVG");
        }
        // Nine counts, zeros included.
        let counts = svg.matches("\n0\n</text>").count();
        assert_eq!(counts, 4, "zero counts in the SVG");
        for n in ["5", "4", "9"] {
            assert!(svg.contains(&format!("\n{n}\n</text>")), "count {n}");
        }
    }

    #[test]
    fn long_names_are_cut_and_indices_stand_in_without_names() {
        let res = result(
            "m",
            vec![vec![1, 0], vec![0, 1]],
            Some(&["a", "abcdefghijklmnopqrstuvwxyz"]),
        );
        assert_eq!(class_label(&res, 0), "a");
        assert_eq!(class_label(&res, 1), "abcdefghijklmno…");
        let res = result("m", vec![vec![1, 0], vec![0, 1]], None);
        assert_eq!(class_label(&res, 1), "1");
    }

    #[test]
    fn count_font_shrinks_with_the_cell_and_stops_when_illegible() {
        assert_eq!(count_font_size(45, 45, 2), Some(14.0));
        assert_eq!(count_font_size(20, 20, 2), Some(11.0));
        assert_eq!(count_font_size(10, 10, 3), None);
    }
}
