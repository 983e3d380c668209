//! The `edge-ssl` command. `cargo run --release` with no arguments runs the default job.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

mod cli;

use clap::{Parser, Subcommand, ValueEnum};
use cli::json_num;
use edge_ssl::data::{ImageSet, SensorSet, folder, idx, npy};
use edge_ssl::device::{Feed, Rows};
use edge_ssl::embed::{EmbeddingCache, embed_images, embed_windows};
use edge_ssl::eval::{accuracy, sample_per_class};
use edge_ssl::gate::eval::{auroc, fpr_at_tpr};
use edge_ssl::head::ncm::{Metric, NcmParams};
use edge_ssl::learner::Algorithm;
use edge_ssl::report::{self, Series};
use edge_ssl::scenario::{CurvePoint, RunResult, Stream, StreamItem, run_stream};
use edge_ssl::{Backbone, BackboneSpec, models};
use indicatif::{ProgressBar, ProgressStyle};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/data");
const CACHE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/target/tmp/embeddings");

#[derive(Parser)]
#[command(
    name = "edge-ssl",
    version,
    about = "On-device semi-supervised learning on frozen ONNX backbones"
)]
#[command(args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// With no subcommand: the options of `run`.
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand)]
enum Command {
    /// The default job: labels-only vs semi-supervised learning with the OOD gate on a shipped
    /// stream, with an oracle, a table, SVG plots and optional JSON.
    Run(Box<RunArgs>),
    /// Write the embeddings of a dataset as a float32 `[n, D]` .npy file.
    Embed(EmbedArgs),
    /// Run every algorithm and the baselines of an experiment spec (TOML) on the same streams.
    Experiment(ExperimentArgs),
}

#[derive(clap::Args)]
struct ExperimentArgs {
    /// The spec (see the README for the format).
    #[arg(required_unless_present = "list_algorithms")]
    spec: Option<PathBuf>,
    /// Print every algorithm name a spec's `algorithms` accepts, one per line, and exit
    /// (`a+b` combines them; the baselines `supervised` and `oracle` always run).
    #[arg(long)]
    list_algorithms: bool,
    /// Replace the spec's seeds, e.g. `--seeds 1,2,3,4,5`.
    #[arg(long, value_delimiter = ',')]
    seeds: Option<Vec<u64>>,
    /// Replace the spec's algorithms, e.g. `--algorithms flexmatch,labelprop`.
    #[arg(long, value_delimiter = ',')]
    algorithms: Option<Vec<String>>,
    /// Replace the spec's gate protocol: each algorithm with and without the gate (`both`),
    /// only with it (`on`) or only without (`off`).
    #[arg(long, value_enum)]
    gate: Option<GateRuns>,
    /// Also write the results as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Folder of cached embeddings.
    #[arg(long, default_value = CACHE)]
    cache: PathBuf,
    /// Overrides of the spec's `[backbone]` engine, threads and library.
    #[command(flatten)]
    engine: cli::EngineArgs,
}

/// Which gate variants an experiment runs.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum GateRuns {
    /// With and without the gate.
    Both,
    /// Only with the gate.
    On,
    /// Only without the gate.
    Off,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Scenario {
    /// Fashion-MNIST frames with MNIST digits mixed into the stream as strange input.
    Camera,
    /// Smartwatch IMU windows: labels and stream from subjects 1-5, test on subjects 6-10.
    Sensor,
}

