//! One-hidden-layer MLP head: `h = relu(x W1^T + b1)`, `logits = h W2^T + b2`.
//!
//! Parameter layout (one flat `Vec<f32>`, allocated once at build): `W1 [H, D]`, `b1 [H]`,
//! `W2 [K, H]`, `b2 [K]`, each row-major, in that order.
//!
//! The head keeps its hidden activations (and the hidden gradient of the backward pass) in a
//! workspace of `max_batch * H` values each, allocated at build: a batch larger than
//! `max_batch` is [`Error::CapacityExceeded`], and `backward_into` uses the activations of the
//! last `forward_into`, so call them in pairs on the same `x`.
//!
//! # Examples
//! ```
//! use edge_ssl::head::{Head, mlp::MlpParams};
//! use rand::{SeedableRng, rngs::StdRng};
//!
//! let mut head = MlpParams::new(8, 16, 3, 32).check()?.build(&mut StdRng::seed_from_u64(1));
//! let mut logits = [0.0; 3];
//! head.forward_into(&[0.1; 8], &mut logits)?;
//! assert!(head.forward_into(&[0.1; 8 * 33], &mut [0.0; 3 * 33]).is_err()); // > max_batch
//! # Ok::<(), edge_ssl::Error>(())
//! ```

use super::{Checked, Grads, Head, ParamsError, axpy, check_len, dot, init_uniform, rows_of};
use crate::error::{Error, Result, check_finite};

/// Parameters of an [`Mlp`] head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MlpParams {
    /// Embedding dimension `D` (>= 1).
    pub input_dim: usize,
    /// Hidden width `H` (>= 1).
    pub hidden_dim: usize,
    /// Number of classes `K` (>= 2).
    pub n_classes: usize,
    /// Largest batch `forward_into` accepts; sizes the activation workspace (>= 1).
    pub max_batch: usize,
}

impl MlpParams {
    /// Parameters for a `D -> H -> K` head taking batches of at most `max_batch`.
    pub fn new(input_dim: usize, hidden_dim: usize, n_classes: usize, max_batch: usize) -> Self {
        MlpParams { input_dim, hidden_dim, n_classes, max_batch }
    }

    /// Validates the parameters.
    ///
    /// # Errors
    /// [`ParamsError::InputDim`], [`ParamsError::HiddenDim`], [`ParamsError::MaxBatch`] for a
    /// zero; [`ParamsError::NumClasses`] if `n_classes < 2`.
    pub fn check(self) -> Result<Checked<Self>, ParamsError> {
        if self.input_dim == 0 {
            return Err(ParamsError::InputDim { value: self.input_dim });
        }
        if self.hidden_dim == 0 {
            return Err(ParamsError::HiddenDim { value: self.hidden_dim });
        }
        if self.n_classes < 2 {
            return Err(ParamsError::NumClasses { value: self.n_classes });
        }
        if self.max_batch == 0 {
            return Err(ParamsError::MaxBatch { value: self.max_batch });
        }
        Ok(Checked(self))
    }
}

impl Checked<MlpParams> {
    /// Allocates the head and its workspace; PyTorch `nn.Linear` initialisation per layer.
    pub fn build<R: rand::Rng + ?Sized>(&self, rng: &mut R) -> Mlp {
        let (d, h, k) = (self.input_dim, self.hidden_dim, self.n_classes);
        let mut params = vec![0.0; h * d + h + k * h + k];
        let (l1, l2) = params.split_at_mut(h * d + h);
        init_uniform(rng, d, l1);
        init_uniform(rng, h, l2);
        Mlp {
            d,
            h,
            k,
            max_batch: self.max_batch,
            params,
            hidden: vec![0.0; self.max_batch * h],
            dhidden: vec![0.0; self.max_batch * h],
            last_n: None,
        }
    }
}

/// A one-hidden-layer ReLU MLP head (see the module docs for layout and workspace).
#[derive(Debug, Clone, PartialEq)]
pub struct Mlp {
    d: usize,
    h: usize,
    k: usize,
    max_batch: usize,
    params: Vec<f32>,
    hidden: Vec<f32>,
    dhidden: Vec<f32>,
    /// Batch size of the last forward pass, whose activations sit in `hidden`.
    last_n: Option<usize>,
}

impl Mlp {
    /// Hidden width `H`.
    pub fn hidden_dim(&self) -> usize {
        self.h
    }

    /// Largest batch accepted.
    pub fn max_batch(&self) -> usize {
        self.max_batch
    }

    /// Hidden activations `[n, H]` of the last forward pass (empty before the first).
    pub fn hidden(&self) -> &[f32] {
        &self.hidden[..self.last_n.unwrap_or(0) * self.h]
    }

