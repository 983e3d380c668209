//! `edge-ssl run` on the user's own data: a camera folder, IDX files, NPY windows or sensor CSV.
//!
//! Samples are taken in order. While a class has fewer than `--labels` given labels, a labelled
//! sample becomes one; after that every 5th labelled sample is held back (up to `--test-max`)
//! to measure accuracy along the stream, and the rest are observed as unlabeled (their labels
//! are used only to report pseudo-label precision). A sample that cannot be read or embedded
//! (truncated frame, malformed CSV row, NaN, undecodable image) is reported and skipped; the
//! learner is untouched by it.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use edge_ssl::data::image::Geometry;
use edge_ssl::data::{folder, idx, npy};
use edge_ssl::device::{Device, Frame};
use edge_ssl::learner::{AutoCheckpoint, Learner, Outcome};
use edge_ssl::report::{self, Series};
use edge_ssl::stream::{
    CsvWindows, FolderWatch, ImageSetSource, Sample, SampleShape, SensorSetSource, Source,
};
use edge_ssl::{Backbone, BackboneSpec, Error, InputKind, Result};
use indicatif::{ProgressBar, ProgressStyle};

/// Where the user's samples come from (one of them).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct UserArgs {
    /// Watch a folder of PNG/JPEG frames (unlabeled, consumed in file-name order).
    #[arg(long, value_name = "DIR")]
    pub camera: Option<PathBuf>,
    /// Labelled examples for `--camera`: one sub-folder per class.
    #[arg(long, value_name = "DIR")]
    pub labeled: Option<PathBuf>,
    /// Keep watching `--camera` for new frames (stop with Ctrl-C; use `--state` to keep them).
    #[arg(long)]
    pub follow: bool,
    /// IDX images (plain or .gz).
    #[arg(long, value_name = "FILE")]
    pub idx: Option<PathBuf>,
    /// IDX labels for `--idx`.
    #[arg(long, value_name = "FILE")]
    pub idx_labels: Option<PathBuf>,
    /// NPY windows float [n, T, C].
    #[arg(long, value_name = "FILE")]
    pub npy: Option<PathBuf>,
    /// NPY labels [n] for `--npy`.
    #[arg(long, value_name = "FILE")]
    pub npy_labels: Option<PathBuf>,
    /// Sensor rows as CSV (`-` for stdin), cut into sliding windows.
    #[arg(long, value_name = "FILE")]
    pub sensor_csv: Option<String>,
    /// The CSV's last column is a class label.
    #[arg(long)]
    pub csv_labeled: bool,
    /// Channels per CSV row.
    #[arg(long, default_value_t = 6)]
    pub channels: usize,
    /// Window length (rows) for CSV.
    #[arg(long, default_value_t = 128)]
    pub window: usize,
    /// Window stride (rows) for CSV.
    #[arg(long, default_value_t = 64)]
    pub stride: usize,
    /// Number of classes (needed when it cannot be read from the labels up front, e.g. CSV).
    #[arg(long)]
    pub classes: Option<usize>,
    /// Most held-back test samples.
    #[arg(long, default_value_t = 2000)]
    pub test_max: usize,
    /// State file: resumed from if it exists, saved every `--checkpoint-every` samples and at
    /// the end.
    #[arg(long, value_name = "FILE")]
    pub state: Option<PathBuf>,
    /// Samples between automatic saves of `--state`.
    #[arg(long, default_value_t = 1000)]
    pub checkpoint_every: u64,
}

impl UserArgs {
    /// True if any user data source was given.
    pub fn given(&self) -> bool {
        self.camera.is_some()
            || self.idx.is_some()
            || self.npy.is_some()
            || self.sensor_csv.is_some()
    }
}