#[derive(clap::Args)]
struct RunArgs {
    /// Which shipped scenario.
    #[arg(long, value_enum, default_value = "camera")]
    scenario: Scenario,
    /// The semi-supervised algorithm compared with labels-only; `a+b` sums the unlabeled losses
    /// of several (e.g. `fixmatch+meanteacher`).
    #[arg(long, default_value = "labelprop")]
    algorithm: String,
    /// Labelled examples per class.
    #[arg(long, default_value_t = 10)]
    labels: usize,
    /// Unlabeled stream length (camera; the sensor stream is every remaining window).
    #[arg(long, default_value_t = 5000)]
    stream: usize,
    /// Share of the camera stream replaced by out-of-distribution MNIST digits.
    #[arg(long, default_value_t = 0.3)]
    ood_fraction: f64,
    /// Seed of the label draw, the stream order and the learners.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Test accuracy is measured every this many stream samples.
    #[arg(long, default_value_t = 500)]
    eval_every: usize,
    /// Image side fed to the camera backbone.
    #[arg(long, default_value_t = 112)]
    size: usize,
    /// Folder with the shipped data.
    #[arg(long, default_value = DATA)]
    data: PathBuf,
    /// Camera model (ONNX).
    #[arg(long, default_value = models::CAMERA_INT8)]
    camera_model: PathBuf,
    /// Sensor model (ONNX).
    #[arg(long, default_value = models::SENSOR_INT8)]
    sensor_model: PathBuf,
    /// Folder of cached embeddings (the backbone is frozen: each dataset is embedded once).
    #[arg(long, default_value = CACHE)]
    cache: PathBuf,
    /// Backbone engine, threads and onnxruntime library.
    #[command(flatten)]
    engine: cli::EngineArgs,
    /// What the camera backbone hands the learner (images only: the sensor model has no
    /// spatial map, its rows are always embeddings).
    #[arg(long, default_value = "auto", value_name = "auto|map|embedding")]
    rows: Rows,
    /// Steps over which the unlabeled loss weight ramps up (0: none).
    #[arg(long, default_value_t = 2000)]
    rampup: u64,
    /// Folder for the SVG report.
    #[arg(long, default_value = "report")]
    report: PathBuf,
    /// Also write the results as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Run on your own data instead of a shipped scenario.
    #[command(flatten)]
    user: cli::user::UserArgs,
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    /// IDX images (plain or .gz), e.g. MNIST.
    Idx,
    /// NPY windows float32 [n, T, C].
    Npy,
    /// PNG/JPEG files in one sub-folder per class.
    Folder,
}

#[derive(clap::Args)]
struct EmbedArgs {
    /// ONNX model.
    #[arg(long, default_value = models::CAMERA_INT8)]
    model: PathBuf,
    /// Input file (idx, npy) or folder.
    #[arg(long)]
    input: PathBuf,
    /// Input format.
    #[arg(long, value_enum)]
    format: Format,
    /// Output .npy path.
    #[arg(long)]
    out: PathBuf,
    /// Image side for image models.
    #[arg(long, default_value_t = 112)]
    size: usize,
    /// Batch size.
    #[arg(long, default_value_t = 1)]
    batch: usize,
    /// Name of the embedding output of the graph.
    #[arg(long, default_value = "embedding")]
    output: String,
    /// Backbone engine, threads and onnxruntime library.
    #[command(flatten)]
    engine: cli::EngineArgs,
}

fn bar(len: usize, what: &str) -> ProgressBar {
    let pb = ProgressBar::new(len as u64);
    pb.set_style(
        ProgressStyle::with_template("{msg:>22} [{bar:30}] {pos}/{len} {per_sec} eta {eta}")
            .expect("static template")
            .progress_chars("=> "),
    );
    pb.set_message(what.to_owned());
    pb
}

fn peak_rss_mib() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// Gathers rows of a row-major `[n, dim]` feature matrix.
fn gather(feats: &[f32], dim: usize, rows: &[usize]) -> Vec<f32> {
    rows.iter().flat_map(|&r| feats[r * dim..(r + 1) * dim].iter().copied()).collect()
}

/// Test accuracy of a nearest-class-mean classifier fitted on `train`.
fn ncm_accuracy(
    metric: Metric,
    dim: usize,
    n_classes: usize,
    (train, train_y): (&[f32], &[u32]),
    (test, test_y): (&[f32], &[u32]),
) -> edge_ssl::Result<f64> {
    let model = NcmParams { metric }.fit(train, dim, train_y, n_classes)?;
    let mut pred = vec![0; test_y.len()];
    model.predict_into(test, &mut pred)?;
    Ok(accuracy(&pred, test_y))
}

