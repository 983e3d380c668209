//! A trainable block on an intermediate feature map: the features adapt on the device.
//!
//! The learner's head normally reads the frozen backbone's embedding. With
//! [`crate::learner::LearnerParams::adapt`], the learner instead receives the feature map one
//! layer before it (e.g. [`crate::models::CAMERA_LAST_BLOCK`], `[C, P]` = 320 channels x 4 x 4
//! positions, NCHW) and computes the embedding itself with a trainable copy of the backbone's
//! last pointwise convolution ([`crate::models::CAMERA_HEAD_CONV`], read by
//! [`PointwiseConv::read_qdq`]):
//!
//! ```text
//! e[o] = 1/P sum_p relu6(b[o] + sum_c W[o, c] x[c, p])
//! ```
//!
//! starting from the shipped weights, trained by momentum SGD with L2-SP decay towards them
//! (Li et al., "Explicit inductive bias for transfer learning with convolutional networks",
//! ICML 2018). The shipped weights stay available ([`Weights::Shipped`]) so that the OOD gate
//! keeps scoring the frozen embedding it was calibrated on.
//!
//! Measured in the learner on Fashion-MNIST (EVALUATION.md, "Features adapted on the device, in
//! the learner"; 5 seeds, paired): +1.0 point for the oracle, +0.6 for labels only, +0.01 for
//! label propagation (it fits the propagated labels' errors too), at 4.5x the learner's time per
//! sample. Offline, in a weaker trainer, it had gained +1.7 points with propagated labels.
//!
//! Every buffer is allocated in [`AdaptParams::build`]; [`Block::forward_into`],
//! [`Block::backward`] and [`Block::step`] allocate nothing. The matrix products run a tiled
//! kernel that uses AVX2 + FMA when the CPU has them (checked at run time) and portable code
//! otherwise.
//!
//! # Examples
//! ```
//! use edge_ssl::adapt::{AdaptParams, Weights};
//! use edge_ssl::backbone::PointwiseConv;
//!
//! // 2 input channels x 3 positions -> 2 outputs
//! let conv = PointwiseConv {
//!     inputs: 2,
//!     outputs: 2,
//!     weight: vec![1.0, 0.0, 0.0, 1.0],
//!     bias: vec![0.0, 0.5],
//! };
//! let mut block = AdaptParams::new(conv, 3).build(4)?;
//! let map = [1.0, 2.0, 9.0, -1.0, 0.0, 1.0]; // channel 0 at 3 positions, then channel 1
//! let mut e = [0.0; 2];
//! block.forward_into(&map, &mut e, Weights::Current)?;
//! // channel 0: relu6(1, 2, 9) = 1, 2, 6; channel 1: relu6(-0.5, 0.5, 1.5) = 0, 0.5, 1.5
//! assert_eq!(e, [3.0, 2.0 / 3.0]);
//! # Ok::<(), edge_ssl::Error>(())
//! ```

use crate::backbone::PointwiseConv;
use crate::bank::{decode_i8, encode_i8, round_trip_i8};
use crate::error::{Error, Result, check_finite};

/// Parameters of an adaptive [`Block`]. [`AdaptParams::new`] gives the defaults listed on each
/// field (those of the offline study, `examples/adapt_study.rs`).
#[derive(Debug, Clone, PartialEq)]
pub struct AdaptParams {
    /// The shipped convolution: the start and the L2-SP anchor.
    pub conv: PointwiseConv,
    /// Spatial positions `P` of the map (16 for 4 x 4).
    pub positions: usize,
    /// Learning rate. Default 0.05 (offline: 0.15 gave the same accuracy). 0 keeps the
    /// shipped block: the learner then makes no block steps and never recomputes the bank's
    /// embeddings (they cannot change), e.g. to build the graph on the maps
    /// ([`AdaptParams::graph_on_map`]) over the shipped embedding.
    pub lr: f32,
    /// SGD momentum. Default 0.9.
    pub momentum: f32,
    /// L2-SP decay towards the shipped weights. Default 1e-2.
    pub l2sp: f32,
    /// Observed samples (labelled or not) between block steps. Default 2.
    pub every: u64,
    /// Decay of the running average of the trained weights ([`Weights::Average`], Polyak
    /// averaging as in a mean teacher), updated after every block step; 0 keeps the average
    /// equal to the trained weights. Default 0.999 (seed 1, true labels for the whole stream:
    /// 0.99 ended at 0.844 test accuracy, 0.999 at 0.860, 0.9995 at 0.862; without an
    /// average, a learning rate of 0.05 oscillated between 0.72 and 0.82).
    pub average_decay: f32,
    /// Admitted (pseudo) entries per block step, beside the learner's `labeled_batch` given
    /// entries. Default 48 (the offline trainer's batch: 16 given + 48 stream).
    pub unlabeled_rows: usize,
    /// Train the block only on the admitted rows of a step whose propagated weight (certainty
    /// x class balance, [`crate::propagate`]) is at least the mean of that step's rows: about
    /// the more certain half. Default false.
    pub surest_half: bool,
    /// Build the bank's graph (label propagation, CoMatch) on the shipped weights' embeddings
    /// instead of the adapted ones; the teacher's start labels still come from the adapted
    /// embeddings. Default false (Fashion-MNIST, 5 seeds: -0.26 points for `labelprop` against
    /// the adapted graph).
    pub graph_on_shipped: bool,
    /// Build the bank's graph (label propagation, CoMatch and the vote in predictions) on the
    /// feature maps themselves (PCA of the int8-coded maps the bank keeps, whitened, as for
    /// embeddings) instead of on the embeddings; the head, the teacher and the gate keep the
    /// embeddings. The map keeps the spatial layout the embedding pools away: on
    /// Fashion-MNIST (112 input, 320 x 4 x 4 maps) a 10-nearest-neighbour vote of the true
    /// labels is 89.0% right on the maps against 86.5% on the 1280-d embedding (EVALUATION.md).
    /// Not with `graph_on_shipped`. Default false.
    pub graph_on_map: bool,
    /// Observed samples (labelled or not) between recomputations of every bank entry's
    /// embedding with the current block (the graph refresh also recomputes them first).
    /// Default 500.
    pub refresh_every: u64,
}