/// The common options of `run` this mode uses.
pub struct Common<'a> {
    /// Semi-supervised algorithm.
    pub algorithm: edge_ssl::learner::Algorithm,
    /// Further unlabeled losses.
    pub extra: Vec<edge_ssl::learner::Algorithm>,
    /// Labels per class.
    pub labels: usize,
    /// Evaluate every this many samples.
    pub eval_every: usize,
    /// Image side.
    pub size: usize,
    /// Camera model.
    pub camera_model: &'a Path,
    /// Sensor model.
    pub sensor_model: &'a Path,
    /// Engine, threads, onnxruntime library.
    pub engine: &'a super::EngineArgs,
    /// Seed.
    pub seed: u64,
    /// Unlabeled loss ramp-up.
    pub rampup: u64,
    /// What the camera backbone hands the learner.
    pub rows: edge_ssl::device::Rows,
    /// Report folder.
    pub report: &'a Path,
    /// Write the summary as JSON here.
    pub json: Option<&'a Path>,
}

fn spinner_or_bar(len: Option<usize>) -> ProgressBar {
    let pb = match len {
        Some(n) => ProgressBar::new(n as u64),
        None => ProgressBar::new_spinner(),
    };
    pb.set_style(
        ProgressStyle::with_template("{spinner} [{bar:30}] {pos}/{len} {per_sec} {msg}")
            .expect("static template")
            .progress_chars("=> "),
    );
    pb
}

struct Stats {
    labeled: u64,
    unlabeled: u64,
    held: u64,
    skipped: u64,
    admitted_known: u64,
    admitted_right: u64,
    curve: Vec<(f64, f64)>,
}

fn accuracy(learner: &mut Learner, test: &[f32], test_y: &[u32], d: usize) -> Result<f64> {
    let mut right = 0;
    for (x, &y) in test.chunks_exact(d).zip(test_y) {
        right += usize::from(learner.predict(x)?.class == y);
    }
    Ok(right as f64 / test_y.len().max(1) as f64)
}

