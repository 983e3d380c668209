//! Running a learner over a stream of embeddings and measuring it: test accuracy over the
//! stream, pseudo-label precision and coverage, what the gate let through, throughput.
//!
//! The backbone is frozen, so a scenario works on embeddings computed once (see
//! [`crate::embed::EmbeddingCache`]); every algorithm then sees the identical stream.
//!
//! # Examples
//! ```
//! use edge_ssl::learner::{Algorithm, LearnerParams};
//! use edge_ssl::scenario::{Stream, StreamItem, run_stream};
//!
//! let (a, b) = ([1.0f32, 0.0], [0.0f32, 1.0]);
//! let stream = Stream {
//!     dim: 2,
//!     labeled: vec![(&a[..], 0), (&b[..], 1)],
//!     items: vec![StreamItem { x: &a, truth: Some(0) }; 50],
//!     test: &[1.0, 0.1, 0.1, 1.0],
//!     test_y: &[0, 1],
//!     ood_test: &[],
//! };
//! let mut p = LearnerParams::new(2, 2);
//! p.gate = None;
//! let r = run_stream(&p, &stream, false, 25, |_| {})?;
//! assert_eq!(r.accuracy, 1.0);
//! assert_eq!(r.curve.len(), 3); // at 0, 25 and 50 samples
//! # Ok::<(), edge_ssl::Error>(())
//! ```

use std::time::Instant;

use crate::error::{Error, Result};
use crate::learner::{LearnerParams, Outcome};

/// One unlabeled sample of a stream, with the truth the learner never sees.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StreamItem<'a> {
    /// The embedding.
    pub x: &'a [f32],
    /// Its class, or `None` for an out-of-distribution sample.
    pub truth: Option<u32>,
}

/// A scenario: the few labels, the unlabeled stream and the test data, all as embeddings.
#[derive(Debug, Clone)]
pub struct Stream<'a> {
    /// Embedding dimension.
    pub dim: usize,
    /// The labelled examples, observed first.
    pub labeled: Vec<(&'a [f32], u32)>,
    /// The unlabeled stream, in order.
    pub items: Vec<StreamItem<'a>>,
    /// Test embeddings `[n, dim]` (in distribution).
    pub test: &'a [f32],
    /// Test labels `[n]`.
    pub test_y: &'a [u32],
    /// Out-of-distribution test embeddings `[m, dim]` (may be empty), for the gate's scores.
    pub ood_test: &'a [f32],
}

/// One point of a learning curve.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CurvePoint {
    /// Stream samples observed so far.
    pub samples: usize,
    /// Test accuracy then.
    pub accuracy: f64,
    /// Precision of the pseudo-labels admitted so far (NaN before the first).
    pub pseudo_precision: f64,
}

/// What one run measured.
#[derive(Debug, Clone, PartialEq)]
pub struct RunResult {
    /// Final test accuracy.
    pub accuracy: f64,
    /// Fraction of admitted pseudo-labels that are right (out-of-distribution ones count as
    /// wrong); NaN if none was admitted.
    pub pseudo_precision: f64,
    /// Admitted samples / stream samples.
    pub pseudo_coverage: f64,
    /// Out-of-distribution stream samples that were admitted / all admitted.
    pub admitted_ood_share: f64,
    /// Stream samples the gate rejected.
    pub gated: u64,
    /// In-distribution stream samples the gate rejected.
    pub gated_in: u64,
    /// Out-of-distribution stream samples.
    pub stream_ood: u64,
    /// Stream samples per second of learner time (labels, stream and evaluations excluded).
    pub samples_per_s: f64,
    /// Test accuracy and precision along the stream.
    pub curve: Vec<CurvePoint>,
    /// Gate scores of the test set (in distribution), empty without a fitted gate.
    pub in_scores: Vec<f32>,
    /// Gate scores of the out-of-distribution test set.
    pub out_scores: Vec<f32>,
    /// The gate threshold, if fitted.
    pub threshold: Option<f32>,
    /// Precision of the bank's pseudo entries at the end of the stream, at coverage 25, 50,
    /// 75 and 100% when ranked by the teacher's stored confidence: the calibration curve of the
    /// pseudo-labels (out-of-distribution entries count as wrong). NaN where empty.
    pub bank_precision: [f64; 4],
    /// The same for the propagated labels of the last graph refresh, ranked by their weight
    /// (all NaN without label propagation).
    pub propagated_precision: [f64; 4],
    /// The teacher's temperature at the end (1 without
    /// [`crate::learner::LearnerParams::temperature_scaling`]).
    pub temperature: f32,
}

/// Coverage points of [`RunResult::bank_precision`].
pub const COVERAGE: [f64; 4] = [0.25, 0.5, 0.75, 1.0];

fn embedding_key(x: &[f32]) -> u64 {
    use std::hash::Hasher;
    let mut h = std::collections::hash_map::DefaultHasher::new();
    x.iter().for_each(|v| h.write_u32(v.to_bits()));
    h.finish()
}

/// Precision among the top 25/50/75/100% of `(score, right)` by score.
fn precision_at_coverage(mut v: Vec<(f32, bool)>) -> [f64; 4] {
    v.sort_by(|a, b| b.0.total_cmp(&a.0));
    COVERAGE.map(|c| {
        let n = (c * v.len() as f64).round() as usize;
        if n == 0 { f64::NAN } else { v[..n].iter().filter(|e| e.1).count() as f64 / n as f64 }
    })
}

