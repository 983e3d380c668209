//! The `edge-ssl` command. `cargo run --release` with no arguments runs the default job.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use clap::{Parser, Subcommand, ValueEnum};
use edge_ssl::data::{ImageSet, SensorSet, folder, idx, npy};
use edge_ssl::embed::{embed_images, embed_windows};
use edge_ssl::eval::{accuracy, mean_std, sample_per_class};
use edge_ssl::head::ncm::{Metric, NcmParams};
use edge_ssl::{Backbone, BackboneSpec, models};
use indicatif::{ProgressBar, ProgressStyle};
use rand::SeedableRng;

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/data");

#[derive(Parser)]
#[command(
    name = "edge-ssl",
    version,
    about = "On-device semi-supervised learning on frozen ONNX backbones"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// The default job: few-shot baselines on the shipped camera and sensor data.
    Run(RunArgs),
    /// Write the embeddings of a dataset as a float32 `[n, D]` .npy file.
    Embed(EmbedArgs),
}

#[derive(clap::Args)]
struct RunArgs {
    /// Image side fed to the camera backbone.
    #[arg(long, default_value_t = 112)]
    size: usize,
    /// Labelled examples per class.
    #[arg(long, default_value_t = 10)]
    labels: usize,
    /// Seeds: one few-shot draw each.
    #[arg(long, value_delimiter = ',', default_values_t = [1u64, 2, 3])]
    seeds: Vec<u64>,
    /// Backbone batch size.
    #[arg(long, default_value_t = 1)]
    batch: usize,
    /// Folder with the shipped data.
    #[arg(long, default_value = DATA)]
    data: PathBuf,
    /// Camera model (ONNX).
    #[arg(long, default_value = models::CAMERA_INT8)]
    camera_model: PathBuf,
    /// Sensor model (ONNX).
    #[arg(long, default_value = models::SENSOR_INT8)]
    sensor_model: PathBuf,
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

struct Row {
    data: &'static str,
    features: String,
    metric: Metric,
    accs: Vec<f64>,
}

fn camera_section(args: &RunArgs, rows: &mut Vec<Row>) -> edge_ssl::Result<()> {
    let fm = args.data.join("fashion-mnist");
    let pool = idx::read_images(
        fm.join("train-images-idx3-ubyte.gz"),
        Some(fm.join("train-labels-idx1-ubyte.gz")),
    )?;
    let test = idx::read_images(
        fm.join("t10k-images-idx3-ubyte.gz"),
        Some(fm.join("t10k-labels-idx1-ubyte.gz")),
    )?;
    let pool_y = pool.labels.clone().expect("labels read");
    let test_y = test.labels.clone().expect("labels read");
    let n_classes = 10;

    // One few-shot draw per seed; embed each drawn image once.
    let draws: Vec<Vec<usize>> = args
        .seeds
        .iter()
        .map(|&s| {
            let mut rng = rand::rngs::StdRng::seed_from_u64(s);
            sample_per_class(&pool_y, None, n_classes, args.labels, &mut rng)
        })
        .collect::<edge_ssl::Result<_>>()?;
    let mut labelled: Vec<usize> = draws.iter().flatten().copied().collect();
    labelled.sort_unstable();
    labelled.dedup();

    let t = Instant::now();
    let spec = BackboneSpec::efficientnet_lite0(args.size, args.batch);
    let mut backbone = Backbone::load(&args.camera_model, spec)?;
    eprintln!("camera backbone {} loaded in {:.2?}", args.camera_model.display(), t.elapsed());
    let d = backbone.embedding_dim();

    let mut pool_emb = vec![0f32; labelled.len() * d];
    let pb = bar(labelled.len(), "embed labelled");
    embed_images(&mut backbone, &pool, &labelled, &mut pool_emb, |n| pb.set_position(n as u64))?;
    pb.finish();
    let test_idx: Vec<usize> = (0..test.len()).collect();
    let mut test_emb = vec![0f32; test.len() * d];
    let pb = bar(test.len(), "embed test");
    embed_images(&mut backbone, &test, &test_idx, &mut test_emb, |n| pb.set_position(n as u64))?;
    pb.finish();

    // Features: rows of `labelled` then test rows, for both spaces.
    let pos = |i: usize| labelled.binary_search(&i).expect("drawn index was embedded");
    let sl = pool.sample_len();
    let pixels = |set: &ImageSet, rows: &[usize]| -> Vec<f32> {
        rows.iter().flat_map(|&r| set.image(r).iter().map(|&v| f32::from(v) / 255.0)).collect()
    };
    let pool_px = pixels(&pool, &labelled);
    let test_px = pixels(&test, &test_idx);
    let spaces: [(&str, usize, &[f32], &[f32]); 2] = [
        ("int8 EfficientNet-Lite0", d, &pool_emb, &test_emb),
        ("raw pixels", sl, &pool_px, &test_px),
    ];
    for (name, dim, train_feats, test_feats) in spaces {
        for metric in [Metric::Cosine, Metric::Euclidean] {
            let mut accs = Vec::new();
            for draw in &draws {
                let rows: Vec<usize> = draw.iter().map(|&i| pos(i)).collect();
                let y: Vec<u32> = draw.iter().map(|&i| pool_y[i]).collect();
                let gather = |f: &[f32], rows: &[usize]| -> Vec<f32> {
                    rows.iter().flat_map(|&r| f[r * dim..(r + 1) * dim].iter().copied()).collect()
                };
                let model =
                    NcmParams { metric }.fit(&gather(train_feats, &rows), dim, &y, n_classes)?;
                let mut pred = vec![0; test.len()];
                model.predict_into(test_feats, &mut pred)?;
                accs.push(accuracy(&pred, &test_y));
            }
            let features =
                if dim == d { format!("{name} @{}", args.size) } else { name.to_owned() };
            rows.push(Row { data: "Fashion-MNIST", features, metric, accs });
        }
    }
    Ok(())
}

fn sensor_section(args: &RunArgs, rows: &mut Vec<Row>) -> edge_ssl::Result<()> {
    let w = args.data.join("watch");
    let set: SensorSet = npy::read_windows(
        w.join("windows_x.npy"),
        Some(w.join("windows_y.npy")),
        Some(w.join("windows_groups.npy")),
    )?;
    let y = set.labels.clone().expect("labels read");
    let groups = set.groups.clone().expect("groups read");
    let n_classes = y.iter().max().map_or(0, |m| *m as usize + 1);
    // Honest split by subject: labels drawn from subjects 1-5, test on subjects 6-10.
    let train_pool: Vec<usize> = (0..set.len()).filter(|&i| groups[i] <= 5).collect();
    let test: Vec<usize> = (0..set.len()).filter(|&i| groups[i] > 5).collect();
    let test_y: Vec<u32> = test.iter().map(|&i| y[i]).collect();

    let t = Instant::now();
    let mut backbone =
        Backbone::load(&args.sensor_model, BackboneSpec::minirocket_imu(args.batch))?;
    eprintln!("sensor backbone {} loaded in {:.2?}", args.sensor_model.display(), t.elapsed());
    let d = backbone.embedding_dim();
    let all: Vec<usize> = (0..set.len()).collect();
    let mut emb = vec![0f32; set.len() * d];
    let pb = bar(set.len(), "embed IMU windows");
    embed_windows(&mut backbone, &set, &all, &mut emb, |n| pb.set_position(n as u64))?;
    pb.finish();

    let spaces: [(&str, usize, &[f32]); 2] =
        [("int8 MiniRocket IMU", d, &emb), ("raw window", set.sample_len(), &set.values)];
    for (name, dim, feats) in spaces {
        for metric in [Metric::Cosine, Metric::Euclidean] {
            let mut accs = Vec::new();
            for &s in &args.seeds {
                let mut rng = rand::rngs::StdRng::seed_from_u64(s);
                let train =
                    sample_per_class(&y, Some(&train_pool), n_classes, args.labels, &mut rng)?;
                let train_y: Vec<u32> = train.iter().map(|&i| y[i]).collect();
                let (train_x, test_x) = (gather(feats, dim, &train), gather(feats, dim, &test));
                let acc =
                    ncm_accuracy(metric, dim, n_classes, (&train_x, &train_y), (&test_x, &test_y))?;
                accs.push(acc);
            }
            rows.push(Row {
                data: "watch IMU (by subject)",
                features: name.to_owned(),
                metric,
                accs,
            });
        }
    }
    Ok(())
}

fn run(args: &RunArgs) -> edge_ssl::Result<()> {
    let t = Instant::now();
    let mut rows = Vec::new();
    camera_section(args, &mut rows)?;
    sensor_section(args, &mut rows)?;
    println!();
    println!(
        "Few-shot baseline: nearest class mean, {} labels/class, seeds {:?} (mean +- std over seeds)",
        args.labels, args.seeds
    );
    println!("{:<24} {:<30} {:<10} {:>16}", "data", "features", "metric", "test accuracy");
    for r in &rows {
        let (m, s) = mean_std(&r.accs);
        let metric = match r.metric {
            Metric::Cosine => "cosine",
            Metric::Euclidean => "euclidean",
        };
        println!("{:<24} {:<30} {:<10} {:>9.3} +- {:.3}", r.data, r.features, metric, m, s);
    }
    println!(
        "Fashion-MNIST: 2000 test images, labels drawn from a 6000-image pool; watch IMU: 128x6 windows, labels from subjects 1-5, test on subjects 6-10."
    );
    match peak_rss_mib() {
        Some(mib) => println!("total time {:.1?}, peak RSS {mib:.0} MiB", t.elapsed()),
        None => println!("total time {:.1?}", t.elapsed()),
    }
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
    let mut backbone = Backbone::load(&args.model, spec)?;
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
    // No subcommand means `run` with its defaults.
    let command = Cli::parse()
        .command
        .or_else(|| Cli::parse_from(["edge-ssl", "run"]).command)
        .expect("`run` parses with its defaults");
    let result = match &command {
        Command::Run(a) => run(a),
        Command::Embed(a) => embed(a),
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
