//! Linear softmax head: `logits = x W^T + b`.
//!
//! Parameter layout (one flat `Vec<f32>`, allocated once at build): `W` as `[K, D]` row-major,
//! then `b` as `[K]`; `K * D + K` values in all.
//!
//! # Examples
//! ```
//! use edge_ssl::head::{Head, linear::LinearParams};
//! use rand::{SeedableRng, rngs::StdRng};
//!
//! let mut head = LinearParams::new(2, 3).check()?.build(&mut StdRng::seed_from_u64(1));
//! let mut logits = [0.0; 3];
//! head.forward_into(&[1.0, -1.0], &mut logits)?;
//! assert_eq!(head.n_params(), 2 * 3 + 3);
//! # Ok::<(), edge_ssl::Error>(())
//! ```

use super::{Checked, Grads, Head, ParamsError, axpy, check_len, dot, init_uniform, rows_of};
use crate::error::{Result, check_finite};

/// Parameters of a [`Linear`] head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinearParams {
    /// Embedding dimension `D` (>= 1).
    pub input_dim: usize,
    /// Number of classes `K` (>= 2).
    pub n_classes: usize,
}

impl LinearParams {
    /// Parameters for a `D -> K` head.
    pub fn new(input_dim: usize, n_classes: usize) -> Self {
        LinearParams { input_dim, n_classes }
    }

    /// Validates the parameters.
    ///
    /// # Errors
    /// [`ParamsError::InputDim`] if `input_dim == 0`; [`ParamsError::NumClasses`] if
    /// `n_classes < 2`.
    pub fn check(self) -> Result<Checked<Self>, ParamsError> {
        if self.input_dim == 0 {
            return Err(ParamsError::InputDim { value: self.input_dim });
        }
        if self.n_classes < 2 {
            return Err(ParamsError::NumClasses { value: self.n_classes });
        }
        Ok(Checked(self))
    }
}

impl Checked<LinearParams> {
    /// Allocates the head and initialises it like PyTorch's `nn.Linear` (uniform in
    /// `±1/sqrt(D)` for weights and biases).
    pub fn build<R: rand::Rng + ?Sized>(&self, rng: &mut R) -> Linear {
        let (d, k) = (self.input_dim, self.n_classes);
        let mut params = vec![0.0; k * d + k];
        init_uniform(rng, d, &mut params);
        Linear { d, k, params }
    }
}

/// A linear softmax head (see the module docs for the parameter layout).
#[derive(Debug, Clone, PartialEq)]
pub struct Linear {
    d: usize,
    k: usize,
    params: Vec<f32>,
}

impl Linear {
    /// The weights `W`, `[K, D]` row-major.
    pub fn weights(&self) -> &[f32] {
        &self.params[..self.k * self.d]
    }

    /// The biases `b`, `[K]`.
    pub fn bias(&self) -> &[f32] {
        &self.params[self.k * self.d..]
    }
}

impl Head for Linear {
    fn input_dim(&self) -> usize {
        self.d
    }

    fn n_classes(&self) -> usize {
        self.k
    }

    fn params(&self) -> &[f32] {
        &self.params
    }

    fn params_mut(&mut self) -> &mut [f32] {
        &mut self.params
    }

    fn forward_into(&mut self, x: &[f32], logits: &mut [f32]) -> Result<()> {
        const OP: &str = "Linear::forward_into";
        let n = rows_of(OP, "x", x.len(), self.d)?;
        check_len(OP, "logits [n, K]", n * self.k, logits.len())?;
        check_finite(OP, x)?;
        let (w, b) = self.params.split_at(self.k * self.d);
        for (xi, li) in x.chunks_exact(self.d).zip(logits.chunks_exact_mut(self.k)) {
            for ((l, wk), bk) in li.iter_mut().zip(w.chunks_exact(self.d)).zip(b) {
                *l = dot(wk, xi) + bk;
            }
        }
        Ok(())
    }

    fn backward_into(&mut self, x: &[f32], dlogits: &[f32], grads: &mut Grads) -> Result<()> {
        const OP: &str = "Linear::backward_into";
        let n = rows_of(OP, "x", x.len(), self.d)?;
        check_len(OP, "dlogits [n, K]", n * self.k, dlogits.len())?;
        check_len(OP, "grads", self.params.len(), grads.len())?;
        check_finite(OP, dlogits)?;
        let (gw, gb) = grads.as_mut_slice().split_at_mut(self.k * self.d);
        for (xi, gi) in x.chunks_exact(self.d).zip(dlogits.chunks_exact(self.k)) {
            for ((g, gwk), gbk) in gi.iter().zip(gw.chunks_exact_mut(self.d)).zip(gb.iter_mut()) {
                if *g != 0.0 {
                    axpy(*g, xi, gwk);
                    *gbk += g;
                }
            }
        }
        Ok(())
    }