impl AdaptParams {
    /// Defaults for `conv` over maps of `positions` positions.
    pub fn new(conv: PointwiseConv, positions: usize) -> Self {
        AdaptParams {
            conv,
            positions,
            lr: 0.05,
            momentum: 0.9,
            l2sp: 1e-2,
            every: 2,
            average_decay: 0.999,
            unlabeled_rows: 48,
            graph_on_shipped: false,
            graph_on_map: false,
            surest_half: false,
            refresh_every: 500,
        }
    }

    /// Defaults for `conv` over rows of `dim` values: maps of `dim / conv.inputs` positions.
    ///
    /// # Errors
    /// [`Error::InvalidParam`] (`adapt`) if `dim` is not a positive whole number of the
    /// convolution's input channels (e.g. a backbone that outputs its pooled embedding instead
    /// of the map the convolution reads).
    pub fn for_rows(conv: PointwiseConv, dim: usize) -> Result<Self> {
        if conv.inputs == 0 || dim == 0 || !dim.is_multiple_of(conv.inputs) {
            return Err(Error::InvalidParam {
                name: "adapt",
                reason: format!(
                    "rows of {dim} values are not maps of {} channels (the backbone must \
                     output the map the convolution reads, e.g. {})",
                    conv.inputs,
                    crate::models::CAMERA_LAST_BLOCK
                ),
            });
        }
        let positions = dim / conv.inputs;
        Ok(Self::new(conv, positions))
    }

    /// The shipped convolution kept frozen (`lr = 0`) with the bank's graph on the maps
    /// ([`AdaptParams::graph_on_map`]): the best camera configuration measured
    /// (EVALUATION.md), used by [`crate::learner::LearnerParams::with_map_graph`].
    pub fn frozen_map_graph(mut self) -> Self {
        self.lr = 0.0;
        self.graph_on_map = true;
        self.graph_on_shipped = false;
        self
    }

    /// True if the block is trained (`lr > 0`).
    pub fn trains(&self) -> bool {
        self.lr > 0.0
    }

    /// True if the graph is built on embeddings of other weights than the learner's:
    /// [`AdaptParams::graph_on_shipped`] with a trained block (a frozen block's averaged
    /// weights are the shipped ones).
    pub fn graph_on_shipped_weights(&self) -> bool {
        self.graph_on_shipped && self.trains()
    }

    /// Values per input map, `conv.inputs * positions`.
    pub fn input_dim(&self) -> usize {
        self.conv.inputs * self.positions
    }

    /// Embedding dimension, `conv.outputs`.
    pub fn output_dim(&self) -> usize {
        self.conv.outputs
    }

    /// Validates the parameters.
    ///
    /// # Errors
    /// [`Error::InvalidParam`] naming the field: zero sizes, weights or bias of the wrong
    /// length or not finite, a learning rate, momentum or decay out of range, zero intervals.
    pub fn check(&self) -> Result<()> {
        let bad = |name: &'static str, reason: String| Err(Error::InvalidParam { name, reason });
        let c = &self.conv;
        if c.inputs == 0 || c.outputs == 0 || self.positions == 0 {
            return bad(
                "adapt",
                format!("{} inputs, {} outputs, {} positions", c.inputs, c.outputs, self.positions),
            );
        }
        if c.weight.len() != c.inputs * c.outputs || c.bias.len() != c.outputs {
            return bad(
                "adapt.conv",
                format!(
                    "{} weights and {} biases for {} x {}",
                    c.weight.len(),
                    c.bias.len(),
                    c.outputs,
                    c.inputs
                ),
            );
        }
        if c.weight.iter().chain(&c.bias).any(|v| !v.is_finite()) {
            return bad("adapt.conv", "non-finite weights".into());
        }
        if self.graph_on_map && self.graph_on_shipped {
            return bad("adapt.graph_on_map", "not with graph_on_shipped".into());
        }
        if !(self.lr.is_finite() && self.lr >= 0.0) {
            return bad("adapt.lr", format!("{} must be finite and >= 0", self.lr));
        }
        if !(0.0..1.0).contains(&self.momentum) {
            return bad("adapt.momentum", format!("{} not in [0, 1)", self.momentum));
        }
        if !(0.0..1.0).contains(&self.average_decay) {
            return bad("adapt.average_decay", format!("{} not in [0, 1)", self.average_decay));
        }
        if !(self.l2sp.is_finite() && self.l2sp >= 0.0) {
            return bad("adapt.l2sp", format!("{} must be finite and >= 0", self.l2sp));
        }
        if self.every == 0 || self.refresh_every == 0 {
            return bad("adapt.every", "intervals must be >= 1".into());
        }
        Ok(())
    }

