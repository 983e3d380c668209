//! Detection metrics for OOD scores (higher score = more out of distribution).

/// Area under the ROC curve for separating `out_scores` (positives) from `in_scores`
/// (negatives): the probability that a random OOD sample scores above a random in-distribution
/// one, ties counting one half (Mann-Whitney U). `NaN` if either set is empty.
pub fn auroc(in_scores: &[f32], out_scores: &[f32]) -> f64 {
    if in_scores.is_empty() || out_scores.is_empty() {
        return f64::NAN;
    }
    let mut all: Vec<(f32, bool)> = in_scores
        .iter()
        .map(|&s| (s, false))
        .chain(out_scores.iter().map(|&s| (s, true)))
        .collect();
    all.sort_by(|a, b| a.0.total_cmp(&b.0));
    // average ranks over ties
    let mut rank_sum_out = 0.0;
    let mut i = 0;
    while i < all.len() {
        let mut j = i;
        while j < all.len() && all[j].0.total_cmp(&all[i].0).is_eq() {
            j += 1;
        }
        let avg = (i + j + 1) as f64 / 2.0; // ranks i+1..=j
        rank_sum_out += avg * all[i..j].iter().filter(|e| e.1).count() as f64;
        i = j;
    }
    let (n_in, n_out) = (in_scores.len() as f64, out_scores.len() as f64);
    (rank_sum_out - n_out * (n_out + 1.0) / 2.0) / (n_in * n_out)
}

/// False-positive rate at `tpr` true-positive rate, in the usual OOD convention: the threshold
/// keeps `tpr` of the IN-distribution samples (the `tpr` quantile of `in_scores`), and the result
/// is the fraction of OOD samples that pass it (score <= threshold). `NaN` if either is empty.
pub fn fpr_at_tpr(in_scores: &[f32], out_scores: &[f32], tpr: f64) -> f64 {
    if in_scores.is_empty() || out_scores.is_empty() {
        return f64::NAN;
    }
    let mut s = in_scores.to_vec();
    s.sort_by(f32::total_cmp);
    let r = ((tpr * s.len() as f64).ceil() as usize).clamp(1, s.len());
    let t = s[r - 1];
    out_scores.iter().filter(|&&v| v <= t).count() as f64 / out_scores.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auroc_hand_values() {
        assert_eq!(auroc(&[0.0, 1.0], &[2.0, 3.0]), 1.0);
        assert_eq!(auroc(&[2.0, 3.0], &[0.0, 1.0]), 0.0);
        assert_eq!(auroc(&[1.0], &[1.0]), 0.5);
        assert_eq!(auroc(&[0.0, 2.0], &[1.0, 3.0]), 0.75);
    }

    #[test]
    fn fpr_hand_values() {
        let ins: Vec<f32> = (0..100).map(|i| i as f32).collect();
        // threshold = 95th smallest = 94.0; OOD 90..110 step 1 -> 90..=94 pass = 5 of 20
        let outs: Vec<f32> = (90..110).map(|i| i as f32).collect();
        assert!((fpr_at_tpr(&ins, &outs, 0.95) - 0.25).abs() < 1e-12);
    }
}
