//! Small dense linear algebra in f64 for the gate: Cholesky, triangular solves, symmetric
//! eigen-decomposition (cyclic Jacobi) and top-k eigenvectors by subspace iteration.
//! Matrices are row-major `Vec<f64>` / slices.

use crate::error::{Error, Result};

/// In-place lower Cholesky factor of the symmetric `n x n` matrix `a` (upper triangle zeroed).
///
/// # Errors
/// [`Error::NotPositiveDefinite`] if a pivot is not positive and finite.
pub fn cholesky(a: &mut [f64], n: usize, op: &'static str) -> Result<()> {
    for j in 0..n {
        let mut d = a[j * n + j];
        for k in 0..j {
            d -= a[j * n + k] * a[j * n + k];
        }
        if !(d > 0.0 && d.is_finite()) {
            return Err(Error::NotPositiveDefinite { op, row: j, pivot: d });
        }
        let d = d.sqrt();
        a[j * n + j] = d;
        for i in j + 1..n {
            let mut s = a[i * n + j];
            let (ri, rj) = (i * n, j * n);
            for k in 0..j {
                s -= a[ri + k] * a[rj + k];
            }
            a[i * n + j] = s / d;
        }
        for k in j + 1..n {
            a[j * n + k] = 0.0;
        }
    }
    Ok(())
}

/// Solves `L y = b` in place (`L` lower triangular `n x n`).
pub fn forward_solve(l: &[f64], n: usize, b: &mut [f64]) {
    for i in 0..n {
        let row = &l[i * n..i * n + i];
        let s: f64 = row.iter().zip(&b[..i]).map(|(a, y)| a * y).sum();
        b[i] = (b[i] - s) / l[i * n + i];
    }
}

/// Eigen-decomposition of the symmetric `n x n` matrix `a` by cyclic Jacobi rotations.
/// Returns `(values, vectors)` sorted by decreasing value; `vectors` is row-major `n x n` with
/// eigenvector `i` in ROW `i`.
pub fn sym_eigen(a: &[f64], n: usize) -> (Vec<f64>, Vec<f64>) {
    let mut w = JacobiWork::new(n);
    let (mut vals, mut vecs) = (vec![0.0; n], vec![0.0; n * n]);
    sym_eigen_into(a, &mut w, &mut vals, &mut vecs);
    (vals, vecs)
}

/// Buffers of [`sym_eigen_into`] for an `n x n` matrix, allocated once.
#[derive(Debug, Clone)]
pub struct JacobiWork {
    n: usize,
    a: Vec<f64>,
    v: Vec<f64>,
    idx: Vec<usize>,
}

impl JacobiWork {
    /// Buffers for `n x n` matrices.
    pub fn new(n: usize) -> Self {
        JacobiWork { n, a: vec![0.0; n * n], v: vec![0.0; n * n], idx: vec![0; n] }
    }
}

/// [`sym_eigen`] into caller buffers (`vals: [n]`, `vecs: [n, n]`), without allocating.
///
/// # Panics
/// If `work` was made for another `n` or a buffer has the wrong length (a caller bug).
pub fn sym_eigen_into(a_in: &[f64], work: &mut JacobiWork, vals: &mut [f64], vecs: &mut [f64]) {
    let n = work.n;
    assert!(a_in.len() == n * n && vals.len() == n && vecs.len() == n * n, "sym_eigen_into");
    // `v` is kept transposed (eigenvector `i` in row `i`), so that a rotation updates two
    // contiguous rows of it, like the row pass on `a`; only `a`'s column pass is strided.
    // Every element gets the same arithmetic as in the textbook order.
    let (a, v) = (&mut work.a, &mut work.v);
    a.copy_from_slice(a_in);
    v.fill(0.0);
    for i in 0..n {
        v[i * n + i] = 1.0;
    }
    for _sweep in 0..60 {
        let off: f64 = (0..n)
            .flat_map(|i| (0..n).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| a[i * n + j] * a[i * n + j])
            .sum();
        let diag: f64 = (0..n).map(|i| a[i * n + i] * a[i * n + i]).sum();
        if off <= 1e-24 * diag.max(f64::MIN_POSITIVE) {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                let apq = a[p * n + q];
                if apq.abs() < 1e-300 {
                    continue;
                }
                let theta = (a[q * n + q] - a[p * n + p]) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..n {
                    let (akp, akq) = (a[k * n + p], a[k * n + q]);
                    a[k * n + p] = c * akp - s * akq;
                    a[k * n + q] = s * akp + c * akq;
                }
                rotate_rows(a, n, p, q, c, s);
                rotate_rows(v, n, p, q, c, s);
            }
        }
    }
    let idx = &mut work.idx;
    idx.iter_mut().enumerate().for_each(|(i, x)| *x = i);
    idx.sort_unstable_by(|&i, &j| a[j * n + j].total_cmp(&a[i * n + i]).then(i.cmp(&j)));
    for (r, &i) in idx.iter().enumerate() {
        vals[r] = a[i * n + i];
        vecs[r * n..(r + 1) * n].copy_from_slice(&v[i * n..(i + 1) * n]);
    }
}