/// The calibration curves of the bank's pseudo entries and of their propagated labels.
fn bank_curves(l: &crate::learner::Learner, stream: &Stream<'_>) -> ([f64; 4], [f64; 4]) {
    let mut x = vec![0f32; stream.dim];
    let truth: std::collections::HashMap<u64, Option<u32>> = stream
        .items
        .iter()
        .filter_map(|it| {
            l.stored_form_into(it.x, &mut x).ok()?;
            Some((embedding_key(&x), it.truth))
        })
        .collect();
    let bank = l.bank();
    let (mut teacher, mut prop) = (Vec::new(), Vec::new());
    for e in bank.iter().filter(|e| e.kind() == crate::bank::LabelKind::Pseudo) {
        if l.stored_row_into(e.slot(), &mut x).is_err() {
            continue;
        }
        let t = truth.get(&embedding_key(&x)).copied().flatten();
        teacher.push((e.confidence(), t == Some(e.label())));
        if let Some((c, w)) = l.propagation().and_then(|p| p.target(bank, e.slot())) {
            prop.push((w, t == Some(c)));
        }
    }
    (precision_at_coverage(teacher), precision_at_coverage(prop))
}

fn test_accuracy(l: &mut crate::learner::Learner, s: &Stream<'_>) -> Result<f64> {
    let mut right = 0usize;
    for (x, &y) in s.test.chunks_exact(s.dim).zip(s.test_y) {
        right += usize::from(l.predict(x)?.class == y);
    }
    Ok(right as f64 / s.test_y.len().max(1) as f64)
}

/// Runs a learner built from `params` over `stream`: the labels, then every stream item (as
/// labeled with its truth when `oracle`, skipping out-of-distribution items; else unlabeled),
/// measuring test accuracy every `eval_every` items. `progress` gets the items done.
///
/// # Errors
/// [`Error::ShapeMismatch`] if the test set is not `[test_y.len(), dim]`; the learner's errors.
pub fn run_stream(
    params: &LearnerParams,
    stream: &Stream<'_>,
    oracle: bool,
    eval_every: usize,
    mut progress: impl FnMut(usize),
) -> Result<RunResult> {
    let d = stream.dim;
    if stream.test.len() != stream.test_y.len() * d
        || !stream.ood_test.len().is_multiple_of(d.max(1))
    {
        return Err(Error::ShapeMismatch {
            op: "run_stream(test)",
            expected: format!("[{}, {d}] test and [m, {d}] ood_test", stream.test_y.len()),
            got: format!("{} and {} values", stream.test.len(), stream.ood_test.len()),
        });
    }
    let mut l = params.build()?;
    for &(x, y) in &stream.labeled {
        l.observe_labeled(x, y)?;
    }
    let every = eval_every.max(1);
    let mut curve = vec![CurvePoint {
        samples: 0,
        accuracy: test_accuracy(&mut l, stream)?,
        pseudo_precision: f64::NAN,
    }];
    let (mut admitted, mut right, mut admitted_ood, mut gated_in, mut stream_ood) =
        (0u64, 0u64, 0u64, 0u64, 0u64);
    let mut learn_time = std::time::Duration::ZERO;
    for (i, item) in stream.items.iter().enumerate() {
        stream_ood += u64::from(item.truth.is_none());
        let t = Instant::now();
        if oracle {
            if let Some(y) = item.truth {
                l.observe_labeled(item.x, y)?;
            }
        } else {
            match l.observe(item.x)? {
                Outcome::Admitted(c) => {
                    admitted += 1;
                    right += u64::from(item.truth == Some(c));
                    admitted_ood += u64::from(item.truth.is_none());
                }
                Outcome::Gated => gated_in += u64::from(item.truth.is_some()),
                Outcome::WarmingUp | Outcome::Deferred => {}
            }
        }
        learn_time += t.elapsed();
        let done = i + 1;
        if done % every == 0 || done == stream.items.len() {
            curve.push(CurvePoint {
                samples: done,
                accuracy: test_accuracy(&mut l, stream)?,
                pseudo_precision: if admitted > 0 {
                    right as f64 / admitted as f64
                } else {
                    f64::NAN
                },
            });
            progress(done);
        }
    }
    let (bank_precision, propagated_precision) = bank_curves(&l, stream);
    let (mut in_scores, mut out_scores) = (Vec::new(), Vec::new());
    if l.gate_fitted() {
        for x in stream.test.chunks_exact(d) {
            in_scores.extend(l.predict(x)?.ood_score);
        }
        for x in stream.ood_test.chunks_exact(d) {
            out_scores.extend(l.predict(x)?.ood_score);
        }
    }
    let n = stream.items.len().max(1) as f64;
    Ok(RunResult {
        accuracy: curve.last().map_or(0.0, |c| c.accuracy),
        pseudo_precision: if admitted > 0 { right as f64 / admitted as f64 } else { f64::NAN },
        pseudo_coverage: admitted as f64 / n,
        admitted_ood_share: if admitted > 0 { admitted_ood as f64 / admitted as f64 } else { 0.0 },
        gated: l.counters().gated,
        gated_in,
        stream_ood,
        samples_per_s: stream.items.len() as f64 / learn_time.as_secs_f64().max(1e-9),
        curve,
        in_scores,
        out_scores,
        threshold: l.gate_threshold(),
        bank_precision,
        propagated_precision,
        temperature: l.temperature(),
    })
}