    /// Allocates a block whose forward and backward passes take up to `max_rows` maps at once
    /// (longer forward batches are processed in chunks).
    ///
    /// # Errors
    /// As [`AdaptParams::check`]; [`Error::InvalidParam`] (`max_rows`) for 0.
    pub fn build(&self, max_rows: usize) -> Result<Block> {
        self.check()?;
        if max_rows == 0 {
            return Err(Error::InvalidParam { name: "max_rows", reason: "must be >= 1".into() });
        }
        let (ci, co, p) = (self.conv.inputs, self.conv.outputs, self.positions);
        let cols = max_rows * p;
        Ok(Block {
            p: self.clone(),
            w: self.conv.weight.clone(),
            b: self.conv.bias.clone(),
            wa: self.conv.weight.clone(),
            ba: self.conv.bias.clone(),
            mw: vec![0.0; co * ci],
            mb: vec![0.0; co],
            gw: vec![0.0; co * ci],
            gb: vec![0.0; co],
            xcat: vec![0.0; ci * cols],
            xt: vec![0.0; cols * ci],
            pre: vec![0.0; co * cols],
            max_rows,
            last_rows: None,
        })
    }
}

/// Which weights a forward pass uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Weights {
    /// The trained weights (the only ones [`Block::backward`] differentiates).
    Current,
    /// Their running average ([`AdaptParams::average_decay`]): what the learner embeds with.
    Average,
    /// The shipped weights ([`AdaptParams::conv`]): the frozen embedding.
    Shipped,
}

/// The trainable block (see the [module docs](self)). Build with [`AdaptParams::build`].
#[derive(Debug, Clone)]
pub struct Block {
    p: AdaptParams,
    /// `[outputs, inputs]`.
    w: Vec<f32>,
    b: Vec<f32>,
    /// The running average of `w` and `b`.
    wa: Vec<f32>,
    ba: Vec<f32>,
    mw: Vec<f32>,
    mb: Vec<f32>,
    gw: Vec<f32>,
    gb: Vec<f32>,
    /// `[inputs, rows * P]`: the maps side by side.
    xcat: Vec<f32>,
    /// `[rows * P, inputs]`: its transpose (backward).
    xt: Vec<f32>,
    /// `[outputs, rows * P]`: pre-activations of the last forward, then their gradient.
    pre: Vec<f32>,
    max_rows: usize,
    /// Rows of the last [`Weights::Current`] forward that fit in one chunk (what `backward`
    /// differentiates), `None` if there is none to differentiate.
    last_rows: Option<usize>,
}

impl Block {
    /// The parameters.
    pub fn params(&self) -> &AdaptParams {
        &self.p
    }

    /// Largest batch [`Block::backward`] accepts.
    pub fn max_rows(&self) -> usize {
        self.max_rows
    }

    /// The current weights `[outputs, inputs]` and bias.
    pub fn weights(&self) -> (&[f32], &[f32]) {
        (&self.w, &self.b)
    }

    /// The running averages of the weights and the bias ([`Weights::Average`]).
    pub fn averages(&self) -> (&[f32], &[f32]) {
        (&self.wa, &self.ba)
    }

    /// The momentum buffers of the weights and the bias.
    pub fn momentum(&self) -> (&[f32], &[f32]) {
        (&self.mw, &self.mb)
    }

    /// Replaces the weights, bias, their averages and momentum buffers (the persistence
    /// path): `[w, b, wa, ba, mw, mb]`.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] for other lengths, [`Error::NonFinite`] for NaN.
    pub fn restore(&mut self, parts: [&[f32]; 6]) -> Result<()> {
        let [w, b, wa, ba, mw, mb] = parts;
        for (name, src, dst) in [
            ("w", w, &self.w),
            ("b", b, &self.b),
            ("wa", wa, &self.wa),
            ("ba", ba, &self.ba),
            ("mw", mw, &self.mw),
            ("mb", mb, &self.mb),
        ] {
            if src.len() != dst.len() {
                return Err(Error::ShapeMismatch {
                    op: "Block::restore",
                    expected: format!("{name}: {} values", dst.len()),
                    got: format!("{} values", src.len()),
                });
            }
            check_finite("Block::restore", src)?;
        }
        self.w.copy_from_slice(w);
        self.b.copy_from_slice(b);
        self.wa.copy_from_slice(wa);
        self.ba.copy_from_slice(ba);
        self.mw.copy_from_slice(mw);
        self.mb.copy_from_slice(mb);
        self.last_rows = None;
        Ok(())
    }