/// Rows `p < q` of the row-major `[_, n]` matrix `m` rotated: `(c r_p - s r_q, s r_p + c r_q)`.
fn rotate_rows(m: &mut [f64], n: usize, p: usize, q: usize, c: f64, s: f64) {
    let (head, tail) = m.split_at_mut(q * n);
    let (rp, rq) = (&mut head[p * n..(p + 1) * n], &mut tail[..n]);
    for (x, y) in rp.iter_mut().zip(rq.iter_mut()) {
        let (xp, xq) = (*x, *y);
        *x = c * xp - s * xq;
        *y = s * xp + c * xq;
    }
}

/// Rows of `b` at a time in [`dots_into`].
const LANES: usize = 8;

/// `out[i * sa + j * sb] = a_i . b_j` for every row `a_i` of `a` (`[_, n]`) and `b_j` of `b`
/// (`[_, n]`). Each product is summed in order from `-0.0`, as `Iterator::sum` does, so every
/// value is bit-identical to the one-pair-at-a-time dot; [`LANES`] rows of `b` go at once
/// (interleaved into `lanes`, `[LANES * n]`), so that each row of `a` is read once per
/// [`LANES`] rows of `b` and the sums run as independent chains.
fn dots_into(
    a: &[f64],
    b: &[f64],
    n: usize,
    lanes: &mut [f64],
    out: &mut [f64],
    sa: usize,
    sb: usize,
) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx") {
        // SAFETY: the CPU supports AVX (checked just above).
        unsafe { dots_into_avx(a, b, n, lanes, out, sa, sb) };
        return;
    }
    dots_into_any(a, b, n, lanes, out, sa, sb);
}

/// [`dots_into`] compiled for AVX (the same operations lane by lane: no fused multiply-add).
///
/// # Safety
/// The CPU must support AVX.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx")]
unsafe fn dots_into_avx(
    a: &[f64],
    b: &[f64],
    n: usize,
    lanes: &mut [f64],
    out: &mut [f64],
    sa: usize,
    sb: usize,
) {
    dots_into_any(a, b, n, lanes, out, sa, sb);
}

/// The portable body of [`dots_into`].
#[inline(always)]
fn dots_into_any(
    a: &[f64],
    b: &[f64],
    n: usize,
    lanes: &mut [f64],
    out: &mut [f64],
    sa: usize,
    sb: usize,
) {
    for (jb, block) in b.chunks(LANES * n).enumerate() {
        let rows = block.len() / n;
        lanes.fill(0.0);
        for (l, row) in block.chunks_exact(n).enumerate() {
            for (t, &x) in row.iter().enumerate() {
                lanes[t * LANES + l] = x;
            }
        }
        for (i, ai) in a.chunks_exact(n).enumerate() {
            let mut acc = [-0.0f64; LANES];
            for (&x, y) in ai.iter().zip(lanes.chunks_exact(LANES)) {
                for l in 0..LANES {
                    acc[l] += x * y[l];
                }
            }
            for (l, &v) in acc[..rows].iter().enumerate() {
                out[i * sa + (jb * LANES + l) * sb] = v;
            }
        }
    }
}

/// Modified Gram-Schmidt on the `m` rows (each of length `n`) of `q`; a row that becomes
/// (numerically) zero is replaced by a deterministic unit vector orthogonal to the others.
fn orthonormalize_rows(q: &mut [f64], m: usize, n: usize) {
    for i in 0..m {
        for attempt in 0..3 {
            for j in 0..i {
                let (head, tail) = q.split_at_mut(i * n);
                let qj = &head[j * n..(j + 1) * n];
                let qi = &mut tail[..n];
                let d: f64 = qi.iter().zip(qj).map(|(a, b)| a * b).sum();
                qi.iter_mut().zip(qj).for_each(|(a, b)| *a -= d * b);
            }
            let row = &mut q[i * n..(i + 1) * n];
            let norm = row.iter().map(|v| v * v).sum::<f64>().sqrt();
            if norm > 1e-12 {
                row.iter_mut().for_each(|v| *v /= norm);
                break;
            }
            for (k, v) in row.iter_mut().enumerate() {
                *v = pseudo_random((i * 7919 + k + attempt * 104_729) as u64);
            }
        }
    }
}

/// A deterministic value in `[-1, 1)` (splitmix64), for reproducible starting subspaces.
fn pseudo_random(i: u64) -> f64 {
    let mut z = i.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 52) as f64 - 1.0
}

