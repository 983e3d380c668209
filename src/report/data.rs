//! Pure data preparation for the plots: dropping unplottable values, axis ranges, histogram bins
//! and tick labels. No drawing here, so every rule is unit-tested on numbers.

/// Values with a larger magnitude are treated like NaN: skipped. Keeps every range and padding
/// computation far from `f64` overflow.
pub(super) const MAX_ABS: f64 = 1e300;

/// `true` for a value that can be placed on an axis (finite, `|v| <= MAX_ABS`).
pub(super) fn plottable(v: f64) -> bool {
    v.is_finite() && v.abs() <= MAX_ABS
}

/// The plottable points, in their original order, and the number skipped.
pub(super) fn clean_points(points: &[(f64, f64)]) -> (Vec<(f64, f64)>, usize) {
    let kept: Vec<(f64, f64)> =
        points.iter().copied().filter(|&(x, y)| plottable(x) && plottable(y)).collect();
    let skipped = points.len() - kept.len();
    (kept, skipped)
}

/// The plottable scores as `f64`, and the number skipped.
pub(super) fn clean_scores(scores: &[f32]) -> (Vec<f64>, usize) {
    let kept: Vec<f64> = scores.iter().map(|&v| f64::from(v)).filter(|&v| plottable(v)).collect();
    let skipped = scores.len() - kept.len();
    (kept, skipped)
}

/// `(min, max)` of `values`, `None` when empty. Callers pass plottable values only.
pub(super) fn extent(values: impl IntoIterator<Item = f64>) -> Option<(f64, f64)> {
    values.into_iter().fold(None, |acc, v| match acc {
        None => Some((v, v)),
        Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
    })
}

/// The union of two optional ranges.
pub(super) fn union(a: Option<(f64, f64)>, b: Option<(f64, f64)>) -> Option<(f64, f64)> {
    match (a, b) {
        (Some((a0, a1)), Some((b0, b1))) => Some((a0.min(b0), a1.max(b1))),
        (a, None) => a,
        (None, b) => b,
    }
}

/// Widens `(lo, hi)` by `frac` of its span on each side; a degenerate range (`lo == hi`, e.g. a
/// single point or all-equal values) becomes `v ± max(|v| / 10, 0.5)`. The result always has
/// `lo < hi` and a finite span when the input is plottable.
pub(super) fn pad(lo: f64, hi: f64, frac: f64) -> (f64, f64) {
    if hi > lo {
        let m = (hi - lo) * frac;
        (lo - m, hi + m)
    } else {
        let m = (lo.abs() / 10.0).max(0.5);
        (lo - m, lo + m)
    }
}

/// Histogram counts of two sets over the same equal-width bins.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Bins {
    /// Left edge of the first bin.
    pub lo: f64,
    /// Width of every bin (> 0).
    pub width: f64,
    /// Counts of the first set, one per bin.
    pub first: Vec<usize>,
    /// Counts of the second set, one per bin.
    pub second: Vec<usize>,
}

impl Bins {
    /// Bins `first` and `second` (plottable values) together: the range is the extent of both, the bin
    /// count `ceil(sqrt(n))` clamped to `5..=40` for the larger set. When all values are equal the
    /// range is padded and the count made odd, so the value sits in the middle of the middle bin.
    /// `None` when both sets are empty.
    pub(super) fn new(first: &[f64], second: &[f64]) -> Option<Self> {
        let (lo, hi) = extent(first.iter().chain(second).copied())?;
        let n = first.len().max(second.len());
        // `sqrt` of a usize is exact enough here; the clamp bounds the cast.
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            clippy::cast_precision_loss
        )]
        let k = ((n as f64).sqrt().ceil() as usize).clamp(5, 40);
        // All values equal: a symmetric padded range and an odd bin count centre them in a bin.
        let (lo, hi, k) = if hi > lo {
            (lo, hi, k)
        } else {
            let (lo, hi) = pad(lo, hi, 0.0);
            (lo, hi, k | 1)
        };
        #[allow(clippy::cast_precision_loss)]
        let width = (hi - lo) / k as f64;
        let count = |vals: &[f64]| {
            let mut c = vec![0usize; k];
            for &v in vals {
                // Truncation is the binning; the max value lands in the last bin.
                #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                let i = (((v - lo) / width).floor().max(0.0) as usize).min(k - 1);
                c[i] += 1;
            }
            c
        };
        Some(Bins { lo, width, first: count(first), second: count(second) })
    }

    /// Right edge of the last bin.
    pub(super) fn hi(&self) -> f64 {
        #[allow(clippy::cast_precision_loss)]
        let k = self.first.len() as f64;
        self.lo + self.width * k
    }

    /// `(left, right)` edges of bin `i`.
    pub(super) fn edges(&self, i: usize) -> (f64, f64) {
        #[allow(clippy::cast_precision_loss)]
        let left = self.lo + self.width * i as f64;
        (left, left + self.width)
    }
}

