//! SVG plots for the `report/` folder of `edge-ssl run` and `edge-ssl experiment`.
//!
//! Every function takes plain data (no other `edge-ssl` type), renders a self-contained SVG
//! (960×540, text as SVG `<text>` in the generic `sans-serif` family: no font files, no system
//! fonts, no network) and writes it atomically (see below).
//!
//! | function | plot |
//! | --- | --- |
//! | [`accuracy_over_stream`] | test accuracy vs samples observed, one line per algorithm |
//! | [`precision_over_time`] | pseudo-label precision (and coverage) vs samples observed |
//! | [`score_histograms`] | OOD score histograms, in- vs out-of-distribution, with the threshold |
//! | [`line_chart`] | the generic line chart under the first two |
//!
//! # Robustness
//! Plots are written at the end of long runs, so bad *data* never fails them:
//! - NaN, infinite and absurdly large (`|v| > 1e300`) values are skipped; the image then says
//!   how many were (`3 non-finite values skipped`, bottom left);
//! - no series, empty series or only skipped values give axes and a centred "no data";
//! - a single point, or all-equal values, get a padded axis range (single points are drawn as a
//!   marker; every series with at most 60 points has markers).
//!
//! Only a bad *parameter* ([`Chart::y_range`] not finite or not increasing) is an error.
//!
//! # Atomic writes
//! Each file is written to a unique hidden temporary file in the same folder
//! (`.<name>.tmp.<pid>.<n>`), `fsync`ed and renamed over the target: a reader (or a crash) sees
//! the previous plot or the complete new one. The parent folder is created if missing.

mod atomic;
mod data;
mod draw;

use std::path::Path;

use crate::error::{Error, Result};

/// One named line: `(x, y)` points drawn in the given order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Series {
    /// Legend label, e.g. `"fixmatch+gate"`. Labels longer than 30 characters are shortened
    /// with `…` in the legend.
    pub name: String,
    /// The points, in drawing order. Points with a non-finite coordinate are skipped (the line
    /// joins their neighbours).
    pub points: Vec<(f64, f64)>,
}

impl Series {
    /// A series named `name` with `points`.
    ///
    /// # Examples
    /// ```
    /// use edge_ssl::report::Series;
    /// let s = Series::new("supervised", [(0.0, 0.1), (1000.0, 0.62)]);
    /// assert_eq!(s.points.len(), 2);
    /// ```
    pub fn new(name: impl Into<String>, points: impl IntoIterator<Item = (f64, f64)>) -> Self {
        Series { name: name.into(), points: points.into_iter().collect() }
    }
}

/// A line chart: what [`line_chart`] draws.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Chart<'a> {
    /// Title above the plot.
    pub title: &'a str,
    /// Label of the x axis.
    pub x_label: &'a str,
    /// Label of the y axis.
    pub y_label: &'a str,
    /// Fixed y range `(min, max)`, e.g. `(0.0, 1.0)` for an accuracy. Must be finite with
    /// `min < max`. The axis still widens to show points outside it. `None`: the data's range
    /// plus 5% on each side.
    pub y_range: Option<(f64, f64)>,
    /// The lines, one legend entry each, coloured in order (Okabe–Ito palette; dashed after 7).
    pub series: &'a [Series],
}

/// x-axis label of the stream plots.
const SAMPLES_OBSERVED: &str = "samples observed";

/// Checks [`Chart::y_range`]: finite ends (`|v| <= 1e300`) and `min < max`.
fn check_y_range(y_range: Option<(f64, f64)>) -> Result<()> {
    match y_range {
        Some((lo, hi)) if !(data::plottable(lo) && data::plottable(hi)) => {
            Err(Error::InvalidParam {
                name: "y_range",
                reason: format!("({lo}, {hi}) is not finite"),
            })
        }
        Some((lo, hi)) if lo >= hi => Err(Error::InvalidParam {
            name: "y_range",
            reason: format!("({lo}, {hi}): min must be below max"),
        }),
        _ => Ok(()),
    }
}