/// The top `k` eigenvectors (rows of the returned `k x n` matrix) and eigenvalues of the
/// symmetric positive semi-definite `n x n` matrix `c`, by subspace iteration with `k + 8`
/// vectors, `iters` iterations and a final Rayleigh-Ritz step. Deterministic.
pub fn top_eigen(c: &[f64], n: usize, k: usize, iters: usize) -> (Vec<f64>, Vec<f64>) {
    let mut w = SubspaceWork::new(n, k);
    let (mut vals, mut vecs) = (vec![0.0; k], vec![0.0; k * n]);
    top_eigen_into(c, iters, &mut w, &mut vals, &mut vecs);
    (vals, vecs)
}

/// Buffers of [`top_eigen_into`] (the top `k` of `n x n`), allocated once.
#[derive(Debug, Clone)]
pub struct SubspaceWork {
    n: usize,
    k: usize,
    m: usize,
    q: Vec<f64>,
    z: Vec<f64>,
    t: Vec<f64>,
    t_vals: Vec<f64>,
    t_vecs: Vec<f64>,
    lanes: Vec<f64>,
    jacobi: JacobiWork,
}

impl SubspaceWork {
    /// Buffers for the top `k` eigenpairs of `n x n` matrices (`k <= n`).
    pub fn new(n: usize, k: usize) -> Self {
        let m = (k + 8).min(n);
        SubspaceWork {
            n,
            k,
            m,
            q: vec![0.0; m * n],
            z: vec![0.0; m * n],
            t: vec![0.0; m * m],
            t_vals: vec![0.0; m],
            t_vecs: vec![0.0; m * m],
            lanes: vec![0.0; LANES * n],
            jacobi: JacobiWork::new(m),
        }
    }
}

