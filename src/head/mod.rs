//! Heads on top of the frozen embedding, the optimizer that trains them and the EMA teacher.
//!
//! - [`ncm`]: nearest class mean, the training-free few-shot baseline.
//! - [`linear`]: a linear softmax head `[n, D] -> [n, K]`.
//! - [`mlp`]: one hidden ReLU layer `[n, D] -> [n, H] -> [n, K]`.
//! - [`optim`]: SGD with (Nesterov) momentum, weight decay, warm-up + cosine schedule.
//! - [`ema`]: the Mean Teacher exponential moving average of the student's weights.
//!
//! Every trainable head implements [`Head`]: its parameters are one flat `f32` slice, so the
//! optimizer, the EMA and persistence work on any head. Construction follows
//! `Params -> check() -> Checked<Params> -> build(..)`; each invalid value is one
//! [`ParamsError`] variant.
//!
//! # Examples
//! One supervised step of a linear head (forward, loss, backward, SGD, EMA teacher):
//! ```
//! use edge_ssl::head::{Head, ema::EmaParams, linear::LinearParams, optim::SgdParams};
//! use edge_ssl::objective::softmax::CrossEntropyParams;
//! use rand::{SeedableRng, rngs::StdRng};
//!
//! let mut rng = StdRng::seed_from_u64(0);
//! let mut student = LinearParams::new(4, 3).check()?.build(&mut rng);
//! let mut teacher = student.clone();
//! let mut sgd = SgdParams::default().check()?.build(student.n_params());
//! let ema = EmaParams::default().check()?;
//! let ce = CrossEntropyParams::default().check()?;
//!
//! let x = [0.5, -1.0, 0.2, 0.0, 1.0, 0.3, -0.2, 0.4]; // [2, 4]
//! let y = [2, 0];
//! let (mut logits, mut dlogits) = ([0.0; 6], [0.0; 6]);
//! let mut grads = student.grads();
//!
//! student.forward_into(&x, &mut logits)?;
//! let loss = ce.hard(&logits, &y, &mut dlogits)?;
//! grads.zero();
//! student.backward_into(&x, &dlogits, &mut grads)?;
//! sgd.step(student.params_mut(), grads.as_slice())?;
//! ema.update(teacher.params_mut(), student.params(), sgd.steps_done())?;
//! assert!(loss.is_finite());
//! # Ok::<(), edge_ssl::Error>(())
//! ```

pub mod ema;
mod errors;
pub mod linear;
pub mod mlp;
pub mod ncm;
pub mod optim;

pub use errors::ParamsError;

use crate::error::{Error, Result, check_finite};

/// Parameters that passed their `check()`. The only way to get one is the `check()` of the
/// parameter type, so a `build` on it cannot fail on a parameter value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Checked<P>(pub(crate) P);

impl<P> Checked<P> {
    /// The validated parameters.
    pub fn get(&self) -> &P {
        &self.0
    }
}

impl<P> std::ops::Deref for Checked<P> {
    type Target = P;
    fn deref(&self) -> &P {
        &self.0
    }
}

/// Gradients of a head's parameters, laid out exactly like [`Head::params`] (one flat buffer,
/// allocated once by [`Head::grads`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Grads {
    flat: Vec<f32>,
}

impl Grads {
    /// A zeroed gradient buffer for `n_params` parameters.
    pub fn zeros(n_params: usize) -> Self {
        Grads { flat: vec![0.0; n_params] }
    }

    /// Sets every gradient to zero (backward passes accumulate; call this before a step).
    pub fn zero(&mut self) {
        self.flat.fill(0.0);
    }

    /// The flat gradients.
    pub fn as_slice(&self) -> &[f32] {
        &self.flat
    }

    /// The flat gradients, mutable.
    pub fn as_mut_slice(&mut self) -> &mut [f32] {
        &mut self.flat
    }

    /// Number of parameters.
    pub fn len(&self) -> usize {
        self.flat.len()
    }

    /// True for a head without parameters (never the case for the heads here).
    pub fn is_empty(&self) -> bool {
        self.flat.is_empty()
    }
}

/// A trainable head: `[n, D]` embeddings to `[n, K]` logits, with a backward pass into a
/// preallocated [`Grads`] and its parameters as one flat slice.
///
/// `forward_into` and `backward_into` allocate nothing. Heads with a workspace (the MLP) accept
/// at most the batch size fixed at construction.
pub trait Head {
    /// Embedding dimension `D`.
    fn input_dim(&self) -> usize;

    /// Number of outputs `K`.
    fn n_classes(&self) -> usize;

    /// The parameters as one flat slice (layout documented by each head).
    fn params(&self) -> &[f32];

    /// The parameters as one flat mutable slice, for the optimizer and the EMA.
    fn params_mut(&mut self) -> &mut [f32];

    /// Number of parameters.
    fn n_params(&self) -> usize {
        self.params().len()
    }

    /// A zeroed gradient buffer matching this head (allocates; call once).
    fn grads(&self) -> Grads {
        Grads::zeros(self.n_params())
    }

    /// Logits of `n` samples.
    ///
    /// # Shapes
    /// `x: [n, D]` -> `logits: [n, K]`, row-major.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] if the lengths disagree; [`Error::NonFinite`] for NaN input;
    /// [`Error::CapacityExceeded`] if a head with a workspace gets more than its max batch.
    fn forward_into(&mut self, x: &[f32], logits: &mut [f32]) -> Result<()>;