/// Embeddings and labels of one scenario, owned.
struct Prepared {
    name: String,
    dim: usize,
    n_classes: usize,
    feats: Vec<f32>,
    y: Vec<u32>,
    labeled: Vec<usize>,
    /// Stream: `Ok(row of feats)` in distribution, `Err(row of ood)` out of distribution.
    stream: Vec<Result<usize, usize>>,
    test: Vec<f32>,
    test_y: Vec<u32>,
    ood: Vec<f32>,
    ood_test_rows: std::ops::Range<usize>,
    /// Raw inputs (pixels / 255, or sensor values) of the labelled rows and of the test set,
    /// for the training-free raw-input baseline.
    raw_dim: usize,
    raw_labeled: Vec<f32>,
    raw_test: Vec<f32>,
}

fn raw_pixels(set: &ImageSet, rows: &[usize]) -> Vec<f32> {
    rows.iter().flat_map(|&r| set.image(r).iter().map(|&v| f32::from(v) / 255.0)).collect()
}

fn cached_images(
    args: &RunArgs,
    bb: &mut Backbone,
    set: &ImageSet,
    what: &str,
) -> edge_ssl::Result<Vec<f32>> {
    let cache = EmbeddingCache::new(&args.cache);
    let pb = bar(set.len(), what);
    let out = cache.images(bb, set, |n| pb.set_position(n as u64))?;
    pb.finish_and_clear();
    Ok(out)
}

fn prepare_camera(args: &RunArgs, feed: &Feed, rng: &mut StdRng) -> edge_ssl::Result<Prepared> {
    let fm = args.data.join("fashion-mnist");
    let pool = idx::read_images(
        fm.join("train-images-idx3-ubyte.gz"),
        Some(fm.join("train-labels-idx1-ubyte.gz")),
    )?;
    let test = idx::read_images(
        fm.join("t10k-images-idx3-ubyte.gz"),
        Some(fm.join("t10k-labels-idx1-ubyte.gz")),
    )?;
    let mnist = idx::read_images(args.data.join("mnist/ood-images-idx3-ubyte.gz"), None::<&Path>)?;
    let t = Instant::now();
    let spec = args.engine.apply(BackboneSpec::efficientnet_lite0(args.size, 1));
    let mut bb = Backbone::load(&args.camera_model, feed.spec(spec))?;
    let feats = cached_images(args, &mut bb, &pool, "embed pool")?;
    let test_feats = cached_images(args, &mut bb, &test, "embed test")?;
    let ood = cached_images(args, &mut bb, &mnist, "embed MNIST (OOD)")?;
    eprintln!(
        "embeddings ready in {:.1?} ({} engine; cache: {})",
        t.elapsed(),
        bb.engine(),
        args.cache.display()
    );
    let y = pool.labels.clone().unwrap_or_default();
    let n_classes = y.iter().max().map_or(0, |m| *m as usize + 1);
    let labeled = sample_per_class(&y, None, n_classes, args.labels, rng)?;
    let mut rest: Vec<usize> = (0..y.len()).filter(|i| !labeled.contains(i)).collect();
    rest.shuffle(rng);
    // Half of the MNIST digits feed the stream, the other half are held out for the gate's test.
    let half = mnist.len() / 2;
    let n_ood = ((args.stream as f64 * args.ood_fraction.clamp(0.0, 1.0)).round() as usize)
        .min(args.stream);
    let n_in = (args.stream - n_ood).min(rest.len());
    let mut stream: Vec<Result<usize, usize>> = rest[..n_in].iter().map(|&i| Ok(i)).collect();
    stream.extend((0..n_ood).map(|k| Err(k % half.max(1))));
    stream.shuffle(rng);
    let all_test: Vec<usize> = (0..test.len()).collect();
    Ok(Prepared {
        raw_dim: pool.sample_len(),
        raw_labeled: raw_pixels(&pool, &labeled),
        raw_test: raw_pixels(&test, &all_test),
        name: format!(
            "camera: Fashion-MNIST, {} labels/class, stream {} ({} MNIST digits as strange input), test {}, {} rows",
            args.labels,
            stream.len(),
            n_ood,
            test.len(),
            feed.name()
        ),
        dim: bb.embedding_dim(),
        n_classes,
        feats,
        y,
        labeled,
        stream,
        test_y: test.labels.clone().unwrap_or_default(),
        test: test_feats,
        ood,
        ood_test_rows: half..mnist.len(),
    })
}

