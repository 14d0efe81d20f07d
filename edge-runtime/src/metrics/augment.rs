//! Classical data augmentation of the real train part, the baseline that synthetic data is
//! compared with in `classical_augmentation_gain` and `combined_augmentation_gain`.
//!
//! Rows are encoded features (see [`super`]): an image row is `channels × height × width` pixels,
//! channel-major, in the encoded space; a table row is standardised numeric columns and one-hot
//! categorical blocks.
//!
//! - **Images**: each augmented row is one train image under a random geometric change, sampled
//!   once with bilinear interpolation: a horizontal flip (probability ½), a rotation about the
//!   centre by up to ±15°, a shift by up to ±⅛ of each side and a crop of ⅞ of each side at a
//!   random place, resized back. Pixels brought in from outside the image take the image's
//!   background, its smallest value in that channel (-1, black, for scaled pixels).
//! - **Tables**: each augmented row is, with even odds, Gaussian jitter (σ = 0.1 on every numeric
//!   feature, categories kept) or a SMOTE interpolation between the row and one of its 5 nearest
//!   neighbours of the same class (numeric features on the segment between them, each one-hot
//!   block taken from the nearer of the two).
//!
//! Source rows are taken in a shuffled order, cycling, so every train row is used as evenly as the
//! count allows. Every draw comes from `models::rng::stream(seed, "utility/augment/...")`: a seed
//! fixes the rows. [`Augmentation::strength`] scales every change; at 0 the augmentation copies
//! the train rows (a check of the figures built on it).

use rand::RngExt;

use super::knn::Rows;
use super::utility::Labelled;
use models::ImageShape;
use models::transform::Block;

/// Largest rotation, in degrees, at strength 1.
pub const MAX_ROTATION_DEGREES: f64 = 15.0;
/// Largest shift, as a share of the side, at strength 1.
pub const MAX_SHIFT_SHARE: f64 = 1.0 / 8.0;
/// The side of the crop that is resized back, as a share of the side, at strength 1.
pub const CROP_SHARE: f64 = 7.0 / 8.0;
/// Standard deviation of the table jitter, in standardised units, at strength 1.
pub const JITTER_SIGMA: f32 = 0.1;
/// Neighbours of the same class a SMOTE point is drawn towards.
pub const SMOTE_NEIGHBOURS: usize = 5;

/// What the augmentation knows about the rows.
#[derive(Debug, Clone, Copy)]
pub struct Augmentation<'a> {
    /// `Some` for images: the rows are pixels of this shape.
    pub image: Option<ImageShape>,
    /// The encoded blocks of a table (categorical blocks are kept one-hot); ignored for images.
    pub blocks: &'a [Block],
    /// Scales every change: 1 is the augmentation described above, 0 copies the rows.
    pub strength: f32,
}

/// `n_rows` augmented rows of `train` and their labels (the source rows' labels).
pub fn augment(
    train: &Labelled<'_>,
    n_rows: usize,
    augmentation: &Augmentation<'_>,
    seed: u64,
) -> (Vec<f32>, Vec<u32>) {
    let n_train = train.x.n_rows;
    let dim = train.x.dim;
    if n_train == 0 || n_rows == 0 {
        return (Vec::new(), Vec::new());
    }
    let mut order: Vec<usize> = (0..n_train).collect();
    models::rng::shuffle(&mut models::rng::stream(seed, "utility/augment/order"), &mut order);
    let sources: Vec<usize> = (0..n_rows).map(|idx| order[idx % n_train]).collect();
    let labels: Vec<u32> = sources.iter().map(|&row| train.labels[row]).collect();
    let mut out = Vec::with_capacity(n_rows * dim);
    let strength = f64::from(augmentation.strength.max(0.0));
    match augmentation.image {
        Some(shape) if shape.channels * shape.height * shape.width == dim => {
            let mut rng = models::rng::stream(seed, "utility/augment/geometry");
            for &row in &sources {
                let geometry = Geometry::draw(&mut rng, shape, strength);
                out.extend(transform(train.x.row(row), shape, &geometry));
            }
        }
        _ => {
            let numeric = numeric_mask(augmentation.blocks, dim);
            let neighbours = class_neighbours(train, SMOTE_NEIGHBOURS);
            let mut rng = models::rng::stream(seed, "utility/augment/table");
            let sigma = JITTER_SIGMA * strength as f32;
            for &row in &sources {
                let base = train.x.row(row);
                let smote = rng.random::<bool>();
                match neighbours[row].as_slice() {
                    candidates if smote && !candidates.is_empty() => {
                        let other = candidates[rng.random_range(0..candidates.len())];
                        let lambda = rng.random::<f32>() * strength as f32;
                        out.extend(interpolate(
                            base,
                            train.x.row(other),
                            lambda,
                            augmentation.blocks,
                        ));
                    }
                    _ => {
                        let noise = models::rng::normal_f32(&mut rng, dim);
                        out.extend(jitter(base, &noise, sigma, &numeric));
                    }
                }
            }
        }
    }
    (out, labels)
}

