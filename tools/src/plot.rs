//! Plots of `tinyrnn eval`: the confusion matrix and, with a reference, a scatter of the
//! evaluated model's outputs against the reference's (points on the diagonal are exact).
//!
//! SVG via plotters' SVG backend (text as SVG `<text>`, no font files needed). PNG is the
//! same drawing rasterized by plotters' bitmap backend and encoded here (zlib via
//! miniz_oxide): no image crate, no font rasterizer, so **the PNG has no text**; the SVG is
//! the one to read labels from. (A font rasterizer would need a font file shipped or found
//! on the system; the image crate alone would add ~50 s of compile time on CI's 2 cores.)

use std::path::Path;

use anyhow::{anyhow, bail, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::cmd::eval::EvalResult;

const W: u32 = 1000;
const H: u32 = 480;

fn perr<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("drawing the plot: {e:?}")
}

/// Draws `res` (and the output pairs `(model, reference)`) into `path` (.svg or .png),
/// written with [`crate::output::write_atomic`].
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
    let bytes = match ext.as_deref() {
        Some("svg") => {
            let mut svg = String::new();
            {
                let root = SVGBackend::with_string(&mut svg, (W, H)).into_drawing_area();
                draw(&root, res, pairs, true)?;
                root.present().map_err(perr)?;
            }
            svg.into_bytes()
        }
        Some("png") => {
            let mut buf = vec![0u8; (W * H * 3) as usize];
            {
                let root = BitMapBackend::with_buffer(&mut buf, (W, H)).into_drawing_area();
                draw(&root, res, pairs, false)?;
                root.present().map_err(perr)?;
            }
            png_rgb(W, H, &buf)
        }
        _ => bail!(
            "--plot {}: unsupported format (use .svg or .png)",
            path.display()
        ),
    };
    Ok(bytes)
}

fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    res: &EvalResult,
    pairs: Option<&Vec<(f64, f64)>>,
    text: bool,
) -> Result<()> {
    root.fill(&WHITE).map_err(perr)?;
    let (left, right) = root.split_horizontally(H + 20);
    confusion(&left, res, text)?;
    if let Some(p) = pairs {
        scatter(&right, res, p, text)?;
    }
    Ok(())
}

/// Without `text` (PNG: no font rasterizer) nothing that draws text may be used: no
/// caption, no tick labels, no axis descriptions.
fn confusion<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    res: &EvalResult,
    text: bool,
) -> Result<()> {
    let k = res.classes as f64;
    let mut cb = ChartBuilder::on(area);
    if text {
        cb.caption(
            format!(
                "{}: accuracy {:.2}% (N = {})",
                res.model,
                100.0 * res.accuracy,
                res.samples
            ),
            ("sans-serif", 18),
        );
    }
    let mut chart = cb
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(40)
        .build_cartesian_2d(-0.5..k - 0.5, k - 0.5..-0.5)
        .map_err(perr)?;
    if text {
        chart
            .configure_mesh()
            .disable_mesh()
            .x_labels(res.classes.min(20))
            .y_labels(res.classes.min(20))
            .x_label_formatter(&|v| format!("{}", v.round()))
            .y_label_formatter(&|v| format!("{}", v.round()))
            .x_desc("predicted class")
            .y_desc("true class")
            .draw()
            .map_err(perr)?;
    }
    for (t, row) in res.confusion.iter().enumerate() {
        let total: u64 = row.iter().sum();
        for (p, &n) in row.iter().enumerate() {
            // Share of the true class; a floor keeps single errors visible.
            let f = match (total, n) {
                (0, _) | (_, 0) => 0.0,
                _ => (n as f64 / total as f64).max(0.2),
            };
            let shade = |c: u8| (255.0 - f * (255.0 - c as f64)) as u8;
            let color = if t == p {
                RGBColor(shade(30), shade(90), shade(200))
            } else {
                RGBColor(shade(220), shade(60), shade(40))
            };
            let (x, y) = (p as f64, t as f64);
            chart
                .draw_series(std::iter::once(Rectangle::new(
                    [(x - 0.5, y - 0.5), (x + 0.5, y + 0.5)],
                    color.filled(),
                )))
                .map_err(perr)?;
            if n > 0 && text {
                let style = TextStyle::from(("sans-serif", 13).into_font())
                    .pos(Pos::new(HPos::Center, VPos::Center))
                    .color(if f > 0.6 { &WHITE } else { &BLACK });
                chart
                    .draw_series(std::iter::once(Text::new(n.to_string(), (x, y), style)))
                    .map_err(perr)?;
            }
        }
    }
    Ok(())
}

fn scatter<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    res: &EvalResult,
    pairs: &[(f64, f64)],
    text: bool,
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
    let mut cb = ChartBuilder::on(area);
    if text {
        cb.caption(
            format!(
                "outputs vs reference: max |err| {:.2e}, agreement {:.2}%",
                res.max_abs_error.unwrap_or(0.0),
                100.0 * res.agreement.unwrap_or(0.0)
            ),
            ("sans-serif", 16),
        );
    }
    let mut chart = cb
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(lo..hi, lo..hi)
        .map_err(perr)?;
    let mut mesh = chart.configure_mesh();
    mesh.light_line_style(WHITE);
    if text {
        mesh.x_desc(format!(
            "reference ({})",
            res.reference.as_deref().unwrap_or("")
        ))
        .y_desc(res.model.clone());
    } else {
        mesh.x_labels(0).y_labels(0);
    }
    mesh.draw().map_err(perr)?;
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