    /// Embeddings `[n, outputs]` of `n` maps `[n, inputs * P]` (each NCHW, `[inputs, P]`).
    /// With [`Weights::Current`] and `n <= max_rows`, the pass is kept for
    /// [`Block::backward`].
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] if the lengths disagree; [`Error::NonFinite`] for NaN input.
    pub fn forward_into(&mut self, maps: &[f32], out: &mut [f32], weights: Weights) -> Result<()> {
        const OP: &str = "Block::forward_into";
        let (ci, co, p) = (self.p.conv.inputs, self.p.conv.outputs, self.p.positions);
        let n = maps.len() / (ci * p);
        if maps.len() != n * ci * p || out.len() != n * co {
            return Err(Error::ShapeMismatch {
                op: OP,
                expected: format!("maps [n, {}] and out [n, {co}]", ci * p),
                got: format!("{} and {} values", maps.len(), out.len()),
            });
        }
        check_finite(OP, maps)?;
        self.last_rows = None;
        for (chunk, o) in
            maps.chunks(self.max_rows * ci * p).zip(out.chunks_mut(self.max_rows * co))
        {
            let m = o.len() / co;
            let cols = m * p;
            for (r, map) in chunk.chunks_exact(ci * p).enumerate() {
                for (c, src) in map.chunks_exact(p).enumerate() {
                    self.xcat[c * cols + r * p..c * cols + (r + 1) * p].copy_from_slice(src);
                }
            }
            let (w, b) = match weights {
                Weights::Current => (&self.w, &self.b),
                Weights::Average => (&self.wa, &self.ba),
                Weights::Shipped => (&self.p.conv.weight, &self.p.conv.bias),
            };
            let pre = &mut self.pre[..co * cols];
            for (row, &bo) in pre.chunks_exact_mut(cols).zip(b) {
                row.fill(bo);
            }
            gemm_acc(co, ci, cols, w, &self.xcat[..ci * cols], pre);
            let inv = 1.0 / p as f32;
            for (r, er) in o.chunks_exact_mut(co).enumerate() {
                for (e, row) in er.iter_mut().zip(pre.chunks_exact(cols)) {
                    *e = row[r * p..(r + 1) * p].iter().map(|v| v.clamp(0.0, 6.0)).sum::<f32>()
                        * inv;
                }
            }
            if weights == Weights::Current && n <= self.max_rows {
                self.last_rows = Some(m);
            }
        }
        Ok(())
    }

    /// Adds the gradient of the loss with respect to the weights and bias, given its gradient
    /// `de` (`[n, outputs]`) with respect to the embeddings of the last
    /// [`Weights::Current`] forward pass (`n` rows, at most `max_rows`). Consumes that pass.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] if there is no such pass or `n` differs;
    /// [`Error::NonFinite`] for NaN in `de`.
    pub fn backward(&mut self, de: &[f32]) -> Result<()> {
        const OP: &str = "Block::backward";
        let (ci, co, p) = (self.p.conv.inputs, self.p.conv.outputs, self.p.positions);
        let Some(n) = self.last_rows.filter(|&n| de.len() == n * co) else {
            return Err(Error::ShapeMismatch {
                op: OP,
                expected: format!(
                    "[n, {co}] for the last current forward ({:?} rows)",
                    self.last_rows
                ),
                got: format!("{} values", de.len()),
            });
        };
        check_finite(OP, de)?;
        self.last_rows = None;
        let cols = n * p;
        let inv = 1.0 / p as f32;
        let pre = &mut self.pre[..co * cols];
        for (o, (row, gb)) in pre.chunks_exact_mut(cols).zip(self.gb.iter_mut()).enumerate() {
            for (r, seg) in row.chunks_exact_mut(p).enumerate() {
                let g = de[r * co + o] * inv;
                for v in seg {
                    *v = if *v > 0.0 && *v < 6.0 { g } else { 0.0 };
                    *gb += *v;
                }
            }
        }
        for (c, row) in self.xcat[..ci * cols].chunks_exact(cols).enumerate() {
            for (j, &v) in row.iter().enumerate() {
                self.xt[j * ci + c] = v;
            }
        }
        gemm_acc(co, cols, ci, pre, &self.xt[..cols * ci], &mut self.gw);
        Ok(())
    }

    /// One SGD step on the accumulated gradient, then zeroes it:
    /// `m = mu m + g + l2sp (w - w0)`, `w -= lr m` (the bias has no decay); then the averages
    /// `wa = d wa + (1 - d) w`.
    pub fn step(&mut self) {
        let (lr, mu, l2) = (self.p.lr, self.p.momentum, self.p.l2sp);
        for (((w, m), g), &w0) in
            self.w.iter_mut().zip(&mut self.mw).zip(&mut self.gw).zip(&self.p.conv.weight)
        {
            *m = mu * *m + *g + l2 * (*w - w0);
            *w -= lr * *m;
            *g = 0.0;
        }
        for ((b, m), g) in self.b.iter_mut().zip(&mut self.mb).zip(&mut self.gb) {
            *m = mu * *m + *g;
            *b -= lr * *m;
            *g = 0.0;
        }
        let d = self.p.average_decay;
        for (a, &v) in self.wa.iter_mut().zip(&self.w).chain(self.ba.iter_mut().zip(&self.b)) {
            *a = d * *a + (1.0 - d) * v;
        }
    }
}