/// One draw of the image changes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Geometry {
    pub flip: bool,
    /// Anticlockwise, in radians.
    pub angle: f64,
    /// Shift in pixels (positive: right, down).
    pub dx: f64,
    pub dy: f64,
    /// The crop: its top-left corner and its size, in pixels of the shifted, rotated image.
    pub crop_x: f64,
    pub crop_y: f64,
    pub crop_width: f64,
    pub crop_height: f64,
}

impl Geometry {
    /// No change at all.
    pub fn identity(shape: ImageShape) -> Geometry {
        Geometry {
            flip: false,
            angle: 0.0,
            dx: 0.0,
            dy: 0.0,
            crop_x: 0.0,
            crop_y: 0.0,
            crop_width: shape.width as f64,
            crop_height: shape.height as f64,
        }
    }

    fn draw(rng: &mut models::rng::StreamRng, shape: ImageShape, strength: f64) -> Geometry {
        let (width, height) = (shape.width as f64, shape.height as f64);
        let flip = rng.random::<bool>() && strength > 0.0;
        let symmetric = |rng: &mut models::rng::StreamRng, half: f64| {
            (rng.random::<f64>() * 2.0 - 1.0) * half * strength
        };
        let angle = symmetric(rng, MAX_ROTATION_DEGREES.to_radians());
        let dx = symmetric(rng, MAX_SHIFT_SHARE * width).round();
        let dy = symmetric(rng, MAX_SHIFT_SHARE * height).round();
        let share = 1.0 - (1.0 - CROP_SHARE) * strength;
        let (crop_width, crop_height) = (width * share, height * share);
        let crop_x = rng.random::<f64>() * (width - crop_width);
        let crop_y = rng.random::<f64>() * (height - crop_height);
        Geometry { flip, angle, dx, dy, crop_x, crop_y, crop_width, crop_height }
    }
}

/// The image `pixels` (of `shape`, channel-major) under `geometry`: each output pixel is the
/// source pixel it comes from, bilinearly interpolated; the crop is taken last (it is what the
/// output shows), after the flip, the rotation and the shift.
pub fn transform(pixels: &[f32], shape: ImageShape, geometry: &Geometry) -> Vec<f32> {
    let (width, height) = (shape.width, shape.height);
    let plane = width * height;
    let (centre_x, centre_y) = ((width as f64 - 1.0) / 2.0, (height as f64 - 1.0) / 2.0);
    let (sin, cos) = geometry.angle.sin_cos();
    let mut out = vec![0.0; pixels.len()];
    for channel in 0..shape.channels {
        let source = &pixels[channel * plane..(channel + 1) * plane];
        let background = source.iter().copied().fold(f32::INFINITY, f32::min);
        for y in 0..height {
            for x in 0..width {
                // Output pixel → crop → before the shift → before the rotation → before the flip.
                let cx =
                    geometry.crop_x + (x as f64 + 0.5) * geometry.crop_width / width as f64 - 0.5;
                let cy =
                    geometry.crop_y + (y as f64 + 0.5) * geometry.crop_height / height as f64 - 0.5;
                let (sx, sy) = (cx - geometry.dx - centre_x, cy - geometry.dy - centre_y);
                let rx = centre_x + cos * sx - sin * sy;
                let ry = centre_y + sin * sx + cos * sy;
                let fx = if geometry.flip { width as f64 - 1.0 - rx } else { rx };
                out[channel * plane + y * width + x] =
                    bilinear(source, width, height, fx, ry, background);
            }
        }
    }
    out
}

