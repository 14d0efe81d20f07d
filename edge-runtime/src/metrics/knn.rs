//! The k-nearest-neighbour core of evaluation: exact Euclidean distances at GEMM speed, in
//! memory proportional to one block, never an `n × m` matrix.
//!
//! Inputs are row-major `f32` matrices (`n × d`, one sample per row). Squared distances are
//! screened block by block as `‖a‖² + ‖b‖² − 2 a·b`, the `a·b` from one matrix product
//! (matrixmultiply through ndarray) per `QUERY_BLOCK × REFERENCE_BLOCK` block, large enough to
//! amortise packing the reference block; blocks are spread over all cores with rayon, and a
//! set's own neighbours come from a symmetric pass that screens each pair once. Distances are
//! scanned in chunks that are skipped unless some value beats a threshold, which is nearly
//! always. Screening in `f32` can misorder near-ties, so it only nominates: each row
//! keeps `k + MARGIN` candidates in a fixed-size list (`heapless`), whose distances are then
//! recomputed exactly in `f64` from the coordinates; a ball test `d < r` whose screened value lies
//! within the screening error of `r` is recomputed exactly too. Results therefore match a
//! brute-force `f64` computation (the reference `prdc` uses), ties aside.

use std::ops::Range;

use heapless::Vec as FixedVec;
use ndarray::{ArrayView2, linalg::general_mat_mul};
use rayon::prelude::*;

/// The largest `k` a query may ask for: [`nearest_within`] and [`cross`] refuse larger (and
/// zero) requests with [`check_k`]'s message.
pub const MAX_K: usize = 16;
/// Extra candidates kept while screening, so that `f32` rounding cannot push a true neighbour out.
const MARGIN: usize = 8;
/// The most candidates a row keeps while screening.
pub const MAX_CANDIDATES: usize = MAX_K + MARGIN;
const QUERY_BLOCK: usize = 256;
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
        let n_rows = data.len().checked_div(dim).unwrap_or(0);
        Rows { data, n_rows, dim }
    }

    pub fn row(&self, idx: usize) -> &'a [f32] {
        &self.data[idx * self.dim..(idx + 1) * self.dim]
    }

    fn view(&self, rows: Range<usize>) -> ArrayView2<'a, f32> {
        let data = &self.data[rows.start * self.dim..rows.end * self.dim];
        ArrayView2::from_shape((rows.len(), self.dim), data)
            .expect("a block holds rows × dim values by construction")
    }

    fn squared_norms(&self) -> Vec<f32> {
        (0..self.n_rows).map(|idx| self.row(idx).iter().map(|x| x * x).sum()).collect()
    }
}

/// Exact squared Euclidean distance in `f64`.
pub fn exact_squared(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (f64::from(*x) - f64::from(*y)).powi(2)).sum()
}

/// Refuses a neighbour count the k-NN figures cannot use: `k` must be in `1..=MAX_K`, and each
/// set whose rows look for their `k` nearest others (`sets`: name, rows) needs more than `k` rows.
pub fn check_k(k: usize, sets: &[(&str, usize)]) -> crate::Result<()> {
    if !(1..=MAX_K).contains(&k) {
        return Err(crate::Error::Invalid(format!("k (neighbours) is {k}; expected 1 to {MAX_K}")));
    }
    for &(set, rows) in sets {
        if rows <= k {
            return Err(crate::Error::Invalid(format!(
                "k (neighbours) is {k} but the {set} set has {rows} rows; the k-NN figures need at least {} rows",
                k + 1
            )));
        }
    }
    Ok(())
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

    /// The distance to the `j`-th nearest (0-based) of every query row; infinite where a row has
    /// fewer than `j + 1` neighbours (`j >= k`, or fewer reference rows than that).
    pub fn column(&self, j: usize) -> Vec<f64> {
        self.distance
            .chunks_exact(self.k.max(1))
            .map(|row| row.get(j).copied().unwrap_or(f64::INFINITY))
            .collect()
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
        if self.items.len() < self.capacity {
            f32::INFINITY
        } else {
            self.items.last().map_or(f32::INFINITY, |item| item.0)
        }
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
        let mut exact: Vec<(f64, u32)> = self
            .items
            .iter()
            .map(|&(_, idx)| (exact_squared(query, reference.row(idx as usize)).sqrt(), idx))
            .collect();
        exact.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        exact.truncate(k);
        exact
    }
}