fn prepare_sensor(args: &RunArgs, rng: &mut StdRng) -> edge_ssl::Result<Prepared> {
    let w = args.data.join("watch");
    let set = npy::read_windows(
        w.join("windows_x.npy"),
        Some(w.join("windows_y.npy")),
        Some(w.join("windows_groups.npy")),
    )?;
    let mut bb =
        Backbone::load(&args.sensor_model, args.engine.apply(BackboneSpec::minirocket_imu(1)))?;
    let cache = EmbeddingCache::new(&args.cache);
    let pb = bar(set.len(), "embed IMU windows");
    let all = cache.windows(&mut bb, &set, |n| pb.set_position(n as u64))?;
    pb.finish_and_clear();
    let d = bb.embedding_dim();
    let y = set.labels.clone().unwrap_or_default();
    let groups = set.groups.clone().unwrap_or_default();
    let n_classes = y.iter().max().map_or(0, |m| *m as usize + 1);
    let train: Vec<usize> = (0..set.len()).filter(|&i| groups[i] <= 5).collect();
    let test_rows: Vec<usize> = (0..set.len()).filter(|&i| groups[i] > 5).collect();
    let labeled = sample_per_class(&y, Some(&train), n_classes, args.labels, rng)?;
    let mut stream: Vec<Result<usize, usize>> =
        train.iter().filter(|i| !labeled.contains(i)).map(|&i| Ok(i)).collect();
    stream.shuffle(rng);
    let sl = set.sample_len();
    Ok(Prepared {
        raw_dim: sl,
        raw_labeled: gather(&set.values, sl, &labeled),
        raw_test: gather(&set.values, sl, &test_rows),
        name: format!(
            "sensor: smartwatch IMU, {} labels/class, stream {} windows (subjects 1-5), test {} windows (subjects 6-10)",
            args.labels,
            stream.len(),
            test_rows.len()
        ),
        dim: d,
        n_classes,
        test: gather(&all, d, &test_rows),
        test_y: test_rows.iter().map(|&i| y[i]).collect(),
        feats: all,
        y,
        labeled,
        stream,
        ood: Vec::new(),
        ood_test_rows: 0..0,
    })
}

struct Outcome {
    name: String,
    algorithm: String,
    gate: bool,
    result: RunResult,
}

fn write_json(
    path: &Path,
    name: &str,
    outcomes: &[Outcome],
    gap: &dyn Fn(f64) -> f64,
) -> edge_ssl::Result<()> {
    let mut s = format!("{{\n  \"name\": {name:?},\n  \"results\": [\n");
    for (i, o) in outcomes.iter().enumerate() {
        let r = &o.result;
        let curve: Vec<String> = r
            .curve
            .iter()
            .map(|c| {
                format!(
                    "[{}, {}, {}]",
                    c.samples,
                    json_num(c.accuracy),
                    json_num(c.pseudo_precision)
                )
            })
            .collect();
        s.push_str(&format!(
            "    {{\"run\": {:?}, \"algorithm\": {:?}, \"gate\": {}, \"accuracy\": {}, \"gap_closed\": {}, \"pseudo_label_precision\": {}, \"pseudo_label_coverage\": {}, \"admitted_ood_share\": {}, \"gated\": {}, \"gated_in_distribution\": {}, \"stream_ood\": {}, \"samples_per_s\": {}, \"curve\": [{}]}}{}\n",
            o.name,
            o.algorithm,
            o.gate,
            json_num(r.accuracy),
            json_num(gap(r.accuracy)),
            json_num(r.pseudo_precision),
            json_num(r.pseudo_coverage),
            json_num(r.admitted_ood_share),
            r.gated,
            r.gated_in,
            r.stream_ood,
            json_num(r.samples_per_s),
            curve.join(", "),
            if i + 1 < outcomes.len() { "," } else { "" }
        ));
    }
    s.push_str("  ]\n}\n");
    std::fs::write(path, s).map_err(|e| edge_ssl::Error::Io { path: path.to_path_buf(), source: e })
}