/// The value at `(x, y)` of a `width × height` plane, `background` outside it.
fn bilinear(plane: &[f32], width: usize, height: usize, x: f64, y: f64, background: f32) -> f32 {
    let (x0, y0) = (x.floor(), y.floor());
    let (tx, ty) = (x - x0, y - y0);
    let at = |xi: f64, yi: f64| -> f64 {
        if xi < 0.0 || yi < 0.0 || xi >= width as f64 || yi >= height as f64 {
            f64::from(background)
        } else {
            f64::from(plane[yi as usize * width + xi as usize])
        }
    };
    // Weights of exactly 0 or 1 leave a pixel on the grid untouched.
    let mut value = 0.0;
    for (xi, wx) in [(x0, 1.0 - tx), (x0 + 1.0, tx)] {
        for (yi, wy) in [(y0, 1.0 - ty), (y0 + 1.0, ty)] {
            if wx * wy != 0.0 {
                value += wx * wy * at(xi, yi);
            }
        }
    }
    value as f32
}

/// `pixels` mirrored left to right.
pub fn flip_horizontal(pixels: &[f32], shape: ImageShape) -> Vec<f32> {
    let mut out = pixels.to_vec();
    for row in out.chunks_exact_mut(shape.width) {
        row.reverse();
    }
    out
}

/// Which encoded features are numeric (all of them when `blocks` does not cover `dim`).
fn numeric_mask(blocks: &[Block], dim: usize) -> Vec<bool> {
    let mut mask = vec![true; dim];
    for block in blocks.iter().filter(|block| block.categorical) {
        for flag in mask.iter_mut().skip(block.start).take(block.width) {
            *flag = false;
        }
    }
    mask
}

/// `row + sigma · noise` on the numeric features; the others are kept.
pub fn jitter(row: &[f32], noise: &[f32], sigma: f32, numeric: &[bool]) -> Vec<f32> {
    row.iter()
        .zip(noise)
        .zip(numeric)
        .map(|((x, e), &numeric)| if numeric { x + sigma * e } else { *x })
        .collect()
}

/// The SMOTE point `a + λ (b − a)` on the numeric features; each categorical block is copied
/// from `a` when λ < ½, from `b` otherwise.
pub fn interpolate(a: &[f32], b: &[f32], lambda: f32, blocks: &[Block]) -> Vec<f32> {
    let mut out: Vec<f32> = a.iter().zip(b).map(|(x, y)| x + lambda * (y - x)).collect();
    for block in blocks.iter().filter(|block| block.categorical) {
        let end = (block.start + block.width).min(out.len());
        let from = if lambda < 0.5 { a } else { b };
        if block.start < end {
            out[block.start..end].copy_from_slice(&from[block.start..end]);
        }
    }
    out
}