/// Maps stored per bank slot, one byte per value plus a per-map scale (the bank's
/// [`crate::bank::Storage::I8`] coding): 5124 bytes for a 320 x 4 x 4 map.
#[derive(Debug, Clone, PartialEq)]
pub struct MapStore {
    dim: usize,
    q: Vec<i8>,
    scale: Vec<f32>,
}

impl MapStore {
    /// A store of `capacity` maps of `dim` values (allocates once).
    pub fn new(capacity: usize, dim: usize) -> Self {
        MapStore { dim, q: vec![0; capacity * dim], scale: vec![0.0; capacity] }
    }

    /// Stores `map` in `slot` (`map` has `dim` finite values, `slot < capacity`).
    pub fn put(&mut self, slot: usize, map: &[f32]) {
        let d = self.dim;
        self.scale[slot] = encode_i8(map, &mut self.q[slot * d..(slot + 1) * d]);
    }

    /// Decodes slot `slot` into `out` (`dim` values).
    pub fn get_into(&self, slot: usize, out: &mut [f32]) {
        let d = self.dim;
        decode_i8(&self.q[slot * d..(slot + 1) * d], self.scale[slot], out);
    }

    /// `map` as [`MapStore::get_into`] returns it once stored (its int8 round trip).
    pub fn stored_form(map: &[f32], out: &mut [f32]) {
        round_trip_i8(map, out);
    }

    /// The stored bytes and scales (the persistence path).
    pub fn raw(&self) -> (&[i8], &[f32]) {
        (&self.q, &self.scale)
    }

    /// Replaces the stored bytes and scales.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] for other lengths; [`Error::NonFinite`] for a bad scale.
    pub fn restore(&mut self, q: &[i8], scale: &[f32]) -> Result<()> {
        if q.len() != self.q.len() || scale.len() != self.scale.len() {
            return Err(Error::ShapeMismatch {
                op: "MapStore::restore",
                expected: format!("{} bytes and {} scales", self.q.len(), self.scale.len()),
                got: format!("{} and {}", q.len(), scale.len()),
            });
        }
        check_finite("MapStore::restore", scale)?;
        self.q.copy_from_slice(q);
        self.scale.copy_from_slice(scale);
        Ok(())
    }
}

/// `c [m, n] += a [m, k] . b [k, n]`, all row-major and contiguous. Allocation-free.
pub(crate) fn gemm_acc(m: usize, k: usize, n: usize, a: &[f32], b: &[f32], c: &mut [f32]) {
    assert!(a.len() >= m * k && b.len() >= k * n && c.len() >= m * n, "gemm_acc: short slices");
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU supports AVX2 and FMA (checked just above).
        unsafe { gemm_avx2_fma(m, k, n, a, b, c) };
        return;
    }
    gemm_tiled::<false>(m, k, n, a, b, c);
}

/// The AVX2 + FMA kernel: 4 x 16 blocks of `c` accumulated in 8 registers over the whole of
/// `k` (`b`'s 16-column panel stays in L1 while the rows of `a` stream past), the edges by
/// the portable kernel.
///
/// # Safety
/// The CPU must support AVX2 and FMA; the slices must hold `m k`, `k n` and `m n` values.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn gemm_avx2_fma(m: usize, k: usize, n: usize, a: &[f32], b: &[f32], c: &mut [f32]) {
    use std::arch::x86_64::{
        _mm256_add_ps, _mm256_fmadd_ps, _mm256_loadu_ps, _mm256_set1_ps, _mm256_setzero_ps,
        _mm256_storeu_ps,
    };
    let (m4, n16) = (m / 4 * 4, n / 16 * 16);
    let (ap, bp, cp) = (a.as_ptr(), b.as_ptr(), c.as_mut_ptr());
    for j in (0..n16).step_by(16) {
        for i in (0..m4).step_by(4) {
            // SAFETY: i + 3 < m, j + 15 < n and every p < k, so each offset below is inside
            // the slices (their lengths were checked by the caller).
            unsafe {
                let mut acc = [_mm256_setzero_ps(); 8];
                for p in 0..k {
                    let b0 = _mm256_loadu_ps(bp.add(p * n + j));
                    let b1 = _mm256_loadu_ps(bp.add(p * n + j + 8));
                    for r in 0..4 {
                        let x = _mm256_set1_ps(*ap.add((i + r) * k + p));
                        acc[2 * r] = _mm256_fmadd_ps(x, b0, acc[2 * r]);
                        acc[2 * r + 1] = _mm256_fmadd_ps(x, b1, acc[2 * r + 1]);
                    }
                }
                for r in 0..4 {
                    let cr = cp.add((i + r) * n + j);
                    _mm256_storeu_ps(cr, _mm256_add_ps(_mm256_loadu_ps(cr), acc[2 * r]));
                    let cr = cr.add(8);
                    _mm256_storeu_ps(cr, _mm256_add_ps(_mm256_loadu_ps(cr), acc[2 * r + 1]));
                }
            }
        }
    }
    if n16 < n {
        edge::<true>(0, m4, n16, n, k, n, a, b, c);
    }
    if m4 < m {
        edge::<true>(m4, m, 0, n, k, n, a, b, c);
    }
}