fn run(args: &RunArgs) -> edge_ssl::Result<()> {
    let t0 = Instant::now();
    let (algorithm, extra) = Algorithm::parse_combination(&args.algorithm)?;
    if args.user.given() {
        let common = cli::user::Common {
            algorithm,
            extra: extra.clone(),
            labels: args.labels,
            eval_every: args.eval_every,
            size: args.size,
            camera_model: &args.camera_model,
            sensor_model: &args.sensor_model,
            engine: &args.engine,
            seed: args.seed,
            rampup: args.rampup,
            rows: args.rows,
            report: &args.report,
            json: args.json.as_deref(),
        };
        return cli::user::run_user(&args.user, &common);
    }
    let mut rng = StdRng::seed_from_u64(args.seed);
    let camera = args.scenario == Scenario::Camera;
    let engine = args.engine.apply(BackboneSpec::efficientnet_lite0(args.size, 1)).engine;
    let feed = args.rows.feed(camera, &args.camera_model, engine)?;
    let p = match args.scenario {
        Scenario::Camera => prepare_camera(args, &feed, &mut rng)?,
        Scenario::Sensor => prepare_sensor(args, &mut rng)?,
    };
    let mut base = feed.params(p.dim, p.n_classes)?;
    base.seed = args.seed;
    base.unlabeled_rampup = args.rampup;
    let d = p.dim;
    let row = |i: usize| &p.feats[i * d..(i + 1) * d];
    let stream = Stream {
        dim: d,
        labeled: p.labeled.iter().map(|&i| (row(i), p.y[i])).collect(),
        items: p
            .stream
            .iter()
            .map(|s| match *s {
                Ok(i) => StreamItem { x: row(i), truth: Some(p.y[i]) },
                Err(k) => StreamItem { x: &p.ood[k * d..(k + 1) * d], truth: None },
            })
            .collect(),
        test: &p.test,
        test_y: &p.test_y,
        ood_test: &p.ood[p.ood_test_rows.start * d..p.ood_test_rows.end * d],
    };
    // Training-free reference: nearest class mean on the labels' embeddings (pooled from the
    // maps by the shipped head convolution for map rows).
    let train_y: Vec<u32> = p.labeled.iter().map(|&i| p.y[i]).collect();
    let (train_e, test_e) = {
        let train_x = gather(&p.feats, d, &p.labeled);
        match &base.adapt {
            Some(a) => {
                let mut block = a.build(256)?;
                let e = a.output_dim();
                let mut pool = |x: &[f32]| -> edge_ssl::Result<Vec<f32>> {
                    let mut out = vec![0f32; x.len() / d * e];
                    block.forward_into(x, &mut out, edge_ssl::adapt::Weights::Shipped)?;
                    Ok(out)
                };
                (pool(&train_x)?, pool(&p.test)?)
            }
            None => (train_x, p.test.clone()),
        }
    };
    let ncm = ncm_accuracy(
        Metric::Cosine,
        base.feature_dim(),
        p.n_classes,
        (&train_e, &train_y),
        (&test_e, &p.test_y),
    )?;
    let ncm_raw = ncm_accuracy(
        Metric::Cosine,
        p.raw_dim,
        p.n_classes,
        (&p.raw_labeled, &train_y),
        (&p.raw_test, &p.test_y),
    )?;

    let plans: Vec<(String, Algorithm, bool, bool)> = vec![
        ("labels only".into(), Algorithm::Supervised, true, false),
        (format!("{}+gate", args.algorithm), algorithm, true, false),
        (format!("{} (no gate)", args.algorithm), algorithm, false, false),
        ("oracle (all stream labels)".into(), Algorithm::Supervised, true, true),
    ];
    let mut outcomes = Vec::new();
    for (name, alg, gate, oracle) in plans {
        let mut lp = base.clone();
        lp.algorithm = alg;
        if alg != Algorithm::Supervised {
            lp.extra = extra.clone();
        }
        if !gate {
            lp.gate = None;
        }
        let pb = bar(stream.items.len(), &name);
        let result =
            run_stream(&lp, &stream, oracle, args.eval_every, |n| pb.set_position(n as u64))?;
        pb.finish_and_clear();
        eprintln!("{name}: test accuracy {:.4}", result.accuracy);
        outcomes.push(Outcome { name, algorithm: alg.name().into(), gate, result });
    }
    let (sup, orc) = (outcomes[0].result.accuracy, outcomes[3].result.accuracy);
    let gap = move |a: f64| if orc > sup { (a - sup) / (orc - sup) } else { f64::NAN };

    println!();
    println!("{}; seed {}", p.name, args.seed);
    println!(
        "{:<28} {:>9} {:>10} {:>10} {:>9} {:>10} {:>7} {:>10}",
        "run",
        "test acc",
        "gap closed",
        "PL precis.",
        "coverage",
        "OOD admit.",
        "gated",
        "samples/s"
    );
    println!("{:<28} {:>9.4}", "nearest class mean, raw", ncm_raw);
    println!("{:<28} {:>9.4}", "nearest class mean, embed.", ncm);
    for o in &outcomes {
        let r = &o.result;
        let pct = |v: f64| if v.is_finite() { format!("{:.1}%", 100.0 * v) } else { "-".into() };
        println!(
            "{:<28} {:>9.4} {:>10} {:>10} {:>9} {:>10} {:>7} {:>10.0}",
            o.name,
            r.accuracy,
            pct(gap(r.accuracy)),
            pct(r.pseudo_precision),
            pct(r.pseudo_coverage),
            pct(r.admitted_ood_share),
            r.gated,
            r.samples_per_s
        );
    }
    println!(
        "gap closed = (acc - labels only) / (oracle - labels only); PL = pseudo-labels admitted from the stream; OOD admit. = share of admitted pseudo-labels that were strange inputs."
    );

    std::fs::create_dir_all(&args.report)
        .map_err(|e| edge_ssl::Error::Io { path: args.report.clone(), source: e })?;
    let series = |f: &dyn Fn(&CurvePoint) -> f64, which: &[usize]| -> Vec<Series> {
        which
            .iter()
            .map(|&i| {
                let o = &outcomes[i];
                Series::new(
                    o.name.clone(),
                    o.result.curve.iter().map(|c| (c.samples as f64, f(c))).collect::<Vec<_>>(),
                )
            })
            .collect()
    };
    let title = match args.scenario {
        Scenario::Camera => "camera stream",
        Scenario::Sensor => "sensor stream",
    };
    let acc_svg = args.report.join("accuracy.svg");
    report::accuracy_over_stream(
        &acc_svg,
        &format!("Test accuracy over the {title}"),
        &series(&|c| c.accuracy, &[0, 1, 2, 3]),
    )?;
    let pl_svg = args.report.join("pseudo_labels.svg");
    report::precision_over_time(
        &pl_svg,
        &format!("Pseudo-label precision over the {title}"),
        &series(&|c| c.pseudo_precision, &[1, 2]),
    )?;
    let gated = &outcomes[1].result;
    let ood_svg = args.report.join("ood_scores.svg");
    report::score_histograms(
        &ood_svg,
        "OOD scores: test set (in) vs held-out strange inputs (out)",
        &gated.in_scores,
        &gated.out_scores,
        gated.threshold,
    )?;
    if !gated.in_scores.is_empty() && !gated.out_scores.is_empty() {
        println!(
            "gate on held-out data: AUROC {:.3}, FPR at 95% TPR {:.3}, test images rejected {:.1}%",
            auroc(&gated.in_scores, &gated.out_scores),
            fpr_at_tpr(&gated.in_scores, &gated.out_scores, 0.95),
            100.0
                * gated
                    .in_scores
                    .iter()
                    .filter(|&&s| gated.threshold.is_some_and(|t| s > t))
                    .count() as f64
                / gated.in_scores.len() as f64
        );
    }
    println!("report: {}, {}, {}", acc_svg.display(), pl_svg.display(), ood_svg.display());
    if let Some(j) = &args.json {
        write_json(j, &p.name, &outcomes, &gap)?;
        println!("json: {}", j.display());
    }
    match peak_rss_mib() {
        Some(mib) => println!("total time {:.1?}, peak RSS {mib:.0} MiB", t0.elapsed()),
        None => println!("total time {:.1?}", t0.elapsed()),
    }
    Ok(())
}

