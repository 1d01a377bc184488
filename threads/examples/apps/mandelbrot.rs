//! Mandelbrot: `invoke_iterative` over the image's rows; each thread computes its block of rows
//! and writes them into one user-defined shared `Image`.

use crucial_dso::shared;
use crucial_threads::{Context, Runnable};
use serde::{Deserialize, Serialize};

/// A grayscale image held in the DSO: threads put rows into it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Image {
    width: u32,
    height: u32,
    pixels: Vec<u8>,
}

impl Image {
    /// A black `width x height` image.
    pub fn new(width: u32, height: u32) -> Self {
        Image { width, height, pixels: vec![0; width as usize * height as usize] }
    }
}

#[shared]
impl Image {
    /// Writes whole rows from `first_row` on; false (and nothing written) if they do not fit.
    pub fn put_rows(&mut self, first_row: u32, rows: Vec<u8>) -> bool {
        let start = first_row as usize * self.width as usize;
        if !rows.len().is_multiple_of(self.width.max(1) as usize) || start + rows.len() > self.pixels.len() {
            return false;
        }
        self.pixels[start..start + rows.len()].copy_from_slice(&rows);
        true
    }

    /// Width, height and pixels, row by row.
    pub fn pixels(&self) -> (u32, u32, Vec<u8>) {
        (self.width, self.height, self.pixels.clone())
    }
}

/// The view and the resolution.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct View {
    /// Pixels across.
    pub width: u32,
    /// Pixels down.
    pub height: u32,
    /// Iterations before a point counts as inside.
    pub iterations_max: u32,
}

/// The shade of pixel (`x`, `y`): escape time scaled to 0..=255 (0: inside the set).
pub fn shade(view: &View, x: u32, y: u32) -> u8 {
    let cx = -2.2 + 3.2 * f64::from(x) / f64::from(view.width);
    let cy = -1.2 + 2.4 * f64::from(y) / f64::from(view.height);
    let (mut zx, mut zy) = (0.0f64, 0.0f64);
    for iteration in 0..view.iterations_max {
        if zx * zx + zy * zy > 4.0 {
            return (255 - iteration * 255 / view.iterations_max) as u8;
        }
        (zx, zy) = (zx * zx - zy * zy + cx, 2.0 * zx * zy + cy);
    }
    0
}

/// The pixels of rows `rows`.
pub fn rows(view: &View, rows: std::ops::Range<u64>) -> Vec<u8> {
    rows.flat_map(|y| (0..view.width).map(move |x| shade(view, x, y as u32))).collect()
}

/// The sequential reference: every pixel.
pub fn sequential(view: &View) -> Vec<u8> {
    rows(view, 0..u64::from(view.height))
}

/// One thread: computes a block of rows and puts it into the image.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MandelbrotRows {
    /// The view.
    pub view: View,
    /// The rows.
    pub rows: std::ops::Range<u64>,
    /// The image's key.
    pub image: String,
}

#[crucial_threads::runnable]
impl Runnable for MandelbrotRows {
    const NAME: &'static str = "apps.mandelbrot";
    type Output = bool;
    type Error = crucial_dso::DsoError;

    async fn run(self, ctx: &Context) -> Result<bool, Self::Error> {
        let pixels = rows(&self.view, self.rows.clone());
        ctx.dso().handle::<Image>(&self.image).put_rows(self.rows.start as u32, pixels).await
    }
}

/// Writes a grayscale PNG.
pub fn write_png(
    path: &std::path::Path,
    width: u32,
    height: u32,
    pixels: &[u8],
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let file = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut encoder = png::Encoder::new(file, width, height);
    encoder.set_color(png::ColorType::Grayscale);
    encoder.set_depth(png::BitDepth::Eight);
    encoder.write_header()?.write_image_data(pixels)?;
    Ok(())
}