/// `c[i, j] += a[i, :] . b[:, j]` for rows `i0..i1` and columns `j0..j1` (the edges of the
/// x86-64 kernel).
#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn edge<const FMA: bool>(
    i0: usize,
    i1: usize,
    j0: usize,
    j1: usize,
    k: usize,
    n: usize,
    a: &[f32],
    b: &[f32],
    c: &mut [f32],
) {
    for i in i0..i1 {
        for j in j0..j1 {
            let mut s = c[i * n + j];
            for p in 0..k {
                s = if FMA {
                    a[i * k + p].mul_add(b[p * n + j], s)
                } else {
                    s + a[i * k + p] * b[p * n + j]
                };
            }
            c[i * n + j] = s;
        }
    }
}

/// Columns of `c` per tile: 4 rows of accumulators stay in L1.
const TILE: usize = 128;

/// The kernel: 4 rows of `c` at a time, `TILE` columns at a time, each `b` row loaded once per
/// 4 rows. `FMA` uses fused multiply-add (only where the CPU has it: in software it is slow).
#[inline(always)]
fn gemm_tiled<const FMA: bool>(m: usize, k: usize, n: usize, a: &[f32], b: &[f32], c: &mut [f32]) {
    #[inline(always)]
    fn madd<const FMA: bool>(acc: f32, x: f32, y: f32) -> f32 {
        if FMA { x.mul_add(y, acc) } else { acc + x * y }
    }
    let mut acc = [[0f32; TILE]; 4];
    let mut i0 = 0;
    while i0 < m {
        let rows = (m - i0).min(4);
        let mut j0 = 0;
        while j0 < n {
            let jn = (n - j0).min(TILE);
            for (r, ar) in acc.iter_mut().enumerate().take(rows) {
                ar[..jn].copy_from_slice(&c[(i0 + r) * n + j0..(i0 + r) * n + j0 + jn]);
            }
            if rows == 4 {
                let [a0, a1, a2, a3] = &mut acc;
                let (a0, a1, a2, a3) = (&mut a0[..jn], &mut a1[..jn], &mut a2[..jn], &mut a3[..jn]);
                for kk in 0..k {
                    let brow = &b[kk * n + j0..kk * n + j0 + jn];
                    let (x0, x1, x2, x3) = (
                        a[i0 * k + kk],
                        a[(i0 + 1) * k + kk],
                        a[(i0 + 2) * k + kk],
                        a[(i0 + 3) * k + kk],
                    );
                    for ((((c0, c1), c2), c3), &y) in a0
                        .iter_mut()
                        .zip(a1.iter_mut())
                        .zip(a2.iter_mut())
                        .zip(a3.iter_mut())
                        .zip(brow)
                    {
                        *c0 = madd::<FMA>(*c0, x0, y);
                        *c1 = madd::<FMA>(*c1, x1, y);
                        *c2 = madd::<FMA>(*c2, x2, y);
                        *c3 = madd::<FMA>(*c3, x3, y);
                    }
                }
            } else {
                for (r, ar) in acc.iter_mut().enumerate().take(rows) {
                    let ar = &mut ar[..jn];
                    for kk in 0..k {
                        let x = a[(i0 + r) * k + kk];
                        let brow = &b[kk * n + j0..kk * n + j0 + jn];
                        ar.iter_mut().zip(brow).for_each(|(cv, &y)| *cv = madd::<FMA>(*cv, x, y));
                    }
                }
            }
            for (r, ar) in acc.iter().enumerate().take(rows) {
                c[(i0 + r) * n + j0..(i0 + r) * n + j0 + jn].copy_from_slice(&ar[..jn]);
            }
            j0 += jn;
        }
        i0 += rows;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    fn random(n: usize, rng: &mut StdRng) -> Vec<f32> {
        (0..n).map(|_| rng.random_range(-1.0..1.0)).collect()
    }

    fn naive(m: usize, k: usize, n: usize, a: &[f32], b: &[f32], c: &mut [f32]) {
        for i in 0..m {
            for j in 0..n {
                let s: f64 =
                    (0..k).map(|t| f64::from(a[i * k + t]) * f64::from(b[t * n + j])).sum();
                c[i * n + j] += s as f32;
            }
        }
    }

    /// Not a check: prints the kernel's speed on the block's shapes
    /// (`cargo test --release --lib gemm_speed -- --ignored --nocapture`).
    #[test]
    #[ignore]
    fn gemm_speed() {
        let mut rng = StdRng::seed_from_u64(1);
        for (m, k, n) in [(1280, 320, 1024), (1280, 1024, 320), (1280, 320, 16)] {
            let (a, b) = (random(m * k, &mut rng), random(k * n, &mut rng));
            let mut c = vec![0f32; m * n];
            let reps = (2_000_000_000 / (m * k * n)).max(1);
            let t = std::time::Instant::now();
            for _ in 0..reps {
                gemm_acc(m, k, n, &a, &b, &mut c);
            }
            let s = t.elapsed().as_secs_f64() / reps as f64;
            println!("{m}x{k}x{n}: {:.2} ms, {:.1} GMAC/s", s * 1e3, (m * k * n) as f64 / s / 1e9);
        }
    }

    #[test]
    fn gemm_matches_the_naive_product_on_every_remainder() {
        let mut rng = StdRng::seed_from_u64(1);
        for (m, k, n) in [(1, 1, 1), (4, 3, 128), (5, 7, 130), (9, 33, 257), (3, 2, 5), (8, 5, 32)]
        {
            let (a, b) = (random(m * k, &mut rng), random(k * n, &mut rng));
            let c0 = random(m * n, &mut rng);
            let (mut c, mut want) = (c0.clone(), c0.clone());
            gemm_acc(m, k, n, &a, &b, &mut c);
            naive(m, k, n, &a, &b, &mut want);
            for (x, y) in c.iter().zip(&want) {
                assert!((x - y).abs() < 1e-4, "{m}x{k}x{n}: {x} vs {y}");
            }
            let mut portable = c0.clone();
            gemm_tiled::<false>(m, k, n, &a, &b, &mut portable);
            for (x, y) in portable.iter().zip(&want) {
                assert!((x - y).abs() < 1e-4, "portable {m}x{k}x{n}: {x} vs {y}");
            }
        }
    }

    fn small(rng: &mut StdRng) -> AdaptParams {
        let (ci, co) = (5, 6);
        let conv = PointwiseConv {
            inputs: ci,
            outputs: co,
            weight: random(ci * co, rng),
            bias: random(co, rng),
        };
        AdaptParams::new(conv, 3)
    }

    /// The module-doc formula, computed directly.
    fn embed(w: &[f32], b: &[f32], ci: usize, p: usize, map: &[f32]) -> Vec<f32> {
        b.iter()
            .enumerate()
            .map(|(o, &bo)| {
                (0..p)
                    .map(|q| {
                        let s: f32 = (0..ci).map(|c| w[o * ci + c] * map[c * p + q]).sum();
                        (bo + s).clamp(0.0, 6.0)
                    })
                    .sum::<f32>()
                    / p as f32
            })
            .collect()
    }

    #[test]
    fn forward_is_the_formula_in_chunks_and_with_either_weights() {
        let mut rng = StdRng::seed_from_u64(2);
        let p = small(&mut rng);
        let mut block = p.build(2).unwrap();
        let maps: Vec<f32> = random(5 * p.input_dim(), &mut rng).iter().map(|v| v * 3.0).collect();
        let mut out = vec![0.0; 5 * 6];
        block.forward_into(&maps, &mut out, Weights::Current).unwrap();
        for (map, e) in maps.chunks_exact(p.input_dim()).zip(out.chunks_exact(6)) {
            let want = embed(&p.conv.weight, &p.conv.bias, 5, 3, map);
            for (x, y) in e.iter().zip(&want) {
                assert!((x - y).abs() < 1e-5);
            }
        }
        assert!(block.backward(&[0.0; 5 * 6]).is_err(), "5 rows > max_rows 2: no backward");
        // after a step the current weights move, the shipped ones do not
        block.forward_into(&maps[..2 * 15], &mut out[..12], Weights::Current).unwrap();
        block.backward(&[1.0; 12]).unwrap();
        block.step();
        let mut cur = vec![0.0; 6];
        let mut shipped = vec![0.0; 6];
        block.forward_into(&maps[..15], &mut cur, Weights::Current).unwrap();
        block.forward_into(&maps[..15], &mut shipped, Weights::Shipped).unwrap();
        let want = embed(&p.conv.weight, &p.conv.bias, 5, 3, &maps[..15]);
        assert!(shipped.iter().zip(&want).all(|(x, y)| (x - y).abs() < 1e-5));
        assert!(cur.iter().zip(&want).any(|(x, y)| (x - y).abs() > 1e-3));
    }

    #[test]
    fn backward_matches_finite_differences() {
        let mut rng = StdRng::seed_from_u64(3);
        let p = small(&mut rng);
        let (ci, co) = (5, 6);
        let mut block = p.build(4).unwrap();
        let maps: Vec<f32> = random(3 * p.input_dim(), &mut rng);
        let de = random(3 * co, &mut rng);
        // loss = sum de . e
        let loss = |w: &[f32], b: &[f32]| -> f64 {
            maps.chunks_exact(p.input_dim())
                .zip(de.chunks_exact(co))
                .map(|(m, g)| {
                    embed(w, b, ci, 3, m).iter().zip(g).map(|(e, g)| f64::from(e * g)).sum::<f64>()
                })
                .sum()
        };
        let mut out = vec![0.0; 3 * co];
        block.forward_into(&maps, &mut out, Weights::Current).unwrap();
        block.backward(&de).unwrap();
        let (w, b) = (p.conv.weight.clone(), p.conv.bias.clone());
        let h = 1e-3;
        for i in 0..w.len() {
            let (mut wp, mut wm) = (w.clone(), w.clone());
            wp[i] += h;
            wm[i] -= h;
            let fd = (loss(&wp, &b) - loss(&wm, &b)) / (2.0 * f64::from(h));
            assert!((fd - f64::from(block.gw[i])).abs() < 2e-3, "w[{i}]: {fd} vs {}", block.gw[i]);
        }
        for o in 0..b.len() {
            let (mut bp, mut bm) = (b.clone(), b.clone());
            bp[o] += h;
            bm[o] -= h;
            let fd = (loss(&w, &bp) - loss(&w, &bm)) / (2.0 * f64::from(h));
            assert!((fd - f64::from(block.gb[o])).abs() < 2e-3, "b[{o}]: {fd} vs {}", block.gb[o]);
        }
    }

    #[test]
    fn step_is_momentum_sgd_with_l2sp_towards_the_shipped_weights() {
        let conv = PointwiseConv { inputs: 1, outputs: 1, weight: vec![1.0], bias: vec![0.0] };
        let mut p = AdaptParams::new(conv, 1);
        (p.lr, p.momentum, p.l2sp, p.average_decay) = (0.1, 0.5, 0.2, 0.99);
        let mut block = p.build(1).unwrap();
        let mut e = [0.0];
        block.forward_into(&[2.0], &mut e, Weights::Current).unwrap();
        assert_eq!(e, [2.0]);
        block.backward(&[1.0]).unwrap(); // dL/dw = x = 2, dL/db = 1
        block.step(); // m = 2, w = 1 - 0.2 = 0.8; mb = 1, b = -0.1
        assert!((block.w[0] - 0.8).abs() < 1e-6 && (block.b[0] + 0.1).abs() < 1e-6);
        block.forward_into(&[2.0], &mut e, Weights::Current).unwrap();
        block.backward(&[0.0]).unwrap();
        block.step(); // m = 0.5 * 2 + 0 + 0.2 * (0.8 - 1) = 0.96, w = 0.8 - 0.096
        assert!((block.w[0] - 0.704).abs() < 1e-6, "{}", block.w[0]);
        // the average: d = 0.99, wa = 0.99 (0.99 + 0.01 0.8) + 0.01 0.704
        let want = 0.99 * (0.99 + 0.01 * 0.8) + 0.01 * 0.704;
        assert!((block.wa[0] - want).abs() < 1e-6, "{} vs {want}", block.wa[0]);
        block.forward_into(&[2.0], &mut e, Weights::Average).unwrap();
        assert!((e[0] - (2.0 * block.wa[0] + block.ba[0])).abs() < 1e-6);
        assert!((block.b[0] + 0.15).abs() < 1e-6, "{}", block.b[0]);
    }

    #[test]
    fn bad_params_and_inputs_are_errors() {
        let mut rng = StdRng::seed_from_u64(4);
        let p = small(&mut rng);
        let mut q = p.clone();
        q.conv.bias.pop();
        assert!(q.check().is_err());
        q = p.clone();
        q.momentum = 1.0;
        assert!(q.check().is_err());
        q = p.clone();
        q.every = 0;
        assert!(q.check().is_err());
        let mut block = p.build(2).unwrap();
        let mut out = vec![0.0; 6];
        assert!(block.forward_into(&[0.0; 14], &mut out, Weights::Current).is_err());
        let mut nan = vec![0.0; 15];
        nan[3] = f32::NAN;
        assert!(matches!(
            block.forward_into(&nan, &mut out, Weights::Current),
            Err(Error::NonFinite { .. })
        ));
    }

    #[test]
    fn the_map_store_keeps_a_map_within_its_byte_resolution() {
        let mut rng = StdRng::seed_from_u64(5);
        let mut store = MapStore::new(3, 40);
        let map = random(40, &mut rng);
        store.put(1, &map);
        let mut back = vec![0.0; 40];
        store.get_into(1, &mut back);
        let max = map.iter().fold(0f32, |a, v| a.max(v.abs()));
        assert!(map.iter().zip(&back).all(|(a, b)| (a - b).abs() <= max / 254.0 + 1e-6));
        let mut direct = vec![0.0; 40];
        MapStore::stored_form(&map, &mut direct);
        assert_eq!(direct, back, "stored_form is what get_into returns");
        store.get_into(0, &mut back);
        assert!(back.iter().all(|&v| v == 0.0), "an empty slot decodes to zeros");
    }
}