/// Each count as a fraction of `total` (all zeros when `total == 0`).
pub(super) fn fractions(counts: &[usize], total: usize) -> Vec<f64> {
    #[allow(clippy::cast_precision_loss)]
    counts.iter().map(|&c| if total == 0 { 0.0 } else { c as f64 / total as f64 }).collect()
}

/// Formats a tick value on an axis spanning `span`: as many decimals as a tenth of the span
/// needs (at most 6), scientific notation for very large or very small magnitudes, no `-0`.
pub(super) fn tick_label(v: f64, span: f64) -> String {
    let step = (span / 10.0).abs();
    let big = v.abs() >= 1e7;
    let tiny = step > 0.0 && step < 1e-6;
    if big || tiny {
        if v == 0.0 {
            return "0".to_owned();
        }
        // `2.50e9` -> `2.5e9`, `1.00e8` -> `1e8`.
        let s = format!("{v:.2e}");
        return match s.split_once('e') {
            Some((m, e)) => format!("{}e{e}", m.trim_end_matches('0').trim_end_matches('.')),
            None => s,
        };
    }
    // Bounded to 0..=6 before the cast.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let decimals = if step == 0.0 {
        2
    } else if step >= 1.0 {
        0
    } else {
        (-step.log10()).ceil().clamp(0.0, 6.0) as usize
    };
    let s = format!("{v:.decimals$}");
    // A tiny negative value rounds to `-0.0`: drop the sign.
    if s.trim_start_matches('-').chars().all(|c| c == '0' || c == '.') {
        s.replace('-', "")
    } else {
        s
    }
}