/// [`top_eigen`] into caller buffers (`vals: [k]`, `vecs: [k, n]`), without allocating.
///
/// # Panics
/// If a buffer has the wrong length for `work` (a caller bug).
pub fn top_eigen_into(
    c: &[f64],
    iters: usize,
    work: &mut SubspaceWork,
    vals: &mut [f64],
    vecs: &mut [f64],
) {
    let SubspaceWork { n, k, m, q, z, t, t_vals, t_vecs, lanes, jacobi } = work;
    let (n, k, m) = (*n, *k, *m);
    assert!(c.len() == n * n && vals.len() == k && vecs.len() == k * n, "top_eigen_into");
    q.iter_mut().enumerate().for_each(|(i, v)| *v = pseudo_random(i as u64));
    orthonormalize_rows(q, m, n);
    // z_i = C q_i (C symmetric, so rows of C dot q_i)
    for _ in 0..iters {
        dots_into(c, q, n, lanes, z, 1, n);
        std::mem::swap(q, z);
        orthonormalize_rows(q, m, n);
    }
    // Rayleigh-Ritz: T = Q C Q^T (m x m)
    dots_into(c, q, n, lanes, z, 1, n);
    dots_into(q, z, n, lanes, t, m, 1);
    for i in 0..m {
        for j in i + 1..m {
            let s = 0.5 * (t[i * m + j] + t[j * m + i]);
            t[i * m + j] = s;
            t[j * m + i] = s;
        }
    }
    sym_eigen_into(t, jacobi, t_vals, t_vecs);
    vecs.fill(0.0);
    for r in 0..k {
        for j in 0..m {
            let w = t_vecs[r * m + j];
            vecs[r * n..(r + 1) * n].iter_mut().zip(&q[j * n..(j + 1) * n]).for_each(|(o, b)| {
                *o += w * b;
            });
        }
    }
    vals.copy_from_slice(&t_vals[..k]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cholesky_reconstructs() {
        let a = [4.0, 2.0, 0.4, 2.0, 5.0, 1.0, 0.4, 1.0, 3.0];
        let mut l = a;
        cholesky(&mut l, 3, "t").unwrap();
        for i in 0..3 {
            for j in 0..3 {
                let s: f64 = (0..3).map(|k| l[i * 3 + k] * l[j * 3 + k]).sum();
                assert!((s - a[i * 3 + j]).abs() < 1e-12);
            }
        }
        let mut b = [1.0, 2.0, 3.0];
        forward_solve(&l, 3, &mut b);
        let y0 = 1.0 / 2.0;
        assert!((b[0] - y0).abs() < 1e-12);
    }

    #[test]
    fn cholesky_rejects_indefinite() {
        let mut a = [1.0, 2.0, 2.0, 1.0];
        assert!(matches!(cholesky(&mut a, 2, "t"), Err(Error::NotPositiveDefinite { row: 1, .. })));
    }

    #[test]
    fn dots_into_gives_the_bits_of_one_product_at_a_time() {
        // 11 rows of b: a full block of LANES and a short one
        let (n, ma, mb) = (13, 5, 11);
        let a: Vec<f64> = (0..ma * n).map(|i| pseudo_random(i as u64)).collect();
        let b: Vec<f64> = (0..mb * n).map(|i| pseudo_random(1000 + i as u64)).collect();
        let mut lanes = vec![0.0; LANES * n];
        let (mut by_a, mut by_b) = (vec![0.0; ma * mb], vec![0.0; ma * mb]);
        dots_into(&a, &b, n, &mut lanes, &mut by_a, mb, 1);
        dots_into(&a, &b, n, &mut lanes, &mut by_b, 1, ma);
        for i in 0..ma {
            for j in 0..mb {
                let one: f64 =
                    a[i * n..][..n].iter().zip(&b[j * n..][..n]).map(|(x, y)| x * y).sum();
                assert_eq!(by_a[i * mb + j].to_bits(), one.to_bits(), "{i} {j}");
                assert_eq!(by_b[j * ma + i].to_bits(), one.to_bits(), "{i} {j}");
            }
        }
    }

    #[test]
    fn jacobi_gives_the_bits_of_the_textbook_rotations() {
        // the textbook order: columns of `a`, rows of `a`, columns of `v`
        let n = 23;
        let mut a = vec![0.0; n * n];
        for i in 0..n {
            for j in 0..=i {
                let x = pseudo_random((i * n + j) as u64);
                (a[i * n + j], a[j * n + i]) = (x, x);
            }
        }
        let (vals, vecs) = sym_eigen(&a, n);
        let (mut r, mut v) = (a.clone(), vec![0.0; n * n]);
        (0..n).for_each(|i| v[i * n + i] = 1.0);
        for _ in 0..60 {
            let off: f64 = (0..n)
                .flat_map(|i| (0..n).filter(move |&j| j != i).map(move |j| (i, j)))
                .map(|(i, j)| r[i * n + j] * r[i * n + j])
                .sum();
            let diag: f64 = (0..n).map(|i| r[i * n + i] * r[i * n + i]).sum();
            if off <= 1e-24 * diag.max(f64::MIN_POSITIVE) {
                break;
            }
            for p in 0..n {
                for q in p + 1..n {
                    let apq = r[p * n + q];
                    if apq.abs() < 1e-300 {
                        continue;
                    }
                    let theta = (r[q * n + q] - r[p * n + p]) / (2.0 * apq);
                    let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                    let t = if theta == 0.0 { 1.0 } else { t };
                    let c = 1.0 / (t * t + 1.0).sqrt();
                    let s = t * c;
                    for k in 0..n {
                        let (x, y) = (r[k * n + p], r[k * n + q]);
                        (r[k * n + p], r[k * n + q]) = (c * x - s * y, s * x + c * y);
                    }
                    for k in 0..n {
                        let (x, y) = (r[p * n + k], r[q * n + k]);
                        (r[p * n + k], r[q * n + k]) = (c * x - s * y, s * x + c * y);
                    }
                    for k in 0..n {
                        let (x, y) = (v[k * n + p], v[k * n + q]);
                        (v[k * n + p], v[k * n + q]) = (c * x - s * y, s * x + c * y);
                    }
                }
            }
        }
        let mut idx: Vec<usize> = (0..n).collect();
        idx.sort_unstable_by(|&i, &j| r[j * n + j].total_cmp(&r[i * n + i]).then(i.cmp(&j)));
        for (row, &i) in idx.iter().enumerate() {
            assert_eq!(vals[row].to_bits(), r[i * n + i].to_bits(), "value {row}");
            for k in 0..n {
                assert_eq!(vecs[row * n + k].to_bits(), v[k * n + i].to_bits(), "vector {row}");
            }
        }
    }

    #[test]
    fn eigen_of_diagonal_and_rotated() {
        // A = R diag(5, 2, 1) R^T with a rotation in the (0, 1) plane
        let (c, s) = (0.6f64, 0.8f64);
        let r = [c, -s, 0.0, s, c, 0.0, 0.0, 0.0, 1.0];
        let d = [5.0, 2.0, 1.0];
        let mut a = [0.0; 9];
        for i in 0..3 {
            for j in 0..3 {
                a[i * 3 + j] = (0..3).map(|k| r[i * 3 + k] * d[k] * r[j * 3 + k]).sum();
            }
        }
        let (vals, vecs) = sym_eigen(&a, 3);
        assert!((vals[0] - 5.0).abs() < 1e-10 && (vals[2] - 1.0).abs() < 1e-10);
        assert!((vecs[0].abs() - c).abs() < 1e-8 && (vecs[1].abs() - s).abs() < 1e-8);
        let (tv, tvec) = top_eigen(&a, 3, 1, 30);
        assert!((tv[0] - 5.0).abs() < 1e-8);
        assert!((tvec[0].abs() - c).abs() < 1e-6);
    }
}