/// Draws `chart` as an SVG line chart (title, axis labels, grid, legend right of the plot) and
/// writes it atomically to `path`. The x range is the data's; the y range is
/// [`Chart::y_range`] or the data's, padded. See the [module docs](self) for how empty series,
/// single points, NaN and all-equal values are drawn.
///
/// # Errors
/// - [`Error::InvalidParam`] (`y_range`) when [`Chart::y_range`] is not finite or not
///   increasing;
/// - [`Error::Plot`] if the plotting library fails (not expected: it draws into memory);
/// - [`Error::Io`] if the folder, the temporary file or the rename fails.
///
/// # Examples
/// ```
/// use edge_ssl::report::{Chart, Series, line_chart};
/// # let dir = std::env::temp_dir().join(format!("edge-ssl-doc-line-{}", std::process::id()));
/// let series = [Series::new("loss", [(0.0, 2.3), (100.0, 1.1), (200.0, 0.7)])];
/// let chart = Chart {
///     title: "Training loss",
///     x_label: "step",
///     y_label: "cross-entropy",
///     y_range: None,
///     series: &series,
/// };
/// line_chart(dir.join("report/loss.svg"), &chart)?;
/// let svg = std::fs::read_to_string(dir.join("report/loss.svg")).unwrap();
/// assert!(svg.contains("Training loss") && svg.trim_end().ends_with("</svg>"));
/// # std::fs::remove_dir_all(dir).unwrap();
/// # Ok::<(), edge_ssl::Error>(())
/// ```
pub fn line_chart(path: impl AsRef<Path>, chart: &Chart<'_>) -> Result<()> {
    let path = path.as_ref();
    check_y_range(chart.y_range)?;
    let svg =
        draw::line_chart_svg(chart).map_err(|source| Error::Plot { path: path.into(), source })?;
    atomic::write_atomic(path, svg.as_bytes())
}

/// Plots test accuracy (y, fixed to `0..1`) against samples observed (x), one line per
/// algorithm (e.g. `"supervised"`, `"fixmatch+gate"`, `"oracle"`), and writes the SVG to `path`.
/// A [`line_chart`] with fixed labels.
///
/// # Errors
/// [`Error::Plot`] or [`Error::Io`], as [`line_chart`].
///
/// # Examples
/// ```
/// use edge_ssl::report::{Series, accuracy_over_stream};
/// # let dir = std::env::temp_dir().join(format!("edge-ssl-doc-acc-{}", std::process::id()));
/// let runs = [
///     Series::new("supervised", [(0.0, 0.10), (500.0, 0.52), (1000.0, 0.61)]),
///     Series::new("fixmatch+gate", [(0.0, 0.10), (500.0, 0.58), (1000.0, 0.70)]),
/// ];
/// let path = dir.join("report/accuracy.svg");
/// accuracy_over_stream(&path, "CIFAR-10, 40 labels", &runs)?;
/// assert!(std::fs::read_to_string(&path).unwrap().contains("fixmatch+gate"));
/// # std::fs::remove_dir_all(dir).unwrap();
/// # Ok::<(), edge_ssl::Error>(())
/// ```
pub fn accuracy_over_stream(path: impl AsRef<Path>, title: &str, series: &[Series]) -> Result<()> {
    line_chart(
        path,
        &Chart {
            title,
            x_label: SAMPLES_OBSERVED,
            y_label: "test accuracy",
            y_range: Some((0.0, 1.0)),
            series,
        },
    )
}

/// Plots pseudo-label precision — and, as further series, coverage or anything else in `0..1`
/// (name them, e.g. `"precision"`, `"coverage"`) — against samples observed, and writes the SVG
/// to `path`. A [`line_chart`] with fixed labels and y fixed to `0..1`.
///
/// # Errors
/// [`Error::Plot`] or [`Error::Io`], as [`line_chart`].
///
/// # Examples
/// ```
/// use edge_ssl::report::{Series, precision_over_time};
/// # let dir = std::env::temp_dir().join(format!("edge-ssl-doc-prec-{}", std::process::id()));
/// let series = [
///     Series::new("precision", [(100.0, 0.71), (200.0, 0.83), (300.0, 0.88)]),
///     Series::new("coverage", [(100.0, 0.20), (200.0, 0.45), (300.0, 0.61)]),
/// ];
/// precision_over_time(dir.join("report/pseudo_labels.svg"), "Pseudo-labels", &series)?;
/// # std::fs::remove_dir_all(dir).unwrap();
/// # Ok::<(), edge_ssl::Error>(())
/// ```
pub fn precision_over_time(path: impl AsRef<Path>, title: &str, series: &[Series]) -> Result<()> {
    line_chart(
        path,
        &Chart {
            title,
            x_label: SAMPLES_OBSERVED,
            y_label: "pseudo-label precision / coverage",
            y_range: Some((0.0, 1.0)),
            series,
        },
    )
}