    /// `n` must be the batch of the last `forward_into` (whose activations are kept).
    fn check_last_batch(&self, op: &'static str, n: usize) -> Result<()> {
        if self.last_n != Some(n) {
            return Err(Error::ShapeMismatch {
                op,
                expected: format!("the batch of the last forward_into ({:?} rows)", self.last_n),
                got: format!("{n} rows"),
            });
        }
        Ok(())
    }

    fn batch(&self, op: &'static str, x: &[f32]) -> Result<usize> {
        let n = rows_of(op, "x", x.len(), self.d)?;
        if n > self.max_batch {
            return Err(Error::CapacityExceeded { op, capacity: self.max_batch, got: n });
        }
        Ok(n)
    }
}

impl Head for Mlp {
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
        self.last_n = None;
        &mut self.params
    }

    fn forward_into(&mut self, x: &[f32], logits: &mut [f32]) -> Result<()> {
        const OP: &str = "Mlp::forward_into";
        let n = self.batch(OP, x)?;
        check_len(OP, "logits [n, K]", n * self.k, logits.len())?;
        check_finite(OP, x)?;
        let (d, h, k) = (self.d, self.h, self.k);
        let (w1, rest) = self.params.split_at(h * d);
        let (b1, rest) = rest.split_at(h);
        let (w2, b2) = rest.split_at(k * h);
        let hidden = &mut self.hidden[..n * h];
        for (xi, hi) in x.chunks_exact(d).zip(hidden.chunks_exact_mut(h)) {
            for ((a, w), b) in hi.iter_mut().zip(w1.chunks_exact(d)).zip(b1) {
                *a = (dot(w, xi) + b).max(0.0);
            }
        }
        for (hi, li) in hidden.chunks_exact(h).zip(logits.chunks_exact_mut(k)) {
            for ((l, w), b) in li.iter_mut().zip(w2.chunks_exact(h)).zip(b2) {
                *l = dot(w, hi) + b;
            }
        }
        self.last_n = Some(n);
        Ok(())
    }

    fn backward_into(&mut self, x: &[f32], dlogits: &[f32], grads: &mut Grads) -> Result<()> {
        const OP: &str = "Mlp::backward_into";
        let n = self.batch(OP, x)?;
        check_len(OP, "dlogits [n, K]", n * self.k, dlogits.len())?;
        check_len(OP, "grads", self.params.len(), grads.len())?;
        self.check_last_batch(OP, n)?;
        check_finite(OP, dlogits)?;
        let (d, h, k) = (self.d, self.h, self.k);
        let w2 = &self.params[h * d + h..h * d + h + k * h];
        let hidden = &self.hidden[..n * h];
        let dhidden = &mut self.dhidden[..n * h];
        let (g1, g2) = grads.as_mut_slice().split_at_mut(h * d + h);
        let (gw1, gb1) = g1.split_at_mut(h * d);
        let (gw2, gb2) = g2.split_at_mut(k * h);
        dhidden.fill(0.0);
        for ((hi, gi), dhi) in
            hidden.chunks_exact(h).zip(dlogits.chunks_exact(k)).zip(dhidden.chunks_exact_mut(h))
        {
            for (((g, gwk), gbk), wk) in
                gi.iter().zip(gw2.chunks_exact_mut(h)).zip(gb2.iter_mut()).zip(w2.chunks_exact(h))
            {
                if *g != 0.0 {
                    axpy(*g, hi, gwk);
                    *gbk += g;
                    axpy(*g, wk, dhi);
                }
            }
            // ReLU: no gradient where the unit was off.
            for (dh, a) in dhi.iter_mut().zip(hi) {
                if *a <= 0.0 {
                    *dh = 0.0;
                }
            }
        }
        for (xi, dhi) in x.chunks_exact(d).zip(dhidden.chunks_exact(h)) {
            for ((g, gwj), gbj) in dhi.iter().zip(gw1.chunks_exact_mut(d)).zip(gb1.iter_mut()) {
                if *g != 0.0 {
                    axpy(*g, xi, gwj);
                    *gbj += g;
                }
            }
        }
        Ok(())
    }

    fn input_grad_into(&mut self, dlogits: &[f32], dx: &mut [f32]) -> Result<()> {
        const OP: &str = "Mlp::input_grad_into";
        let n = rows_of(OP, "dlogits", dlogits.len(), self.k)?;
        check_len(OP, "dx [n, D]", n * self.d, dx.len())?;
        self.check_last_batch(OP, n)?;
        check_finite(OP, dlogits)?;
        let (d, h, k) = (self.d, self.h, self.k);
        let w1 = &self.params[..h * d];
        let w2 = &self.params[h * d + h..h * d + h + k * h];
        let dhidden = &mut self.dhidden[..n * h];
        for (((gi, hi), dhi), dxi) in dlogits
            .chunks_exact(k)
            .zip(self.hidden.chunks_exact(h))
            .zip(dhidden.chunks_exact_mut(h))
            .zip(dx.chunks_exact_mut(d))
        {
            dhi.fill(0.0);
            for (&g, wk) in gi.iter().zip(w2.chunks_exact(h)) {
                if g != 0.0 {
                    axpy(g, wk, dhi);
                }
            }
            dxi.fill(0.0);
            for ((&g, &a), wj) in dhi.iter().zip(hi).zip(w1.chunks_exact(d)) {
                // ReLU: no gradient where the unit was off.
                if g != 0.0 && a > 0.0 {
                    axpy(g, wj, dxi);
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{SeedableRng, rngs::StdRng};

    fn params() -> MlpParams {
        MlpParams::new(4, 6, 3, 8)
    }

    #[test]
    fn input_dim_must_be_positive() {
        let r = MlpParams { input_dim: 0, ..params() }.check();
        assert!(matches!(r, Err(ParamsError::InputDim { .. })));
    }

    #[test]
    fn hidden_dim_must_be_positive() {
        let r = MlpParams { hidden_dim: 0, ..params() }.check();
        assert!(matches!(r, Err(ParamsError::HiddenDim { .. })));
    }

    #[test]
    fn n_classes_must_be_at_least_two() {
        let r = MlpParams { n_classes: 1, ..params() }.check();
        assert!(matches!(r, Err(ParamsError::NumClasses { .. })));
    }

    #[test]
    fn max_batch_must_be_positive() {
        let r = MlpParams { max_batch: 0, ..params() }.check();
        assert!(matches!(r, Err(ParamsError::MaxBatch { .. })));
    }

    #[test]
    fn batch_above_capacity_is_an_error() {
        let mut m = params().check().unwrap().build(&mut StdRng::seed_from_u64(0));
        let r = m.forward_into(&[0.0; 4 * 9], &mut [0.0; 3 * 9]);
        assert!(matches!(r, Err(Error::CapacityExceeded { capacity: 8, got: 9, .. })));
    }

    #[test]
    fn backward_needs_the_forward_batch() {
        let mut m = params().check().unwrap().build(&mut StdRng::seed_from_u64(0));
        let mut g = m.grads();
        let r = m.backward_into(&[0.0; 4], &[0.0; 3], &mut g);
        assert!(matches!(r, Err(Error::ShapeMismatch { .. })));
    }

    #[test]
    fn input_grad_matches_finite_differences() {
        let mut h = params().check().unwrap().build(&mut StdRng::seed_from_u64(7));
        crate::head::assert_input_grad_matches_finite_differences(&mut h, 11);
    }

    #[test]
    fn backward_matches_finite_differences() {
        let mut rng = StdRng::seed_from_u64(5);
        let p = params();
        let mut m = p.check().unwrap().build(&mut rng);
        let n = 5;
        let x: Vec<f32> = (0..n * p.input_dim).map(|i| ((i * 7) % 13) as f32 / 6.0 - 1.0).collect();
        let c: Vec<f32> = (0..n * p.n_classes).map(|i| ((i * 3) % 5) as f32 - 2.0).collect();
        let mut logits = vec![0.0; n * p.n_classes];
        let mut g = m.grads();
        m.forward_into(&x, &mut logits).unwrap();
        m.backward_into(&x, &c, &mut g).unwrap();
        let mut f = |m: &mut Mlp| {
            m.forward_into(&x, &mut logits).unwrap();
            logits.iter().zip(&c).map(|(a, b)| (a * b) as f64).sum::<f64>()
        };
        let e = 1e-3;
        for j in 0..m.n_params() {
            let p0 = m.params()[j];
            m.params_mut()[j] = p0 + e;
            let fp = f(&mut m);
            m.params_mut()[j] = p0 - e;
            let fm = f(&mut m);
            m.params_mut()[j] = p0;
            let fd = (fp - fm) / (2.0 * e as f64);
            // f32 forward: the loss (|L| ~ 10) is rounded to ~1e-6, / 2e-3 -> ~1e-3 absolute.
            let gj = g.as_slice()[j] as f64;
            assert!((fd - gj).abs() < 5e-3 * (1.0 + gj.abs()), "param {j}: fd {fd} vs {gj}");
        }
    }
}