    /// Adds d(loss)/d(params) to `grads`, given d(loss)/d(logits) of the batch `x` that the
    /// last `forward_into` saw (the MLP reuses the hidden activations of that call). Gradients
    /// accumulate: call [`Grads::zero`] before each step.
    ///
    /// # Shapes
    /// `x: [n, D]`, `dlogits: [n, K]`, `grads`: [`Head::n_params`].
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] if the lengths disagree (or, for the MLP, `n` differs from the
    /// last forward); [`Error::NonFinite`] for NaN in `dlogits`.
    fn backward_into(&mut self, x: &[f32], dlogits: &[f32], grads: &mut Grads) -> Result<()>;

    /// Writes d(loss)/d(x) into `dx`, given d(loss)/d(logits) of the batch that the last
    /// `forward_into` saw (what a trainable layer below the head, [`crate::adapt::Block`],
    /// needs). Allocation-free.
    ///
    /// # Shapes
    /// `dlogits: [n, K]` -> `dx: [n, D]`.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] if the lengths disagree (or, for the MLP, `n` differs from the
    /// last forward); [`Error::NonFinite`] for NaN in `dlogits`.
    fn input_grad_into(&mut self, dlogits: &[f32], dx: &mut [f32]) -> Result<()>;

    /// Replaces the parameters with `src` (the persistence path: what [`Head::params`] wrote).
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] if `src.len() != n_params`; [`Error::NonFinite`] for NaN.
    fn load_params(&mut self, src: &[f32]) -> Result<()> {
        check_len("Head::load_params", "params", self.n_params(), src.len())?;
        check_finite("Head::load_params", src)?;
        self.params_mut().copy_from_slice(src);
        Ok(())
    }
}

/// [`Error::ShapeMismatch`] unless `got == expected`.
pub(crate) fn check_len(op: &'static str, what: &str, expected: usize, got: usize) -> Result<()> {
    if got == expected {
        Ok(())
    } else {
        Err(Error::ShapeMismatch {
            op,
            expected: format!("{what}: {expected} values"),
            got: format!("{got} values"),
        })
    }
}

/// Number of rows of a `[n, width]` buffer, or [`Error::ShapeMismatch`].
pub(crate) fn rows_of(op: &'static str, what: &str, len: usize, width: usize) -> Result<usize> {
    if width > 0 && len.is_multiple_of(width) {
        Ok(len / width)
    } else {
        Err(Error::ShapeMismatch {
            op,
            expected: format!("{what}: [n, {width}]"),
            got: format!("{len} values"),
        })
    }
}

/// Dot product with 8 independent accumulators (so the compiler can vectorize it).
#[inline]
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for j in 0..8 {
            acc[j] += x[j] * y[j];
        }
    }
    let mut s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (x, y) in ra.iter().zip(rb) {
        s += x * y;
    }
    s
}

/// `y += a * x`.
#[inline]
pub(crate) fn axpy(a: f32, x: &[f32], y: &mut [f32]) {
    for (yi, xi) in y.iter_mut().zip(x) {
        *yi += a * xi;
    }
}

/// PyTorch `nn.Linear` default initialisation: weights and biases uniform in
/// `[-1/sqrt(fan_in), 1/sqrt(fan_in)]`.
pub(crate) fn init_uniform<R: rand::Rng + ?Sized>(rng: &mut R, fan_in: usize, out: &mut [f32]) {
    let bound = 1.0 / (fan_in as f32).sqrt();
    for v in out {
        *v = rng.random_range(-bound..=bound);
    }
}

/// Checks [`Head::input_grad_into`] against central finite differences of
/// `loss = sum(g . logits(x))` on a batch of 3 rows.
#[cfg(test)]
pub(crate) fn assert_input_grad_matches_finite_differences(head: &mut dyn Head, seed: u64) {
    use rand::{Rng, SeedableRng, rngs::StdRng};
    let (d, k, n) = (head.input_dim(), head.n_classes(), 3);
    let mut rng = StdRng::seed_from_u64(seed);
    let x: Vec<f32> = (0..n * d).map(|_| rng.random_range(-1.0..1.0)).collect();
    let g: Vec<f32> = (0..n * k).map(|_| rng.random_range(-1.0..1.0)).collect();
    let mut logits = vec![0f32; n * k];
    let mut loss = |x: &[f32], head: &mut dyn Head| -> f64 {
        head.forward_into(x, &mut logits).unwrap();
        logits.iter().zip(&g).map(|(l, g)| f64::from(l * g)).sum()
    };
    loss(&x, head);
    let mut dx = vec![0f32; n * d];
    head.input_grad_into(&g, &mut dx).unwrap();
    let e = 1e-3f32;
    for j in 0..n * d {
        let (mut xp, mut xm) = (x.clone(), x.clone());
        xp[j] += e;
        xm[j] -= e;
        let fd = (loss(&xp, head) - loss(&xm, head)) / (2.0 * f64::from(e));
        let got = f64::from(dx[j]);
        assert!((fd - got).abs() < 5e-3 * (1.0 + fd.abs()), "x[{j}]: fd {fd} vs {got}");
    }
    assert!(head.input_grad_into(&g[..k], &mut dx[..d + 1]).is_err(), "wrong dx length");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_matches_naive_for_all_remainders() {
        for n in 0..20 {
            let a: Vec<f32> = (0..n).map(|i| i as f32 * 0.5 - 3.0).collect();
            let b: Vec<f32> = (0..n).map(|i| 1.0 - i as f32 * 0.25).collect();
            let naive: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
            assert!((dot(&a, &b) - naive).abs() < 1e-4, "n = {n}");
        }
    }

    #[test]
    fn autotraits() {
        fn check<T: Send + Sync + Unpin + Clone + std::fmt::Debug>() {}
        check::<Grads>();
        check::<Checked<linear::LinearParams>>();
        check::<ParamsError>();
    }
}