fn experiment(args: &ExperimentArgs) -> edge_ssl::Result<()> {
    use edge_ssl::experiment::{Spec, embed_spec, run as run_experiment};
    let Some(spec_path) = args.spec.as_ref().filter(|_| !args.list_algorithms) else {
        for a in edge_ssl::learner::Algorithm::ALL {
            println!("{}", a.name());
        }
        return Ok(());
    };
    let t0 = Instant::now();
    let mut spec = Spec::load(spec_path)?;
    if let Some(e) = args.engine.engine {
        spec.backbone.engine = e;
    }
    if let Some(t) = args.engine.threads {
        spec.backbone.threads = t;
    }
    if let Some(l) = &args.engine.ort_library {
        // Given on the command line: relative to the working directory, not the spec.
        spec.backbone.library = Some(std::path::absolute(l).unwrap_or_else(|_| l.clone()));
    }
    if let Some(seeds) = args.seeds.clone().filter(|s| !s.is_empty()) {
        spec.seeds = seeds;
    }
    if let Some(algorithms) = &args.algorithms {
        for a in algorithms {
            edge_ssl::learner::Algorithm::parse_combination(a)?;
        }
        spec.algorithms = algorithms.clone();
    }
    if let Some(g) = args.gate {
        (spec.protocol.gate, spec.protocol.ungated) = (g != GateRuns::Off, g != GateRuns::On);
    }
    let cache = EmbeddingCache::new(&args.cache);
    let data = embed_spec(&spec, &cache, |what| {
        eprintln!("embedding {what} (cached after the first time)")
    })?;
    eprintln!(
        "{}: {} pool, {} test, {} out-of-distribution embeddings of dim {}, {} classes, {} engine ({:.1?})",
        spec.name,
        data.pool.1.len(),
        data.test.1.len(),
        data.ood.len() / data.dim.max(1),
        data.dim,
        data.n_classes,
        spec.backbone.engine,
        t0.elapsed()
    );
    let n_runs = spec.n_runs();
    let pb = bar(n_runs, "runs");
    let mut k = 0;
    let out = run_experiment(&spec, &data, |name, seed| {
        k += 1;
        if pb.is_hidden() {
            // Not a terminal (a log file, CI): one plain line per run instead of a bar.
            eprintln!("run {k}/{n_runs}: {name}, seed {seed} ({:.0?})", t0.elapsed());
        }
        pb.set_message(format!("{name} seed {seed}"));
        pb.inc(1);
    })?;
    pb.finish_and_clear();
    println!("{} ({} seeds: {:?})", out.name, spec.seeds.len(), spec.seeds);
    println!(
        "{:<26} {:>5} {:>16} {:>10} {:>10} {:>9} {:>10} {:>9} {:>10} {:>10}",
        "algorithm",
        "gate",
        "accuracy",
        "gap closed",
        "PL precis.",
        "coverage",
        "prop. prec",
        "OOD AUROC",
        "OOD admit.",
        "samples/s"
    );
    let pct = |v: f64| if v.is_finite() { format!("{:.1}%", 100.0 * v) } else { "-".into() };
    let num = |v: f64| if v.is_finite() { format!("{v:.3}") } else { "-".into() };
    let mut json = format!(
        "{{\n  \"name\": {:?},\n  \"seeds\": {:?},\n  \"results\": [\n",
        out.name, spec.seeds
    );
    for (i, r) in out.rows.iter().enumerate() {
        let (m, s) = r.accuracy();
        let baseline = r.algorithm == "supervised" || r.algorithm == "oracle";
        println!(
            "{:<26} {:>5} {:>9.4} +- {:.3} {:>10} {:>10} {:>9} {:>10} {:>9} {:>10} {:>10.0}",
            r.algorithm,
            if r.gate && !baseline {
                "on"
            } else if baseline {
                "-"
            } else {
                "off"
            },
            m,
            s,
            pct(out.gap_closed(r)),
            pct(r.pseudo_precision()),
            pct(r.pseudo_coverage()),
            pct(r.precision_curves().1[3]),
            num(r.ood_auroc()),
            pct(r.admitted_ood_share()),
            r.samples_per_s()
        );
        let (bank_curve, prop_curve) = r.precision_curves();
        let curve = |c: [f64; 4]| c.map(json_num).join(", ");
        json.push_str(&format!(
            "    {{\"algorithm\": {:?}, \"gate\": {}, \"accuracy_mean\": {}, \"accuracy_std\": {}, \"accuracies\": [{}], \"gap_closed\": {}, \"pseudo_label_precision\": {}, \"pseudo_label_coverage\": {}, \"ood_auroc\": {}, \"bank_ood_share\": {}, \"samples_per_s\": {}, \"bank_precision_at_coverage\": [{}], \"propagated_precision_at_coverage\": [{}], \"temperatures\": [{}]}}{}\n",
            r.algorithm,
            r.gate && !baseline,
            json_num(m),
            json_num(s),
            r.runs.iter().map(|x| json_num(x.accuracy)).collect::<Vec<_>>().join(", "),
            json_num(out.gap_closed(r)),
            json_num(r.pseudo_precision()),
            json_num(r.pseudo_coverage()),
            json_num(r.ood_auroc()),
            json_num(r.admitted_ood_share()),
            json_num(r.samples_per_s()),
            curve(bank_curve),
            curve(prop_curve),
            r.runs.iter().map(|x| json_num(f64::from(x.temperature))).collect::<Vec<_>>().join(", "),
            if i + 1 < out.rows.len() { "," } else { "" }
        ));
    }
    json.push_str("  ]\n}\n");
    println!(
        "gap closed = (acc - supervised) / (oracle - supervised) on mean accuracies; bank_ood_share in JSON = share of admitted pseudo-labels that were out of distribution; prop. prec = precision of the propagated labels in the bank at the end (labelprop, comatch); JSON *_precision_at_coverage: precision of the bank's pseudo-labels ranked by teacher confidence / propagated weight, at 25/50/75/100% coverage"
    );
    if let Some(p) = &args.json {
        std::fs::write(p, json).map_err(|e| edge_ssl::Error::Io { path: p.clone(), source: e })?;
        println!("json: {}", p.display());
    }
    println!("total time {:.1?}", t0.elapsed());
    Ok(())
}