/// The device frame of a source sample.
fn frame(sample: Sample<'_>, shape: SampleShape) -> Result<Frame<'_>> {
    match (sample, shape) {
        (Sample::Image(pixels), SampleShape::Image(geometry)) => {
            Ok(Frame::Image { pixels, geometry })
        }
        (Sample::Window(w), _) => Ok(Frame::Window(w)),
        (Sample::Image(_), SampleShape::Window { .. }) => Err(Error::InvalidParam {
            name: "source",
            reason: "image sample from a window source".into(),
        }),
    }
}

/// Runs the learner on the user's data (see the module docs).
///
/// # Errors
/// Bad arguments ([`Error::InvalidParam`]), unreadable sources, model errors, state-file errors.
pub fn run_user(u: &UserArgs, c: &Common<'_>) -> Result<()> {
    let t0 = Instant::now();
    // Open the source and find the number of classes.
    let idx_set = match &u.idx {
        Some(p) => Some(idx::read_images(p, u.idx_labels.as_ref())?),
        None => None,
    };
    let npy_set = match &u.npy {
        Some(p) => Some(npy::read_windows(p, u.npy_labels.as_ref(), None::<&Path>)?),
        None => None,
    };
    let mut source: Box<dyn Source + '_> = if let Some(s) = &idx_set {
        Box::new(ImageSetSource::new(s, (0..s.len()).collect())?)
    } else if let Some(s) = &npy_set {
        Box::new(SensorSetSource::new(s, (0..s.len()).collect())?)
    } else if let Some(dir) = &u.camera {
        Box::new(FolderWatch::new(dir, c.size, c.size)?)
    } else if let Some(csv) = &u.sensor_csv {
        let reader: Box<dyn BufRead> = if csv == "-" {
            Box::new(std::io::BufReader::new(std::io::stdin()))
        } else {
            let f =
                std::fs::File::open(csv).map_err(|e| Error::Io { path: csv.into(), source: e })?;
            Box::new(std::io::BufReader::new(f))
        };
        Box::new(CsvWindows::new(reader, u.window, u.channels, u.stride, u.csv_labeled)?)
    } else {
        return Err(Error::InvalidParam { name: "source", reason: "no data source given".into() });
    };
    let labeled_set = match &u.labeled {
        Some(dir) => Some(folder::read_folder(dir, c.size, c.size)?),
        None => None,
    };
    let known_labels: Option<u32> = if let Some(s) = &labeled_set {
        Some(s.class_names.len() as u32)
    } else if let Some(l) = idx_set.as_ref().and_then(|s| s.labels.as_ref()) {
        l.iter().max().map(|m| m + 1)
    } else if let Some(l) = npy_set.as_ref().and_then(|s| s.labels.as_ref()) {
        l.iter().max().map(|m| m + 1)
    } else {
        None
    };
    let n_classes = match (u.classes, known_labels) {
        (Some(k), _) => k,
        (None, Some(k)) => k as usize,
        (None, None) => {
            return Err(Error::InvalidParam {
                name: "classes",
                reason: "labels are needed: give a label file, --labeled DIR or --csv-labeled with --classes".into(),
            });
        }
    };

    // Backbone for the source's samples.
    let shape = source.shape();
    let (backbone, feed) = match shape {
        SampleShape::Image(_) => {
            let spec = c.engine.apply(BackboneSpec::efficientnet_lite0(c.size, 1));
            let feed = c.rows.feed(true, c.camera_model, spec.engine)?;
            (Backbone::load(c.camera_model, feed.spec(spec))?, feed)
        }
        SampleShape::Window { steps, channels } => {
            let feed = c.rows.feed(false, c.sensor_model, Default::default())?;
            let mut spec = BackboneSpec::minirocket_imu(1);
            spec.input = InputKind::Sensor { steps, channels };
            (Backbone::load(c.sensor_model, c.engine.apply(spec))?, feed)
        }
    };
    let d = backbone.embedding_dim();
    let mut emb = vec![0f32; d];

    // Learner: resumed from --state when it exists.
    let mut params = feed.params(d, n_classes)?;
    params.algorithm = c.algorithm;
    params.extra = c.extra.clone();
    params.seed = c.seed;
    params.unlabeled_rampup = c.rampup;
    if let Some(p) = &u.state {
        params.checkpoint =
            Some(AutoCheckpoint { path: p.clone(), every: u.checkpoint_every.max(1) });
    }
    let mut device = match &u.state {
        Some(p) if p.exists() => {
            let dev = Device::resume(backbone, &params, p)?;
            eprintln!("resumed from {} ({:?})", p.display(), dev.learner().counters());
            dev
        }
        _ => Device::new(backbone, &params)?,
    };

    let mut stats = Stats {
        labeled: 0,
        unlabeled: 0,
        held: 0,
        skipped: 0,
        admitted_known: 0,
        admitted_right: 0,
        curve: Vec::new(),
    };
    let mut given = vec![0usize; n_classes];
    let mut seen_labeled = 0u64;
    let (mut test, mut test_y) = (Vec::new(), Vec::new());
    if let Some(set) = &labeled_set {
        let labels = set.labels.as_deref().unwrap_or_default();
        let geometry = Geometry { height: set.height, width: set.width, channels: set.channels };
        for (i, &y) in labels.iter().enumerate() {
            device.observe_labeled(Frame::Image { pixels: set.image(i), geometry }, y)?;
            stats.labeled += 1;
        }
    }
    let total = idx_set.as_ref().map(|s| s.len()).or(npy_set.as_ref().map(|s| s.len()));
    let pb = spinner_or_bar(total);
    let mut done = 0usize;
    loop {
        let item = match source.next() {
            Ok(Some(item)) => Some((item.sample, item.label)),
            Ok(None) if u.follow && u.camera.is_some() => {
                std::thread::sleep(Duration::from_millis(500));
                continue;
            }
            Ok(None) => None,
            Err(e) => {
                stats.skipped += 1;
                pb.suspend(|| eprintln!("skipped: {e}"));
                continue;
            }
        };
        let Some((sample, label)) = item else { break };
        done += 1;
        pb.set_position(done as u64);
        match frame(sample, shape).and_then(|f| device.embed(f)) {
            Ok(e) => emb.copy_from_slice(e),
            Err(e) => {
                stats.skipped += 1;
                pb.suspend(|| eprintln!("skipped sample {done}: {e}"));
                continue;
            }
        }
        let learner = device.learner_mut();
        match label {
            Some(y) if (y as usize) >= n_classes => {
                stats.skipped += 1;
                pb.suspend(|| eprintln!("skipped sample {done}: label {y} >= {n_classes} classes"));
            }
            Some(y) if given[y as usize] < c.labels => {
                given[y as usize] += 1;
                learner.observe_labeled(&emb, y)?;
                stats.labeled += 1;
            }
            Some(y) => {
                seen_labeled += 1;
                if seen_labeled.is_multiple_of(5) && test_y.len() < u.test_max {
                    test.extend_from_slice(&emb);
                    test_y.push(y);
                    stats.held += 1;
                } else {
                    stats.unlabeled += 1;
                    if let Outcome::Admitted(p) = learner.observe(&emb)? {
                        stats.admitted_known += 1;
                        stats.admitted_right += u64::from(p == y);
                    }
                }
            }
            None => {
                stats.unlabeled += 1;
                learner.observe(&emb)?;
            }
        }
        if done.is_multiple_of(c.eval_every.max(1)) && !test_y.is_empty() {
            let acc = accuracy(learner, &test, &test_y, d)?;
            stats.curve.push((done as f64, acc));
            pb.set_message(format!("held-out accuracy {acc:.3} ({} samples)", test_y.len()));
        }
    }
    pb.finish_and_clear();
    let learner = device.learner_mut();
    if let Some(p) = &u.state {
        learner.checkpoint(p)?;
    }
    let k = learner.counters();
    println!(
        "{done} samples: {} given labels, {} unlabeled ({} admitted, {} gated, {} deferred), {} held back for testing, {} skipped",
        stats.labeled, stats.unlabeled, k.admitted, k.gated, k.deferred, stats.held, stats.skipped
    );
    if stats.admitted_known > 0 {
        println!(
            "pseudo-label precision (where the stream had labels): {:.1}%",
            100.0 * stats.admitted_right as f64 / stats.admitted_known as f64
        );
    }
    if !test_y.is_empty() {
        let acc = accuracy(learner, &test, &test_y, d)?;
        stats.curve.push((done as f64, acc));
        println!("held-out accuracy: {acc:.4} on {} samples", test_y.len());
        std::fs::create_dir_all(c.report)
            .map_err(|e| Error::Io { path: c.report.to_path_buf(), source: e })?;
        let svg = c.report.join("accuracy.svg");
        report::accuracy_over_stream(
            &svg,
            "Held-out accuracy over the stream",
            &[Series::new(c.algorithm.name(), stats.curve.clone())],
        )?;
        println!("report: {}", svg.display());
    }
    if let Some(p) = &u.state {
        println!("state: {}", p.display());
    }
    if let Some(path) = c.json {
        let precision = if stats.admitted_known > 0 {
            stats.admitted_right as f64 / stats.admitted_known as f64
        } else {
            f64::NAN
        };
        let curve: Vec<String> =
            stats.curve.iter().map(|(n, a)| format!("[{n}, {}]", super::json_num(*a))).collect();
        let text = format!(
            "{{\"algorithm\": {:?}, \"samples\": {done}, \"given_labels\": {}, \"unlabeled\": {}, \"admitted\": {}, \"gated\": {}, \"deferred\": {}, \"held_back\": {}, \"skipped\": {}, \"pseudo_label_precision\": {}, \"heldout_accuracy\": {}, \"curve\": [{}]}}\n",
            c.algorithm.name(),
            stats.labeled,
            stats.unlabeled,
            k.admitted,
            k.gated,
            k.deferred,
            stats.held,
            stats.skipped,
            super::json_num(precision),
            super::json_num(stats.curve.last().map_or(f64::NAN, |p| p.1)),
            curve.join(", ")
        );
        std::fs::write(path, text)
            .map_err(|e| Error::Io { path: path.to_path_buf(), source: e })?;
        println!("json: {}", path.display());
    }
    println!(
        "total time {:.1?}, {:.1} samples/s (backbone pass + learning step)",
        t0.elapsed(),
        done as f64 / t0.elapsed().as_secs_f64().max(1e-9)
    );
    Ok(())
}