/// Shortens `s` to at most `max` characters, ending with `…` when cut.
pub(super) fn ellipsize(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
        out.push('…');
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_points_skips_nan_inf_and_huge_keeping_order() {
        let pts = [(0.0, 0.5), (1.0, f64::NAN), (f64::INFINITY, 0.2), (2.0, 1e301), (3.0, 0.7)];
        let (kept, skipped) = clean_points(&pts);
        assert_eq!(kept, vec![(0.0, 0.5), (3.0, 0.7)]);
        assert_eq!(skipped, 3);
    }

    #[test]
    fn clean_scores_skips_non_finite() {
        let (kept, skipped) = clean_scores(&[0.5, f32::NAN, f32::NEG_INFINITY, 2.0]);
        assert_eq!(kept, vec![0.5, 2.0]);
        assert_eq!(skipped, 2);
    }

    #[test]
    fn extent_of_empty_is_none() {
        assert_eq!(extent(std::iter::empty()), None);
        assert_eq!(extent([3.0, -1.0, 2.0]), Some((-1.0, 3.0)));
    }

    #[test]
    fn union_of_ranges() {
        assert_eq!(union(Some((0.0, 1.0)), Some((-1.0, 0.5))), Some((-1.0, 1.0)));
        assert_eq!(union(None, Some((2.0, 3.0))), Some((2.0, 3.0)));
        assert_eq!(union(None, None), None);
    }

    #[test]
    fn pad_never_returns_an_empty_range() {
        for v in [0.0, 0.5, -3.0, 1e300, -1e300, 5e-324] {
            let (lo, hi) = pad(v, v, 0.05);
            assert!(lo < hi && (hi - lo).is_finite(), "{v}: {lo}..{hi}");
            assert!(lo <= v && v <= hi);
        }
        assert_eq!(pad(0.0, 10.0, 0.1), (-1.0, 11.0));
        let (lo, hi) = pad(-1e300, 1e300, 0.05);
        assert!(lo.is_finite() && hi.is_finite() && (hi - lo).is_finite());
    }

    #[test]
    fn bins_share_edges_and_count_every_value() {
        let a = [0.0, 0.1, 0.2, 0.9, 1.0];
        let b = [0.5, 0.55];
        let bins = Bins::new(&a, &b).unwrap();
        assert_eq!(bins.first.len(), 5);
        assert_eq!(bins.first.iter().sum::<usize>(), 5);
        assert_eq!(bins.second.iter().sum::<usize>(), 2);
        assert_eq!(*bins.first.last().unwrap(), 2, "the max value lands in the last bin");
        assert!((bins.hi() - 1.0).abs() < 1e-12);
        assert!(bins.edges(0).0.abs() < 1e-12);
    }

    #[test]
    fn bins_of_all_equal_values_are_padded() {
        let bins = Bins::new(&[0.3; 10], &[]).unwrap();
        assert!(bins.width > 0.0);
        assert_eq!(bins.first.iter().sum::<usize>(), 10);
        assert!(bins.lo < 0.3 && 0.3 < bins.hi());
    }

    #[test]
    fn bins_of_all_equal_values_centre_them() {
        let bins = Bins::new(&[0.4; 50], &[]).unwrap();
        assert_eq!(bins.first.len() % 2, 1);
        let mid = bins.first.len() / 2;
        assert_eq!(bins.first[mid], 50);
        let (l, r) = bins.edges(mid);
        assert!((f64::midpoint(l, r) - 0.4).abs() < 1e-9);
    }

    #[test]
    fn bins_of_nothing_is_none() {
        assert_eq!(Bins::new(&[], &[]), None);
    }

    #[test]
    fn bin_count_grows_with_sqrt_n_and_is_clamped() {
        let many: Vec<f64> = (0..10_000).map(f64::from).collect();
        assert_eq!(Bins::new(&many, &[]).unwrap().first.len(), 40);
        let some: Vec<f64> = (0..100).map(f64::from).collect();
        assert_eq!(Bins::new(&some, &[]).unwrap().first.len(), 10);
        assert_eq!(Bins::new(&[1.0, 2.0], &[]).unwrap().first.len(), 5);
    }

    #[test]
    fn fractions_of_zero_total_are_zero() {
        assert_eq!(fractions(&[0, 0], 0), vec![0.0, 0.0]);
        assert_eq!(fractions(&[1, 3], 4), vec![0.25, 0.75]);
    }

    #[test]
    fn tick_labels_are_short() {
        assert_eq!(tick_label(0.2, 1.0), "0.2");
        assert_eq!(tick_label(0.25, 0.5), "0.25");
        assert_eq!(tick_label(5000.0, 50_000.0), "5000");
        assert_eq!(tick_label(-0.0001, 1.0), "0.0");
        assert_eq!(tick_label(2.5e9, 1e10), "2.5e9");
        assert_eq!(tick_label(1e8, 4e8), "1e8");
        assert_eq!(tick_label(-3e-7, 4e-7), "-3e-7");
        assert_eq!(tick_label(0.0, 4e-7), "0");
        assert_eq!(tick_label(0.0, 0.15), "0.00");
        assert_eq!(tick_label(0.5, 0.0), "0.50");
    }

    #[test]
    fn ellipsize_cuts_on_chars() {
        assert_eq!(ellipsize("fixmatch+gate", 20), "fixmatch+gate");
        assert_eq!(ellipsize("ééééé", 3), "éé…");
    }
}