fn embed(args: &EmbedArgs) -> edge_ssl::Result<()> {
    let t = Instant::now();
    let input: &Path = &args.input;
    enum Loaded {
        Images(ImageSet),
        Windows(SensorSet),
    }
    let loaded = match args.format {
        Format::Idx => Loaded::Images(idx::read_images(input, None::<&Path>)?),
        Format::Folder => Loaded::Images(folder::read_folder(input, args.size, args.size)?),
        Format::Npy => Loaded::Windows(npy::read_windows(input, None::<&Path>, None::<&Path>)?),
    };
    let mut spec = match &loaded {
        Loaded::Windows(s) => {
            let mut spec = BackboneSpec::minirocket_imu(args.batch);
            spec.input = edge_ssl::InputKind::Sensor { steps: s.steps, channels: s.channels };
            spec
        }
        Loaded::Images(_) => BackboneSpec::efficientnet_lite0(args.size, args.batch),
    };
    spec.embedding_output = args.output.clone();
    let mut backbone = Backbone::load(&args.model, args.engine.apply(spec))?;
    let d = backbone.embedding_dim();
    let n = match &loaded {
        Loaded::Images(s) => s.len(),
        Loaded::Windows(s) => s.len(),
    };
    let all: Vec<usize> = (0..n).collect();
    let mut out = vec![0f32; n * d];
    let pb = bar(n, "embed");
    match &loaded {
        Loaded::Images(s) => {
            embed_images(&mut backbone, s, &all, &mut out, |k| pb.set_position(k as u64))?
        }
        Loaded::Windows(s) => {
            embed_windows(&mut backbone, s, &all, &mut out, |k| pb.set_position(k as u64))?
        }
    }
    pb.finish();
    npy::write_f32(&args.out, &[n, d], &out)?;
    println!("wrote {} embeddings of dim {d} to {} in {:.1?}", n, args.out.display(), t.elapsed());
    Ok(())
}

fn main() -> ExitCode {
    // No subcommand means `run`, with its options given at the top level.
    let cli = Cli::parse();
    let result = match &cli.command {
        None => run(&cli.run),
        Some(Command::Run(a)) => run(a),
        Some(Command::Embed(a)) => embed(a),
        Some(Command::Experiment(a)) => experiment(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                eprintln!("  caused by: {s}");
                source = s.source();
            }
            ExitCode::FAILURE
        }
    }
}
