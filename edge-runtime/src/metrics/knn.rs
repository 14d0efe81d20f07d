//! The k-nearest-neighbour core of evaluation: exact Euclidean distances at GEMM speed, in
//! memory proportional to one block, never an `n × m` matrix.
//!
//! Inputs are row-major `f32` matrices (`n × d`, one sample per row). Squared distances are
//! screened block by block as `‖a‖² + ‖b‖² − 2 a·b`, the `a·b` from one matrix product per
//! `QUERY_BLOCK × REFERENCE_BLOCK` block (matrixmultiply through ndarray), blocks spread over all
//! cores with rayon. Screening in `f32` can misorder near-ties, so it only nominates: each row
//! keeps `k + MARGIN` candidates in a fixed-size list (`heapless`), whose distances are then
//! recomputed exactly in `f64` from the coordinates; a ball test `d < r` whose screened value lies
//! within the screening error of `r` is recomputed exactly too. Results therefore match a
//! brute-force `f64` computation (the reference `prdc` uses), ties aside.

use std::ops::Range;

use heapless::Vec as FixedVec;
use ndarray::{ArrayView2, linalg::general_mat_mul};
use rayon::prelude::*;

/// The largest `k` (plus screening margin) a query may ask for.
pub const MAX_CANDIDATES: usize = 16;
/// Extra candidates kept while screening, so that `f32` rounding cannot push a true neighbour out.
const MARGIN: usize = 8;
const QUERY_BLOCK: usize = 64;
const REFERENCE_BLOCK: usize = 1024;
/// Screened squared distances this close (relative to `‖a‖² + ‖b‖²`) to a radius are recomputed.
const SCREEN_TOLERANCE: f32 = 1e-4;

/// A row-major `f32` matrix borrowed from a slice.
#[derive(Debug, Clone, Copy)]
pub struct Rows<'a> {
    pub data: &'a [f32],
    pub n_rows: usize,
    pub dim: usize,
}

impl<'a> Rows<'a> {
    pub fn new(data: &'a [f32], dim: usize) -> Rows<'a> {
        let n_rows = if dim == 0 { 0 } else { data.len() / dim };
        Rows { data, n_rows, dim }
    }

    pub fn row(&self, idx: usize) -> &'a [f32] {
        &self.data[idx * self.dim..(idx + 1) * self.dim]
    }

    fn view(&self, rows: Range<usize>) -> ArrayView2<'a, f32> {
        let data = &self.data[rows.start * self.dim..rows.end * self.dim];
        ArrayView2::from_shape((rows.len(), self.dim), data).expect("a block holds rows × dim values by construction")
    }

    fn squared_norms(&self) -> Vec<f32> {
        (0..self.n_rows).map(|idx| self.row(idx).iter().map(|x| x * x).sum()).collect()
    }
}

/// Exact squared Euclidean distance in `f64`.
pub fn exact_squared(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (f64::from(*x) - f64::from(*y)).powi(2)).sum()
}

/// The `k` nearest reference rows of each query row: exact distances, ascending.
#[derive(Debug, Clone, PartialEq)]
pub struct Neighbours {
    pub k: usize,
    /// `n_query × k` Euclidean distances.
    pub distance: Vec<f64>,
    /// `n_query × k` reference indices.
    pub index: Vec<u32>,
}

impl Neighbours {
    pub fn row(&self, query: usize) -> &[f64] {
        &self.distance[query * self.k..(query + 1) * self.k]
    }

    /// The distance to the `j`-th nearest (0-based) of every query row.
    pub fn column(&self, j: usize) -> Vec<f64> {
        self.distance.chunks_exact(self.k).map(|row| row[j]).collect()
    }
}

/// A bounded list of the best (smallest) screened candidates.
#[derive(Debug, Clone, Default)]
struct Candidates {
    items: FixedVec<(f32, u32), MAX_CANDIDATES>,
    capacity: usize,
}

impl Candidates {
    fn new(capacity: usize) -> Self {
        Candidates { items: FixedVec::new(), capacity: capacity.min(MAX_CANDIDATES) }
    }

    fn worst(&self) -> f32 {
        if self.items.len() < self.capacity { f32::INFINITY } else { self.items.last().map_or(f32::INFINITY, |item| item.0) }
    }