/// For each row, its `k` nearest other rows of the same class (squared Euclidean distance, ties
/// by row index); fewer when the class is smaller.
pub fn class_neighbours(data: &Labelled<'_>, k: usize) -> Vec<Vec<usize>> {
    let x: Rows<'_> = data.x;
    (0..x.n_rows)
        .map(|row| {
            let mut candidates: Vec<(f64, usize)> = (0..x.n_rows)
                .filter(|&other| other != row && data.labels[other] == data.labels[row])
                .map(|other| {
                    let distance: f64 = x
                        .row(row)
                        .iter()
                        .zip(x.row(other))
                        .map(|(a, b)| f64::from(a - b).powi(2))
                        .sum();
                    (distance, other)
                })
                .collect();
            candidates.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            candidates.into_iter().take(k).map(|(_, other)| other).collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHAPE: ImageShape = ImageShape { channels: 2, height: 8, width: 6 };

    fn image(seed: u64) -> Vec<f32> {
        let n = SHAPE.channels * SHAPE.height * SHAPE.width;
        models::rng::normal_f32(&mut models::rng::stream(seed, "test/image"), n)
    }

    #[test]
    fn a_flip_twice_is_the_identity_and_once_mirrors_each_row() {
        let pixels = image(1);
        let once = flip_horizontal(&pixels, SHAPE);
        assert_eq!(flip_horizontal(&once, SHAPE), pixels);
        assert_eq!(once[0], pixels[SHAPE.width - 1]);
        // The geometric flip is the same mirror, exactly (weights 0 and 1 only).
        let geometry = Geometry { flip: true, ..Geometry::identity(SHAPE) };
        assert_eq!(transform(&pixels, SHAPE, &geometry), once);
    }

    #[test]
    fn no_change_and_a_shift_by_zero_are_the_identity() {
        let pixels = image(2);
        assert_eq!(transform(&pixels, SHAPE, &Geometry::identity(SHAPE)), pixels);
        let augmentation = Augmentation { image: Some(SHAPE), blocks: &[], strength: 0.0 };
        let rows: Vec<f32> = [image(3), image(4)].concat();
        let labels = [0, 1];
        let train = Labelled { x: Rows::new(&rows, pixels.len()), labels: &labels };
        let (out, out_labels) = augment(&train, 4, &augmentation, 9);
        for (augmented, label) in out.chunks_exact(pixels.len()).zip(&out_labels) {
            assert_eq!(augmented, train.x.row(*label as usize), "strength 0 copies");
        }
    }

    #[test]
    fn a_one_pixel_shift_moves_pixels_and_fills_with_the_background() {
        let pixels = image(5);
        let geometry = Geometry { dx: 1.0, ..Geometry::identity(SHAPE) };
        let shifted = transform(&pixels, SHAPE, &geometry);
        let plane = SHAPE.height * SHAPE.width;
        for channel in 0..SHAPE.channels {
            let source = &pixels[channel * plane..(channel + 1) * plane];
            let background = source.iter().copied().fold(f32::INFINITY, f32::min);
            for y in 0..SHAPE.height {
                let at = |x: usize| shifted[channel * plane + y * SHAPE.width + x];
                assert_eq!(at(0), background);
                for x in 1..SHAPE.width {
                    assert_eq!(at(x), source[y * SHAPE.width + x - 1]);
                }
            }
        }
    }

    #[test]
    fn a_quarter_turn_of_a_square_image_moves_the_corners() {
        let shape = ImageShape { channels: 1, height: 5, width: 5 };
        let pixels: Vec<f32> = (0..25).map(|idx| idx as f32).collect();
        let geometry = Geometry { angle: std::f64::consts::FRAC_PI_2, ..Geometry::identity(shape) };
        let turned = transform(&pixels, shape, &geometry);
        // Turned about the centre c = 2, output (x, y) reads the source at (4 − y, x).
        for y in 0..5 {
            for x in 0..5 {
                let expected = pixels[x * 5 + (4 - y)];
                assert!((turned[y * 5 + x] - expected).abs() < 1e-4, "({x}, {y})");
            }
        }
    }

    fn two_classes() -> (Vec<f32>, Vec<u32>) {
        let rows = models::rng::normal_f32(&mut models::rng::stream(7, "test/table"), 40 * 3);
        let labels = (0..40).map(|row| (row % 2) as u32).collect();
        (rows, labels)
    }

    #[test]
    fn smote_points_lie_between_two_rows_of_the_same_class() {
        let (rows, labels) = two_classes();
        let train = Labelled { x: Rows::new(&rows, 3), labels: &labels };
        let neighbours = class_neighbours(&train, SMOTE_NEIGHBOURS);
        let augmentation = Augmentation { image: None, blocks: &[], strength: 1.0 };
        let (out, out_labels) = augment(&train, 200, &augmentation, 11);
        let mut on_segments = 0;
        for (point, label) in out.chunks_exact(3).zip(&out_labels) {
            // A SMOTE point is a + λ (b − a) for a row a of its class and one of a's neighbours.
            let found = (0..40).filter(|&a| labels[a] == *label).any(|a| {
                neighbours[a].iter().any(|&b| {
                    assert_eq!(labels[b], labels[a]);
                    let (ra, rb) = (train.x.row(a), train.x.row(b));
                    let lambda = (point[0] - ra[0]) / (rb[0] - ra[0]);
                    (0.0..=1.0).contains(&lambda)
                        && (0..3)
                            .all(|c| (ra[c] + lambda * (rb[c] - ra[c]) - point[c]).abs() < 1e-5)
                })
            });
            on_segments += usize::from(found);
        }
        // About half the rows are SMOTE points (the rest jitter, off every segment).
        assert!((70..=130).contains(&on_segments), "{on_segments} of 200 on a segment");
    }

    #[test]
    fn smote_keeps_categories_one_hot() {
        let blocks = [
            Block { start: 0, width: 1, categorical: false },
            Block { start: 1, width: 2, categorical: true },
        ];
        let (a, b) = ([0.0, 1.0, 0.0], [2.0, 0.0, 1.0]);
        assert_eq!(interpolate(&a, &b, 0.25, &blocks), vec![0.5, 1.0, 0.0]);
        assert_eq!(interpolate(&a, &b, 0.75, &blocks), vec![1.5, 0.0, 1.0]);
        assert_eq!(
            jitter(&a, &[1.0, 1.0, 1.0], 0.1, &numeric_mask(&blocks, 3)),
            vec![0.1, 1.0, 0.0]
        );
    }

    #[test]
    fn jitter_has_the_stated_spread() {
        let n = 20_000;
        let noise = models::rng::normal_f32(&mut models::rng::stream(3, "test/jitter"), n);
        let row = vec![0.5; n];
        let moved = jitter(&row, &noise, JITTER_SIGMA, &vec![true; n]);
        let differences: Vec<f64> = moved.iter().map(|x| f64::from(x - 0.5)).collect();
        let mean = differences.iter().sum::<f64>() / n as f64;
        let sd = (differences.iter().map(|d| (d - mean).powi(2)).sum::<f64>() / n as f64).sqrt();
        // The standard error of a standard deviation from 20 000 draws is σ / √(2n) ≈ 0.0005.
        assert!((sd - 0.1).abs() < 0.003, "σ {sd}");
        assert!(mean.abs() < 0.003, "mean {mean}");
    }

    #[test]
    fn the_same_seed_gives_the_same_rows_and_another_seed_others() {
        let (rows, labels) = two_classes();
        let train = Labelled { x: Rows::new(&rows, 3), labels: &labels };
        let table = Augmentation { image: None, blocks: &[], strength: 1.0 };
        assert_eq!(augment(&train, 50, &table, 1), augment(&train, 50, &table, 1));
        assert_ne!(augment(&train, 50, &table, 1).0, augment(&train, 50, &table, 2).0);
        let pixels: Vec<f32> = [image(1), image(2)].concat();
        let images = Labelled { x: Rows::new(&pixels, pixels.len() / 2), labels: &[0, 1] };
        let geometric = Augmentation { image: Some(SHAPE), blocks: &[], strength: 1.0 };
        assert_eq!(augment(&images, 6, &geometric, 4), augment(&images, 6, &geometric, 4));
        assert_ne!(augment(&images, 6, &geometric, 4).0, augment(&images, 6, &geometric, 5).0);
    }
}