/// One `rows × columns` tile of dot products (row-major) between query rows `row_start ..` and
/// reference rows `col_start ..`, with the squared norms to turn them into squared distances.
struct Tile<'t> {
    row_start: usize,
    col_start: usize,
    columns: usize,
    dots: &'t [f32],
    query_norms: &'t [f32],
    reference_norms: &'t [f32],
}

impl Tile<'_> {
    /// Fills `out` with the screened squared distances `‖q‖² + ‖r‖² − 2 q·r` of one row of the
    /// tile (a loop the compiler vectorises).
    fn fill_row(&self, offset: usize, out: &mut Vec<f32>) {
        let query_norm = self.query_norms[self.row_start + offset];
        let norms = &self.reference_norms[self.col_start..self.col_start + self.columns];
        let dots = &self.dots[offset * self.columns..(offset + 1) * self.columns];
        out.clear();
        out.extend(
            dots.iter().zip(norms).map(|(dot, norm)| (query_norm + norm - 2.0 * dot).max(0.0)),
        );
    }
}

/// Columns scanned together: a chunk is skipped when no distance in it beats any threshold,
/// which is nearly always, so the per-pair work is a few vectorised comparisons.
const CHUNK: usize = 16;

/// Screens query rows `range` against the reference rows `columns`, one GEMM per reference
/// block, and hands each tile to `visit`.
fn screen(
    queries: &Rows<'_>,
    query_norms: &[f32],
    references: &Rows<'_>,
    reference_norms: &[f32],
    range: Range<usize>,
    columns: Range<usize>,
    mut visit: impl FnMut(&Tile<'_>),
) {
    let q_view = queries.view(range.clone());
    let width = REFERENCE_BLOCK.min(columns.len());
    let mut products = ndarray::Array2::<f32>::zeros((range.len(), width));
    for col_start in columns.clone().step_by(REFERENCE_BLOCK) {
        let col_end = (col_start + REFERENCE_BLOCK).min(columns.end);
        let columns = col_end - col_start;
        let r_view = references.view(col_start..col_end);
        if columns < width {
            products = ndarray::Array2::<f32>::zeros((range.len(), columns));
        }
        general_mat_mul(1.0, &q_view, &r_view.t(), 0.0, &mut products);
        let dots = products.as_slice().expect("a fresh array is contiguous");
        visit(&Tile {
            row_start: range.start,
            col_start,
            columns,
            dots,
            query_norms,
            reference_norms,
        });
    }
}

/// What one run of row blocks of [`nearest_within`] found: the finished lists of its own rows,
/// and for every row the candidates it offered to that row from the other side of the diagonal.
type RunPartial = (Vec<(usize, Candidates)>, Vec<Candidates>);

/// The `k` nearest other rows of every row of `rows` (never itself), for half the work of a
/// general pass: each pair `(i, j)` is screened once and offered to both rows. A `k` outside
/// `1..=MAX_K` is refused; a row with fewer than `k` others has its missing neighbours at
/// infinity.
pub fn nearest_within(rows: Rows<'_>, k: usize) -> crate::Result<Neighbours> {
    check_k(k, &[])?;
    let n = rows.n_rows;
    let norms = rows.squared_norms();
    let capacity = k + MARGIN;
    let starts: Vec<usize> = (0..n).step_by(QUERY_BLOCK).collect();
    // One run per worker, blocks dealt round-robin (early blocks screen the most columns of the
    // upper triangle, so dealing keeps the runs even). Every run carries a column state of n
    // lists that start empty and must be merged: with four runs per worker those cold lists and
    // the merge made the self pass 1.5x slower per pair than a cross pass (measured 10,000 x 64).
    let n_runs = rayon::current_num_threads().min(starts.len()).max(1);
    let runs: Vec<Vec<usize>> =
        (0..n_runs).map(|run| starts.iter().copied().skip(run).step_by(n_runs).collect()).collect();
    let partials: Vec<RunPartial> =
        runs.par_iter()
            .map(|run| {
                let mut row_lists = Vec::new();
                let mut column_lists = vec![Candidates::new(capacity); n];
                let mut column_worst = vec![f32::INFINITY; n];
                let mut row = Vec::with_capacity(REFERENCE_BLOCK);
                for &start in run {
                    let range = start..(start + QUERY_BLOCK).min(n);
                    let mut lists: Vec<Candidates> =
                        range.clone().map(|_| Candidates::new(capacity)).collect();
                    screen(&rows, &norms, &rows, &norms, range.clone(), start..n, |tile| {
                        for (offset, list) in lists.iter_mut().enumerate() {
                            let i = tile.row_start + offset;
                            tile.fill_row(offset, &mut row);
                            let mut worst = list.worst();
                            for (chunk_idx, chunk) in row.chunks(CHUNK).enumerate() {
                                let j0 = tile.col_start + chunk_idx * CHUNK;
                                let others = &column_worst[j0..j0 + chunk.len()];
                                if !chunk.iter().zip(others).fold(false, |any, (&d2, &other)| {
                                    any | (d2 < worst) | (d2 < other)
                                }) {
                                    continue;
                                }
                                for (col, &d2) in chunk.iter().enumerate() {
                                    let j = j0 + col;
                                    if j == i {
                                        continue;
                                    }
                                    if d2 < worst {
                                        list.offer(d2, j as u32);
                                        worst = list.worst();
                                    }
                                    // Pairs inside the row block reach `j` through its own row.
                                    if j >= range.end && d2 < column_worst[j] {
                                        column_lists[j].offer(d2, i as u32);
                                        column_worst[j] = column_lists[j].worst();
                                    }
                                }
                            }
                        }
                    });
                    row_lists.extend(range.zip(lists));
                }
                (row_lists, column_lists)
            })
            .collect();
    let mut merged: Vec<Candidates> = vec![Candidates::new(capacity); n];
    for (row_lists, column_lists) in &partials {
        for (i, list) in row_lists {
            merged[*i].merge(list);
        }
        for (i, list) in column_lists.iter().enumerate() {
            merged[i].merge(list);
        }
    }
    let resolved: Vec<Vec<(f64, u32)>> = merged
        .par_iter()
        .enumerate()
        .map(|(i, list)| list.resolve(rows.row(i), &rows, k))
        .collect();
    let mut neighbours =
        Neighbours { k, distance: Vec::with_capacity(n * k), index: Vec::with_capacity(n * k) };
    for row in &resolved {
        push_row(&mut neighbours, row);
    }
    Ok(neighbours)
}

fn push_row(neighbours: &mut Neighbours, row: &[(f64, u32)]) {
    for slot in 0..neighbours.k {
        let (distance, index) = row.get(slot).copied().unwrap_or((f64::INFINITY, u32::MAX));
        neighbours.distance.push(distance);
        neighbours.index.push(index);
    }
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

/// Screening thresholds of ball tests `d < r`: below `sure` a pair is inside, at or above
/// `unsure` outside, in between it is recomputed exactly. Without radii nothing is ever inside
/// (`-∞` thresholds).
#[derive(Debug, Clone)]
struct Balls {
    radius_sq: Vec<f64>,
    sure: Vec<f32>,
    unsure: Vec<f32>,
}

impl Balls {
    fn new(radii: Option<&[f64]>, norms: &[f32], other_max_norm: f32) -> Balls {
        let Some(radii) = radii else {
            return Balls {
                radius_sq: vec![f64::NEG_INFINITY; norms.len()],
                sure: vec![f32::NEG_INFINITY; norms.len()],
                unsure: vec![f32::NEG_INFINITY; norms.len()],
            };
        };
        let mut balls = Balls { radius_sq: Vec::new(), sure: Vec::new(), unsure: Vec::new() };
        for (radius, norm) in radii.iter().zip(norms) {
            let radius_sq = radius * radius;
            // The screening error of ‖a‖² + ‖b‖² − 2a·b in f32 is far below this.
            let tolerance = f64::from(SCREEN_TOLERANCE * (norm + other_max_norm)) + 1e-12;
            balls.radius_sq.push(radius_sq);
            balls.sure.push((radius_sq - tolerance) as f32);
            balls.unsure.push((radius_sq + tolerance) as f32);
        }
        balls
    }
}

/// One `a` row's exact nearest `(distance, index)` list and its ball count.
type ARow = (Vec<(f64, u32)>, u32);

/// State one worker keeps about the `b` side while it screens its share of `a` rows.
struct BSide {
    lists: Vec<Candidates>,
    /// `lists[j].worst()`, kept beside so the hot loop reads four bytes per pair.
    worst: Vec<f32>,
    hit: Vec<bool>,
}

/// One pass over all pairs of `a` and `b` computing nearest neighbours both ways and, when radii
/// are given, strict ball membership both ways (`d(a, b) < r`). A `k_a` or `k_b` outside
/// `1..=MAX_K` is refused.
pub fn cross(
    a: Rows<'_>,
    b: Rows<'_>,
    k_a: usize,
    k_b: usize,
    a_radius: Option<&[f64]>,
    b_radius: Option<&[f64]>,
) -> crate::Result<Cross> {
    check_k(k_a, &[])?;
    check_k(k_b, &[])?;
    let a_norms = a.squared_norms();
    let b_norms = b.squared_norms();
    let max_norm = |norms: &[f32]| norms.iter().copied().fold(0.0_f32, f32::max);
    let a_balls = Balls::new(a_radius, &a_norms, max_norm(&b_norms));
    let b_balls = Balls::new(b_radius, &b_norms, max_norm(&a_norms));
    let exact_inside =
        |i: usize, j: usize, radius_sq: f64| exact_squared(a.row(i), b.row(j)) < radius_sq;

    // Each worker takes a contiguous run of query blocks with one b-side state: as few states to
    // merge as there are workers (a state per block made the merge cost more than the
    // distances; two per worker still cost a third more than one, measured 10,000 x 64).
    let starts: Vec<usize> = (0..a.n_rows).step_by(QUERY_BLOCK).collect();
    let runs: Vec<&[usize]> =
        starts.chunks(starts.len().div_ceil(rayon::current_num_threads()).max(1)).collect();
    let new_side = || BSide {
        lists: vec![Candidates::new(k_b + MARGIN); b.n_rows],
        worst: vec![f32::INFINITY; b.n_rows],
        hit: vec![false; b.n_rows],
    };
    let partials: Vec<(Vec<ARow>, BSide)> = runs
        .par_iter()
        .map(|run| {
            run.iter().fold((Vec::new(), new_side()), |(mut a_rows, mut side), &start| {
                let range = start..(start + QUERY_BLOCK).min(a.n_rows);
                let mut lists: Vec<Candidates> =
                    range.clone().map(|_| Candidates::new(k_a + MARGIN)).collect();
                let mut counts = vec![0_u32; range.len()];
                let mut row = Vec::with_capacity(REFERENCE_BLOCK);
                screen(&a, &a_norms, &b, &b_norms, range.clone(), 0..b.n_rows, |tile| {
                    for (offset, list) in lists.iter_mut().enumerate() {
                        let i = tile.row_start + offset;
                        let (a_sure, a_unsure) = (a_balls.sure[i], a_balls.unsure[i]);
                        tile.fill_row(offset, &mut row);
                        let mut worst = list.worst();
                        for (chunk_idx, chunk) in row.chunks(CHUNK).enumerate() {
                            let j0 = tile.col_start + chunk_idx * CHUNK;
                            let (b_worst, b_unsure) = (
                                &side.worst[j0..j0 + chunk.len()],
                                &b_balls.unsure[j0..j0 + chunk.len()],
                            );
                            let interesting = chunk.iter().zip(b_worst).zip(b_unsure).fold(
                                false,
                                |any, ((&d2, &bw), &bu)| {
                                    any | (d2 < worst) | (d2 < bw) | (d2 < bu) | (d2 < a_unsure)
                                },
                            );
                            if !interesting {
                                continue;
                            }
                            for (col, &d2) in chunk.iter().enumerate() {
                                let j = j0 + col;
                                if d2 < worst {
                                    list.offer(d2, j as u32);
                                    worst = list.worst();
                                }
                                if d2 < side.worst[j] {
                                    side.lists[j].offer(d2, i as u32);
                                    side.worst[j] = side.lists[j].worst();
                                }
                                if d2 < b_balls.sure[j]
                                    || (d2 < b_balls.unsure[j]
                                        && exact_inside(i, j, b_balls.radius_sq[j]))
                                {
                                    counts[offset] += 1;
                                }
                                if !side.hit[j]
                                    && (d2 < a_sure
                                        || (d2 < a_unsure
                                            && exact_inside(i, j, a_balls.radius_sq[i])))
                                {
                                    side.hit[j] = true;
                                }
                            }
                        }
                    }
                });
                for (offset, (list, count)) in lists.into_iter().zip(counts).enumerate() {
                    a_rows.push((list.resolve(a.row(range.start + offset), &b, k_a), count));
                }
                (a_rows, side)
            })
        })
        .collect();

    let mut a_nearest = Neighbours {
        k: k_a,
        distance: Vec::with_capacity(a.n_rows * k_a),
        index: Vec::with_capacity(a.n_rows * k_a),
    };
    let mut a_in_b_balls = Vec::with_capacity(a.n_rows);
    let mut b_lists = vec![Candidates::new(k_b + MARGIN); b.n_rows];
    let mut b_in_some_a_ball = vec![false; b.n_rows];
    for (a_rows, side) in &partials {
        for (row, count) in a_rows {
            push_row(&mut a_nearest, row);
            a_in_b_balls.push(*count);
        }
        for (j, list) in side.lists.iter().enumerate() {
            b_lists[j].merge(list);
            b_in_some_a_ball[j] |= side.hit[j];
        }
    }
    let mut b_nearest = Neighbours {
        k: k_b,
        distance: Vec::with_capacity(b.n_rows * k_b),
        index: Vec::with_capacity(b.n_rows * k_b),
    };
    for (j, list) in b_lists.iter().enumerate() {
        push_row(&mut b_nearest, &list.resolve(b.row(j), &a, k_b));
    }
    Ok(Cross { a_nearest, b_nearest, a_in_b_balls, b_in_some_a_ball })
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
                let mut d: Vec<f64> = (0..r.n_rows)
                    .filter(|&j| !(same && i == j))
                    .map(|j| exact_squared(q.row(i), r.row(j)).sqrt())
                    .collect();
                d.sort_by(f64::total_cmp);
                d.truncate(k);
                d
            })
            .collect()
    }

    #[test]
    fn nearest_neighbours_match_brute_force() {
        // Sizes that straddle the block sizes, duplicates to make exact zeros.
        let dim = 7;
        let mut data = random(1500, dim, 1);
        let copy: Vec<f32> = data[..dim * 10].to_vec();
        data[dim * 20..dim * 30].copy_from_slice(&copy);
        let rows = Rows::new(&data, dim);
        let other = random(300, dim, 2);
        let others = Rows::new(&other, dim);
        for (q, r) in [(others, rows), (rows, others)] {
            let got = cross(q, r, 5, 1, None, None).unwrap().a_nearest;
            let want = brute_nearest(&q, &r, 5, false);
            for (i, want_row) in want.iter().enumerate() {
                assert_eq!(got.row(i), want_row.as_slice(), "row {i}");
            }
        }
        assert_eq!(
            nearest_within(rows, 1).unwrap().row(20),
            [0.0],
            "an exact copy is at distance 0"
        );
        let within = nearest_within(rows, 5).unwrap();
        let want = brute_nearest(&rows, &rows, 5, true);
        for (i, want_row) in want.iter().enumerate() {
            assert_eq!(within.row(i), want_row.as_slice(), "within, row {i}");
        }
    }

    /// Neighbour counts out of range never panic and are never changed: they are refused, here
    /// and by [`check_k`], with the same message; a row with fewer neighbours than asked reads
    /// as infinitely far.
    #[test]
    fn out_of_range_k_is_refused_here_and_by_check_k() {
        let data = random(12, 3, 5);
        let rows = Rows::new(&data, 3);
        for k in [1, 2, MAX_K] {
            let within = nearest_within(rows, k).unwrap();
            assert_eq!(within.k, k);
            assert_eq!(within.column(k - 1).len(), 12);
            let crossed = cross(rows, rows, k, 1, None, None).unwrap();
            assert_eq!((crossed.a_nearest.k, crossed.b_nearest.k), (k, 1));
        }
        for k in [0, MAX_K + 1, usize::MAX] {
            let expected = format!("k (neighbours) is {k}; expected 1 to 16");
            assert_eq!(nearest_within(rows, k).unwrap_err().to_string(), expected);
            for (k_a, k_b) in [(k, 1), (1, k)] {
                let err = cross(rows, rows, k_a, k_b, None, None).unwrap_err();
                assert_eq!(err.to_string(), expected);
            }
        }
        // 12 rows have 11 others: a 16th neighbour does not exist.
        let within = nearest_within(rows, MAX_K).unwrap();
        assert!(within.column(MAX_K - 1).iter().all(|d| d.is_infinite()));
        assert!(nearest_within(rows, 2).unwrap().column(5).iter().all(|d| d.is_infinite()));
        assert!(check_k(11, &[("real train", 12)]).is_ok());
        let message = |k, rows| check_k(k, &[("real train", rows)]).unwrap_err().to_string();
        assert_eq!(message(0, 12), "k (neighbours) is 0; expected 1 to 16");
        assert_eq!(message(17, 1000), "k (neighbours) is 17; expected 1 to 16");
        assert_eq!(
            message(12, 12),
            "k (neighbours) is 12 but the real train set has 12 rows; the k-NN figures need at least 13 rows"
        );
    }

    #[test]
    fn cross_matches_brute_force() {
        let dim = 5;
        let a_data = random(700, dim, 3);
        let b_data = random(1100, dim, 4);
        let (a, b) = (Rows::new(&a_data, dim), Rows::new(&b_data, dim));
        let a_radius: Vec<f64> = (0..a.n_rows).map(|i| 0.8 + (i % 7) as f64 * 0.1).collect();
        let b_radius: Vec<f64> = (0..b.n_rows).map(|j| 0.7 + (j % 5) as f64 * 0.1).collect();
        let got = cross(a, b, 2, 1, Some(&a_radius), Some(&b_radius)).unwrap();
        for i in 0..a.n_rows {
            let count = (0..b.n_rows)
                .filter(|&j| exact_squared(a.row(i), b.row(j)).sqrt() < b_radius[j])
                .count();
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