    fn offer(&mut self, distance: f32, index: u32) {
        if distance >= self.worst() {
            return;
        }
        if self.items.len() == self.capacity {
            self.items.pop();
        }
        let at = self.items.iter().position(|item| item.0 > distance).unwrap_or(self.items.len());
        // Capacity was made available just above.
        let _ = self.items.insert(at, (distance, index));
    }

    fn merge(&mut self, other: &Candidates) {
        for &(distance, index) in &other.items {
            if !self.items.iter().any(|item| item.1 == index) {
                self.offer(distance, index);
            }
        }
    }

    /// The `k` exact nearest among the candidates.
    fn resolve(&self, query: &[f32], reference: &Rows<'_>, k: usize) -> Vec<(f64, u32)> {
        let mut exact: Vec<(f64, u32)> =
            self.items.iter().map(|&(_, idx)| (exact_squared(query, reference.row(idx as usize)).sqrt(), idx)).collect();
        exact.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        exact.truncate(k);
        exact
    }
}

/// Visits screened squared distances of `queries` rows `range` against every reference row,
/// one reference block at a time: `visit(query_idx, reference_idx, screened_d2)`.
fn screen_block(queries: &Rows<'_>, query_norms: &[f32], references: &Rows<'_>, reference_norms: &[f32], range: Range<usize>, mut visit: impl FnMut(usize, usize, f32)) {
    let q_view = queries.view(range.clone());
    let mut products = ndarray::Array2::<f32>::zeros((range.len(), REFERENCE_BLOCK.min(references.n_rows)));
    for r_start in (0..references.n_rows).step_by(REFERENCE_BLOCK) {
        let r_end = (r_start + REFERENCE_BLOCK).min(references.n_rows);
        let r_view = references.view(r_start..r_end);
        let mut block = products.slice_axis_mut(ndarray::Axis(1), ndarray::Slice::from(0..r_end - r_start));
        general_mat_mul(1.0, &q_view, &r_view.t(), 0.0, &mut block);
        for (row_offset, products_row) in block.outer_iter().enumerate() {
            let query = range.start + row_offset;
            let query_norm = query_norms[query];
            for (col_offset, &dot) in products_row.iter().enumerate() {
                let reference = r_start + col_offset;
                visit(query, reference, (query_norm + reference_norms[reference] - 2.0 * dot).max(0.0));
            }
        }
    }
}

/// The `k` nearest rows of `references` for every row of `queries`; with `same_set`, a row is
/// not its own neighbour (queries and references must then be the same matrix).
pub fn nearest(queries: Rows<'_>, references: Rows<'_>, k: usize, same_set: bool) -> Neighbours {
    let k = k.min(MAX_CANDIDATES);
    let query_norms = queries.squared_norms();
    let reference_norms = references.squared_norms();
    let starts: Vec<usize> = (0..queries.n_rows).step_by(QUERY_BLOCK).collect();
    let blocks: Vec<Vec<(f64, u32)>> = starts
        .par_iter()
        .flat_map_iter(|&start| {
            let range = start..(start + QUERY_BLOCK).min(queries.n_rows);
            let mut lists: Vec<Candidates> = range.clone().map(|_| Candidates::new(k + MARGIN)).collect();
            screen_block(&queries, &query_norms, &references, &reference_norms, range.clone(), |query, reference, d2| {
                if !(same_set && query == reference) {
                    lists[query - range.start].offer(d2, reference as u32);
                }
            });
            lists.into_iter().enumerate().map(move |(offset, list)| list.resolve(queries.row(range.start + offset), &references, k)).collect::<Vec<_>>()
        })
        .collect();
    let mut neighbours = Neighbours { k, distance: Vec::with_capacity(queries.n_rows * k), index: Vec::with_capacity(queries.n_rows * k) };
    for row in blocks {
        for slot in 0..k {
            let (distance, index) = row.get(slot).copied().unwrap_or((f64::INFINITY, u32::MAX));
            neighbours.distance.push(distance);
            neighbours.index.push(index);
        }
    }
    neighbours
}