    fn input_grad_into(&mut self, dlogits: &[f32], dx: &mut [f32]) -> Result<()> {
        const OP: &str = "Linear::input_grad_into";
        let n = rows_of(OP, "dlogits", dlogits.len(), self.k)?;
        check_len(OP, "dx [n, D]", n * self.d, dx.len())?;
        check_finite(OP, dlogits)?;
        let w = &self.params[..self.k * self.d];
        for (gi, dxi) in dlogits.chunks_exact(self.k).zip(dx.chunks_exact_mut(self.d)) {
            dxi.fill(0.0);
            for (&g, wk) in gi.iter().zip(w.chunks_exact(self.d)) {
                if g != 0.0 {
                    axpy(g, wk, dxi);
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;
    use rand::{SeedableRng, rngs::StdRng};

    #[test]
    fn input_dim_must_be_positive() {
        assert!(matches!(LinearParams::new(0, 3).check(), Err(ParamsError::InputDim { .. })));
    }

    #[test]
    fn n_classes_must_be_at_least_two() {
        assert!(matches!(LinearParams::new(4, 1).check(), Err(ParamsError::NumClasses { .. })));
    }

    #[test]
    fn forward_is_hand_computed() {
        let mut h = LinearParams::new(2, 2).check().unwrap().build(&mut StdRng::seed_from_u64(0));
        h.load_params(&[1.0, 2.0, -1.0, 0.5, 0.1, -0.2]).unwrap();
        let mut out = [0.0; 4];
        h.forward_into(&[1.0, 1.0, 2.0, -1.0], &mut out).unwrap();
        // row 0: 1+2+0.1, -1+0.5-0.2 ; row 1: 2-2+0.1, -2-0.5-0.2
        let want = [3.1, -0.7, 0.1, -2.7];
        for (a, b) in out.iter().zip(want) {
            assert!((a - b).abs() < 1e-6, "{out:?}");
        }
    }

    #[test]
    fn input_grad_matches_finite_differences() {
        let mut h = LinearParams::new(4, 3).check().unwrap().build(&mut StdRng::seed_from_u64(7));
        crate::head::assert_input_grad_matches_finite_differences(&mut h, 11);
    }

    #[test]
    fn backward_matches_finite_differences() {
        let mut rng = StdRng::seed_from_u64(3);
        let (d, k, n) = (5, 3, 4);
        let mut h = LinearParams::new(d, k).check().unwrap().build(&mut rng);
        let x: Vec<f32> = (0..n * d).map(|i| ((i * 7) % 11) as f32 / 5.0 - 1.0).collect();
        let c: Vec<f32> = (0..n * k).map(|i| ((i * 3) % 5) as f32 - 2.0).collect();
        // loss = sum(c * logits): d loss / d logits = c.
        let mut g = h.grads();
        let mut logits = vec![0.0; n * k];
        h.forward_into(&x, &mut logits).unwrap();
        h.backward_into(&x, &c, &mut g).unwrap();
        for j in 0..h.n_params() {
            let p0 = h.params()[j];
            let mut f = |v: f32, h: &mut Linear| {
                h.params_mut()[j] = v;
                h.forward_into(&x, &mut logits).unwrap();
                logits.iter().zip(&c).map(|(a, b)| (a * b) as f64).sum::<f64>()
            };
            let e = 1e-2;
            let fd = (f(p0 + e, &mut h) - f(p0 - e, &mut h)) / (2.0 * e as f64);
            h.params_mut()[j] = p0;
            assert!((fd - g.as_slice()[j] as f64).abs() < 1e-3 * (1.0 + fd.abs()), "param {j}");
        }
    }

    #[test]
    fn shapes_and_nan_are_errors() {
        let mut h = LinearParams::new(3, 2).check().unwrap().build(&mut StdRng::seed_from_u64(0));
        let mut out = [0.0; 2];
        assert!(matches!(h.forward_into(&[1.0; 4], &mut out), Err(Error::ShapeMismatch { .. })));
        assert!(matches!(
            h.forward_into(&[1.0; 3], &mut [0.0; 3]),
            Err(Error::ShapeMismatch { .. })
        ));
        assert!(matches!(
            h.forward_into(&[1.0, f32::NAN, 0.0], &mut out),
            Err(Error::NonFinite { index: 1, .. })
        ));
        assert!(matches!(h.load_params(&[0.0; 3]), Err(Error::ShapeMismatch { .. })));
    }

    #[test]
    fn params_round_trip() {
        let mut rng = StdRng::seed_from_u64(9);
        let a = LinearParams::new(4, 3).check().unwrap().build(&mut rng);
        let mut b = LinearParams::new(4, 3).check().unwrap().build(&mut rng);
        assert_ne!(a, b);
        b.load_params(a.params()).unwrap();
        assert_eq!(a, b);
    }
}