/// Plots the OOD score distributions of in-distribution and out-of-distribution samples as two
/// overlaid semi-transparent histograms over the same bins, with a dashed vertical line at
/// `threshold`, and writes the SVG to `path`.
///
/// Bars are the fraction of each set per bin (so sets of different sizes compare); the legend
/// gives each set's size. Bins span both sets together, `ceil(sqrt(n))` of them for the larger
/// set, clamped to `5..=40`; the x axis also covers the threshold. Non-finite scores are
/// skipped (and counted on the image); a non-finite `threshold` is not drawn (the legend
/// says so).
///
/// # Errors
/// [`Error::Plot`] or [`Error::Io`], as [`line_chart`].
///
/// # Examples
/// ```
/// use edge_ssl::report::score_histograms;
/// # let dir = std::env::temp_dir().join(format!("edge-ssl-doc-hist-{}", std::process::id()));
/// let in_scores = [0.10, 0.15, 0.22, 0.30, 0.18];
/// let out_scores = [0.55, 0.70, 0.62, 0.90];
/// let path = dir.join("report/ood_scores.svg");
/// score_histograms(&path, "Energy scores", &in_scores, &out_scores, Some(0.45))?;
/// assert!(std::fs::read_to_string(&path).unwrap().contains("out-of-distribution"));
/// # std::fs::remove_dir_all(dir).unwrap();
/// # Ok::<(), edge_ssl::Error>(())
/// ```
pub fn score_histograms(
    path: impl AsRef<Path>,
    title: &str,
    in_scores: &[f32],
    out_scores: &[f32],
    threshold: Option<f32>,
) -> Result<()> {
    let path = path.as_ref();
    let svg = draw::histograms_svg(title, in_scores, out_scores, threshold)
        .map_err(|source| Error::Plot { path: path.into(), source })?;
    atomic::write_atomic(path, svg.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    /// A fresh folder for one test.
    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("edge-ssl-report-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    /// Checks that `svg` is a complete SVG document whose tags balance (a small XML-ish check:
    /// every start tag is closed in order, `<?..?>`, `<!..>` and `/>` are skipped) and that it
    /// contains every string in `needles`. Returns the document.
    fn check_svg(path: &Path, needles: &[&str]) -> String {
        let svg = std::fs::read_to_string(path).unwrap();
        let t = svg.trim();
        assert!(t.starts_with("<svg") || t.starts_with("<?xml"), "{}", &t[..t.len().min(80)]);
        assert!(t.ends_with("</svg>"));
        let mut stack = Vec::new();
        let mut rest = t;
        while let Some(i) = rest.find('<') {
            let j = rest[i..].find('>').expect("unterminated tag") + i;
            let tag = &rest[i + 1..j];
            rest = &rest[j + 1..];
            if tag.starts_with('?') || tag.starts_with('!') || tag.ends_with('/') {
                continue;
            }
            if let Some(close) = tag.strip_prefix('/') {
                assert_eq!(stack.pop(), Some(close.trim().to_owned()), "mismatched </{close}>");
            } else {
                stack.push(tag.split_whitespace().next().unwrap().to_owned());
            }
        }
        assert!(stack.is_empty(), "unclosed tags {stack:?}");
        for n in needles {
            assert!(svg.contains(n), "missing {n:?}");
        }
        svg
    }

    /// The contents of every `<text>` element, trimmed.
    fn texts(svg: &str) -> Vec<&str> {
        svg.split("<text")
            .skip(1)
            .filter_map(|t| Some(t[t.find('>')? + 1..t.find("</text>")?].trim()))
            .collect()
    }

    fn acc_series() -> Vec<Series> {
        vec![
            Series::new("supervised", [(0.0, 0.1), (500.0, 0.5), (1000.0, 0.6)]),
            Series::new("fixmatch+gate", [(0.0, 0.1), (500.0, 0.55), (1000.0, 0.7)]),
            Series::new("oracle", [(0.0, 0.1), (500.0, 0.7), (1000.0, 0.8)]),
        ]
    }

    #[test]
    fn accuracy_over_stream_writes_titled_svg_with_every_series() {
        let dir = scratch("acc");
        let p = dir.join("report/accuracy.svg");
        accuracy_over_stream(&p, "Accuracy run 7", &acc_series()).unwrap();
        check_svg(
            &p,
            &["Accuracy run 7", "supervised", "fixmatch+gate", "oracle", "samples observed"],
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn precision_over_time_writes_titled_svg_with_every_series() {
        let dir = scratch("prec");
        let p = dir.join("precision.svg");
        let s = [
            Series::new("precision", [(10.0, 0.8), (20.0, 0.9)]),
            Series::new("coverage", [(10.0, 0.1), (20.0, 0.3)]),
        ];
        precision_over_time(&p, "Pseudo-label quality", &s).unwrap();
        check_svg(&p, &["Pseudo-label quality", "precision", "coverage", "samples observed"]);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn score_histograms_writes_both_sets_and_threshold() {
        let dir = scratch("hist");
        let p = dir.join("ood.svg");
        score_histograms(&p, "OOD scores", &[0.1, 0.2, 0.25], &[0.7, 0.8], Some(0.5)).unwrap();
        let svg = check_svg(
            &p,
            &["OOD scores", "in-distribution (n=3)", "out-of-distribution (n=2)", "threshold = "],
        );
        assert!(svg.contains("opacity=\"0.45\""), "fills are semi-transparent");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn line_chart_uses_the_given_labels() {
        let dir = scratch("line");
        let p = dir.join("l.svg");
        let s = [Series::new("a", [(1.0, 5.0), (2.0, 7.0)])];
        let chart =
            Chart { title: "T", x_label: "epochs", y_label: "loss", y_range: None, series: &s };
        line_chart(&p, &chart).unwrap();
        check_svg(&p, &["epochs", "loss"]);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn no_series_gives_no_data_note() {
        let dir = scratch("noseries");
        let p = dir.join("a.svg");
        accuracy_over_stream(&p, "Empty", &[]).unwrap();
        check_svg(&p, &["Empty", "no data"]);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn empty_series_keeps_legend_and_says_no_data() {
        let dir = scratch("emptyseries");
        let p = dir.join("a.svg");
        accuracy_over_stream(&p, "t", &[Series::new("supervised", [])]).unwrap();
        check_svg(&p, &["supervised", "no data"]);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn single_point_is_drawn_as_a_marker() {
        let dir = scratch("single");
        let p = dir.join("a.svg");
        accuracy_over_stream(&p, "t", &[Series::new("oracle", [(100.0, 0.5)])]).unwrap();
        let svg = check_svg(&p, &["oracle"]);
        assert!(svg.contains("<circle"));
        assert!(!svg.contains("no data"));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn nan_values_are_skipped_and_counted() {
        let dir = scratch("nan");
        let p = dir.join("a.svg");
        let s = [Series::new("s", [(0.0, 0.2), (1.0, f64::NAN), (f64::INFINITY, 0.3), (2.0, 0.4)])];
        accuracy_over_stream(&p, "t", &s).unwrap();
        let svg = check_svg(&p, &["2 non-finite values skipped"]);
        assert!(!svg.contains("NaN") && !svg.contains("inf"));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn only_nan_values_say_no_data() {
        let dir = scratch("allnan");
        let p = dir.join("a.svg");
        let s = [Series::new("s", [(f64::NAN, 0.2), (1.0, f64::NAN)])];
        line_chart(
            &p,
            &Chart { title: "t", x_label: "x", y_label: "y", y_range: None, series: &s },
        )
        .unwrap();
        check_svg(&p, &["no data", "2 non-finite values skipped"]);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn all_equal_values_get_a_padded_range() {
        let dir = scratch("equal");
        let p = dir.join("a.svg");
        let s = [Series::new("flat", [(5.0, 3.0), (5.0, 3.0), (5.0, 3.0)])];
        line_chart(
            &p,
            &Chart { title: "t", x_label: "x", y_label: "y", y_range: None, series: &s },
        )
        .unwrap();
        let svg = check_svg(&p, &["flat"]);
        assert!(!svg.contains("NaN"));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn extreme_magnitudes_do_not_break_the_axes() {
        let dir = scratch("extreme");
        let p = dir.join("a.svg");
        let s = [Series::new("s", [(-1e300, 1e-300), (1e300, -1e300), (0.0, 5e-324)])];
        line_chart(
            &p,
            &Chart { title: "t", x_label: "x", y_label: "y", y_range: None, series: &s },
        )
        .unwrap();
        let svg = check_svg(&p, &["s"]);
        assert!(!svg.contains("NaN"));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn points_outside_y_range_widen_the_axis() {
        let dir = scratch("outside");
        let p = dir.join("a.svg");
        let s = [Series::new("s", [(0.0, -0.5), (1.0, 1.5)])];
        accuracy_over_stream(&p, "t", &s).unwrap();
        let svg = check_svg(&p, &["s"]);
        let labels = texts(&svg);
        assert!(labels.contains(&"1.5") && labels.contains(&"-0.5"), "{labels:?}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn markup_in_titles_and_names_is_escaped() {
        let dir = scratch("escape");
        let p = dir.join("a.svg");
        accuracy_over_stream(&p, "a < b & c", &[Series::new("<x>", [(0.0, 0.5), (1.0, 0.6)])])
            .unwrap();
        check_svg(&p, &["a &lt; b &amp; c", "&lt;x&gt;"]);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn many_series_cycle_colours_then_dash() {
        let dir = scratch("many");
        let p = dir.join("a.svg");
        let s: Vec<Series> = (0..10)
            .map(|i| Series::new(format!("algo-{i}"), [(0.0, f64::from(i) / 10.0), (1.0, 0.5)]))
            .collect();
        accuracy_over_stream(&p, "t", &s).unwrap();
        check_svg(&p, &["algo-0", "algo-9"]);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn y_range_must_be_finite_and_increasing() {
        let dir = scratch("yrange");
        let s = [Series::new("s", [(0.0, 0.5)])];
        for bad in [(1.0, 0.0), (0.5, 0.5), (f64::NAN, 1.0), (0.0, f64::INFINITY)] {
            let chart =
                Chart { title: "t", x_label: "x", y_label: "y", y_range: Some(bad), series: &s };
            let r = line_chart(dir.join("a.svg"), &chart);
            assert!(matches!(r, Err(Error::InvalidParam { name: "y_range", .. })), "{bad:?}");
        }
        assert!(!dir.exists(), "nothing written on a parameter error");
    }

    #[test]
    fn unwritable_path_is_io_error() {
        let dir = scratch("io");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("file"), b"").unwrap();
        let p = dir.join("file/report/a.svg");
        let r = accuracy_over_stream(&p, "t", &acc_series());
        assert!(matches!(r, Err(Error::Io { .. })), "{r:?}");
        let r = score_histograms(&p, "t", &[0.1], &[0.2], None);
        assert!(matches!(r, Err(Error::Io { .. })), "{r:?}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn histograms_of_nothing_say_no_data() {
        let dir = scratch("histempty");
        let p = dir.join("a.svg");
        score_histograms(&p, "t", &[], &[], None).unwrap();
        check_svg(&p, &["no data", "in-distribution (n=0)"]);
        score_histograms(&p, "t", &[], &[], Some(0.3)).unwrap();
        check_svg(&p, &["no data", "threshold = "]);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn histograms_with_one_set_equal_values_and_nan() {
        let dir = scratch("histedge");
        let p = dir.join("a.svg");
        score_histograms(&p, "t", &[0.4; 20], &[], Some(0.4)).unwrap();
        check_svg(&p, &["in-distribution (n=20)", "out-of-distribution (n=0)"]);
        score_histograms(&p, "t", &[f32::NAN, 0.1], &[f32::INFINITY], None).unwrap();
        let svg = check_svg(&p, &["2 non-finite values skipped", "(n=1)", "(n=0)"]);
        assert!(!svg.contains("threshold"));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn non_finite_threshold_is_not_drawn_but_noted() {
        let dir = scratch("histnan");
        let p = dir.join("a.svg");
        score_histograms(&p, "t", &[0.1, 0.2], &[0.8], Some(f32::NAN)).unwrap();
        let svg = check_svg(&p, &["in-distribution", "threshold NaN: not drawn"]);
        assert!(!svg.contains("threshold ="), "no threshold line");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn threshold_outside_the_scores_widens_the_axis() {
        let dir = scratch("histfar");
        let p = dir.join("a.svg");
        score_histograms(&p, "t", &[0.1, 0.2], &[0.3], Some(5.0)).unwrap();
        check_svg(&p, &["threshold = 5"]);
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// A deterministic uniform stream in `[0, 1)` (64-bit LCG, Knuth's MMIX constants).
    fn lcg(seed: u64) -> impl FnMut() -> f64 {
        let mut s = seed;
        move || {
            s = s.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            #[allow(clippy::cast_precision_loss)]
            let u = (s >> 11) as f64 / (1u64 << 53) as f64;
            u
        }
    }

    /// Writes a realistic report (the three plots of a 20k-sample run) into
    /// `$EDGE_SSL_REPORT_DIR` when set (to look at them), else a temporary folder.
    #[test]
    fn realistic_report() {
        let dir = std::env::var_os("EDGE_SSL_REPORT_DIR")
            .map_or_else(|| scratch("realistic"), PathBuf::from);
        let mut u = lcg(7);
        let curve = |ceiling: f64, rate: f64, noise: f64, u: &mut dyn FnMut() -> f64| {
            (0..=40)
                .map(|k| {
                    let x = f64::from(k) * 500.0;
                    let y = 0.1 + (ceiling - 0.1) * (1.0 - (-x / rate).exp());
                    (x, (y + noise * (u() - 0.5)).clamp(0.0, 1.0))
                })
                .collect::<Vec<_>>()
        };
        let acc = [
            Series::new("supervised", curve(0.62, 4000.0, 0.03, &mut u)),
            Series::new("fixmatch", curve(0.68, 5000.0, 0.04, &mut u)),
            Series::new("fixmatch+gate", curve(0.74, 4500.0, 0.03, &mut u)),
            Series::new("oracle", curve(0.86, 3000.0, 0.02, &mut u)),
        ];
        let acc_path = dir.join("accuracy.svg");
        accuracy_over_stream(&acc_path, "CIFAR-10 stream, 40 labels, 30% OOD", &acc).unwrap();
        check_svg(&acc_path, &["fixmatch+gate", "oracle"]);

        // Overlapping Irwin–Hall(4) bumps: in-distribution scores around 0.35, OOD around 0.6.
        let mut bump = |centre: f64, n: usize| -> Vec<f32> {
            #[allow(clippy::cast_possible_truncation)]
            (0..n).map(|_| (centre + 0.6 * ((u() + u() + u() + u()) / 4.0 - 0.5)) as f32).collect()
        };
        let (ins, outs) = (bump(0.35, 1400), bump(0.6, 600));
        let hist_path = dir.join("ood_scores.svg");
        score_histograms(&hist_path, "OOD gate: energy score", &ins, &outs, Some(0.47)).unwrap();
        check_svg(&hist_path, &["in-distribution (n=1400)", "out-of-distribution (n=600)"]);

        let precision: Vec<(f64, f64)> = (1..=40)
            .map(|k| (f64::from(k) * 500.0, 0.93 - 0.25 * (-f64::from(k) / 6.0).exp()))
            .collect();
        let coverage: Vec<(f64, f64)> = (1..=40)
            .map(|k| (f64::from(k) * 500.0, 0.75 * (1.0 - (-f64::from(k) / 10.0).exp())))
            .collect();
        let prec = [Series::new("precision", precision), Series::new("coverage", coverage)];
        let prec_path = dir.join("pseudo_labels.svg");
        precision_over_time(&prec_path, "Pseudo-labels of fixmatch+gate", &prec).unwrap();
        check_svg(&prec_path, &["precision", "coverage"]);
        if std::env::var_os("EDGE_SSL_REPORT_DIR").is_none() {
            std::fs::remove_dir_all(dir).unwrap();
        }
    }

    #[test]
    fn autotraits() {
        fn check<T: Send + Sync + Unpin + std::panic::UnwindSafe>() {}
        check::<Series>();
        check::<Chart<'static>>();
    }
}