/// What one pass over all `(a, b)` pairs of two sets yields (see [`cross`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Cross {
    /// For each `a`: its `k_a` nearest `b`.
    pub a_nearest: Neighbours,
    /// For each `b`: its `k_b` nearest `a`.
    pub b_nearest: Neighbours,
    /// For each `a`: the number of `b` whose ball (radius `b_radius`) strictly contains it.
    pub a_in_b_balls: Vec<u32>,
    /// For each `b`: whether some `a` ball (radius `a_radius`) strictly contains it.
    pub b_in_some_a_ball: Vec<bool>,
}

/// One pass over all pairs of `a` and `b` computing nearest neighbours both ways and, when radii
/// are given, strict ball membership both ways (`d(a, b) < r`).
pub fn cross(a: Rows<'_>, b: Rows<'_>, k_a: usize, k_b: usize, a_radius: Option<&[f64]>, b_radius: Option<&[f64]>) -> Cross {
    let (k_a, k_b) = (k_a.clamp(1, MAX_CANDIDATES), k_b.clamp(1, MAX_CANDIDATES));
    let a_norms = a.squared_norms();
    let b_norms = b.squared_norms();
    let a_radius_sq: Option<Vec<f64>> = a_radius.map(|radii| radii.iter().map(|r| r * r).collect());
    let b_radius_sq: Option<Vec<f64>> = b_radius.map(|radii| radii.iter().map(|r| r * r).collect());
    // Is d(a, b) < r, deciding exactly when the screened value is too close to call?
    let inside = |screened: f32, radius_sq: f64, i: usize, j: usize| -> bool {
        let tolerance = f64::from(SCREEN_TOLERANCE * (a_norms[i] + b_norms[j])) + 1e-12;
        let screened = f64::from(screened);
        if screened < radius_sq - tolerance {
            true
        } else if screened > radius_sq + tolerance {
            false
        } else {
            exact_squared(a.row(i), b.row(j)) < radius_sq
        }
    };

    struct Partial {
        a_rows: Vec<(Vec<(f64, u32)>, u32)>,
        b_lists: Vec<Candidates>,
        b_hit: Vec<bool>,
    }
    let starts: Vec<usize> = (0..a.n_rows).step_by(QUERY_BLOCK).collect();
    let new_partial = || Partial { a_rows: Vec::new(), b_lists: vec![Candidates::new(k_b + MARGIN); b.n_rows], b_hit: vec![false; b.n_rows] };
    let mut partials: Vec<(usize, Partial)> = starts
        .par_iter()
        .fold(
            || (usize::MAX, new_partial()),
            |(first, mut partial), &start| {
                let range = start..(start + QUERY_BLOCK).min(a.n_rows);
                let mut lists: Vec<Candidates> = range.clone().map(|_| Candidates::new(k_a + MARGIN)).collect();
                let mut counts = vec![0_u32; range.len()];
                screen_block(&a, &a_norms, &b, &b_norms, range.clone(), |i, j, d2| {
                    lists[i - range.start].offer(d2, j as u32);
                    partial.b_lists[j].offer(d2, i as u32);
                    if let Some(radii) = &b_radius_sq {
                        if inside(d2, radii[j], i, j) {
                            counts[i - range.start] += 1;
                        }
                    }
                    if let Some(radii) = &a_radius_sq {
                        if !partial.b_hit[j] && inside(d2, radii[i], i, j) {
                            partial.b_hit[j] = true;
                        }
                    }
                });
                for (offset, (list, count)) in lists.into_iter().zip(counts).enumerate() {
                    partial.a_rows.push((list.resolve(a.row(range.start + offset), &b, k_a), count));
                }
                (first.min(start), partial)
            },
        )
        .filter(|(first, _)| *first != usize::MAX)
        .collect();
    // Folds cover contiguous, ordered runs of blocks; order them by their first block.
    partials.sort_by_key(|(first, _)| *first);

    let mut a_nearest = Neighbours { k: k_a, distance: Vec::with_capacity(a.n_rows * k_a), index: Vec::with_capacity(a.n_rows * k_a) };
    let mut a_in_b_balls = Vec::with_capacity(a.n_rows);
    let mut b_lists = vec![Candidates::new(k_b + MARGIN); b.n_rows];
    let mut b_in_some_a_ball = vec![false; b.n_rows];
    for (_, partial) in &partials {
        for (row, count) in &partial.a_rows {
            for slot in 0..k_a {
                let (distance, index) = row.get(slot).copied().unwrap_or((f64::INFINITY, u32::MAX));
                a_nearest.distance.push(distance);
                a_nearest.index.push(index);
            }
            a_in_b_balls.push(*count);
        }
        for (j, list) in partial.b_lists.iter().enumerate() {
            b_lists[j].merge(list);
            b_in_some_a_ball[j] |= partial.b_hit[j];
        }
    }
    let mut b_nearest = Neighbours { k: k_b, distance: Vec::with_capacity(b.n_rows * k_b), index: Vec::with_capacity(b.n_rows * k_b) };
    for (j, list) in b_lists.iter().enumerate() {
        let row = list.resolve(b.row(j), &a, k_b);
        for slot in 0..k_b {
            let (distance, index) = row.get(slot).copied().unwrap_or((f64::INFINITY, u32::MAX));
            b_nearest.distance.push(distance);
            b_nearest.index.push(index);
        }
    }
    Cross { a_nearest, b_nearest, a_in_b_balls, b_in_some_a_ball }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn random(n: usize, dim: usize, seed: u64) -> Vec<f32> {
        models::rng::normal_f32(&mut models::rng::stream(seed, "test/knn"), n * dim)
    }

    fn brute_nearest(q: &Rows<'_>, r: &Rows<'_>, k: usize, same: bool) -> Vec<Vec<f64>> {
        (0..q.n_rows)
            .map(|i| {
                let mut d: Vec<f64> = (0..r.n_rows).filter(|&j| !(same && i == j)).map(|j| exact_squared(q.row(i), r.row(j)).sqrt()).collect();
                d.sort_by(f64::total_cmp);
                d.truncate(k);
                d
            })
            .collect()
    }

    #[test]
    fn nearest_matches_brute_force() {
        // Sizes that straddle the block sizes, duplicates to make exact zeros.
        let dim = 7;
        let mut data = random(1500, dim, 1);
        let copy: Vec<f32> = data[..dim * 10].to_vec();
        data[dim * 20..dim * 30].copy_from_slice(&copy);
        let rows = Rows::new(&data, dim);
        let other = random(300, dim, 2);
        let others = Rows::new(&other, dim);
        for (q, r, same) in [(rows, rows, true), (others, rows, false), (rows, others, false)] {
            let got = nearest(q, r, 5, same);
            let want = brute_nearest(&q, &r, 5, same);
            for (i, want_row) in want.iter().enumerate() {
                assert_eq!(got.row(i), want_row.as_slice(), "row {i}");
            }
        }
        let exact_copy = nearest(rows, rows, 1, true);
        assert_eq!(exact_copy.row(20), [0.0]);
    }

    #[test]
    fn cross_matches_brute_force() {
        let dim = 5;
        let a_data = random(700, dim, 3);
        let b_data = random(1100, dim, 4);
        let (a, b) = (Rows::new(&a_data, dim), Rows::new(&b_data, dim));
        let a_radius: Vec<f64> = (0..a.n_rows).map(|i| 0.8 + (i % 7) as f64 * 0.1).collect();
        let b_radius: Vec<f64> = (0..b.n_rows).map(|j| 0.7 + (j % 5) as f64 * 0.1).collect();
        let got = cross(a, b, 2, 1, Some(&a_radius), Some(&b_radius));
        for i in 0..a.n_rows {
            let count = (0..b.n_rows).filter(|&j| exact_squared(a.row(i), b.row(j)).sqrt() < b_radius[j]).count();
            assert_eq!(got.a_in_b_balls[i] as usize, count, "a {i}");
        }
        for j in 0..b.n_rows {
            let hit = (0..a.n_rows).any(|i| exact_squared(a.row(i), b.row(j)).sqrt() < a_radius[i]);
            assert_eq!(got.b_in_some_a_ball[j], hit, "b {j}");
        }
        let want_a = brute_nearest(&a, &b, 2, false);
        let want_b = brute_nearest(&b, &a, 1, false);
        for (i, row) in want_a.iter().enumerate() {
            assert_eq!(got.a_nearest.row(i), row.as_slice());
        }
        for (j, row) in want_b.iter().enumerate() {
            assert_eq!(got.b_nearest.row(j), row.as_slice());
        }
    }
}
