//! The `edge-ssl` binary on user data: a sensor CSV with a bad row, missing labels, `embed`.

use std::path::PathBuf;
use std::process::Command;

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("edge-ssl-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// Rows of the shipped watch windows as CSV (`ax..gz,label`), plus one NaN row at the end.
fn watch_csv(windows: usize) -> PathBuf {
    let w = concat!(env!("CARGO_MANIFEST_DIR"), "/data/watch");
    let x = edge_ssl::data::npy::read_windows(
        format!("{w}/windows_x.npy"),
        Some(format!("{w}/windows_y.npy")),
        None::<&str>,
    )
    .unwrap();
    let y = x.labels.clone().unwrap();
    let mut s = String::from("ax,ay,az,gx,gy,gz,label\n");
    for (i, label) in y.iter().enumerate().take(windows) {
        for row in x.window(i).chunks_exact(6) {
            let v: Vec<String> = row.iter().map(|v| format!("{v:.5}")).collect();
            s.push_str(&format!("{},{label}\n", v.join(",")));
        }
    }
    s.push_str("1,2,nan,4,5,6,0\n");
    let p = tmp("watch.csv");
    std::fs::write(&p, s).unwrap();
    p
}

#[test]
fn run_on_sensor_csv_skips_the_bad_row_and_reports() {
    let csv = watch_csv(40);
    let report = tmp("report");
    let json = tmp("user.json");
    let out = Command::new(env!("CARGO_BIN_EXE_edge-ssl"))
        .args(["run", "--sensor-csv"])
        .arg(&csv)
        .args(["--csv-labeled", "--classes", "7", "--labels", "2", "--report"])
        .arg(&report)
        .arg("--json")
        .arg(&json)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("1 skipped"), "{stdout}");
    assert!(stderr.contains("NaN"), "the skipped row is named: {stderr}");
    assert!(stdout.contains("held-out accuracy"), "{stdout}");
    let j = std::fs::read_to_string(&json).unwrap();
    assert!(j.contains("\"skipped\": 1") && j.contains("\"heldout_accuracy\": 0."), "{j}");
    assert!(report.join("accuracy.svg").exists());
}

#[test]
fn run_without_labels_is_a_clear_error() {
    let images = concat!(env!("CARGO_MANIFEST_DIR"), "/data/mnist/ood-images-idx3-ubyte.gz");
    let out = Command::new(env!("CARGO_BIN_EXE_edge-ssl"))
        .args(["run", "--idx", images])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("labels are needed"));
}

#[test]
fn maps_of_the_sensor_model_or_on_onnxruntime_are_clear_errors() {
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_edge-ssl")).args(args).output().unwrap();
        assert!(!out.status.success(), "{args:?}");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let err = run(&["run", "--scenario", "sensor", "--rows", "map"]);
    assert!(err.contains("no spatial map"), "{err}");
    let err = run(&["run", "--rows", "map", "--engine", "onnxruntime"]);
    assert!(err.contains("maps need the tract engine"), "{err}");
    let err = run(&["run", "--rows", "video"]);
    assert!(err.contains("expected auto, map or embedding"), "{err}");
}

#[test]
fn embed_writes_an_npy_of_the_right_shape() {
    let x = concat!(env!("CARGO_MANIFEST_DIR"), "/models/golden/minirocket_input.npy");
    let out_path = tmp("emb.npy");
    let out = Command::new(env!("CARGO_BIN_EXE_edge-ssl"))
        .args(["embed", "--format", "npy", "--input", x, "--model"])
        .arg(edge_ssl::models::SENSOR_INT8)
        .arg("--out")
        .arg(&out_path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let a = edge_ssl::data::npy::read(&out_path).unwrap();
    assert_eq!(a.shape, vec![4, 936]);
}

#[test]
fn experiment_runs_a_tiny_spec_and_writes_the_json_schema() {
    let root = env!("CARGO_MANIFEST_DIR");
    let spec = tmp("tiny.toml");
    std::fs::write(
        &spec,
        format!(
            r#"name = "tiny"
seeds = [3]
algorithms = ["fixmatch", "labelprop"]
[backbone]
model = "{root}/models/efficientnet-lite0-int8.onnx"
input = "image"
size = 112
[data]
format = "idx"
train_x = "{root}/data/fashion-mnist/train-images-idx3-ubyte.gz"
train_y = "{root}/data/fashion-mnist/train-labels-idx1-ubyte.gz"
test_x = "{root}/data/fashion-mnist/t10k-images-idx3-ubyte.gz"
test_y = "{root}/data/fashion-mnist/t10k-labels-idx1-ubyte.gz"
ood_x = "{root}/data/mnist/ood-images-idx3-ubyte.gz"
[protocol]
labels_per_class = 5
stream_len = 700
ood_fraction = 0.2
gate = true
eval_every = 350
"#
        ),
    )
    .unwrap();
    let json = tmp("tiny.json");
    let out = Command::new(env!("CARGO_BIN_EXE_edge-ssl"))
        .arg("experiment")
        .arg(&spec)
        .arg("--json")
        .arg(&json)
        .args(["--cache", concat!(env!("CARGO_TARGET_TMPDIR"), "/embeddings")])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let j = std::fs::read_to_string(&json).unwrap();
    for key in [
        "\"name\": \"tiny\"",
        "\"algorithm\"",
        "\"gate\"",
        "\"accuracy_mean\"",
        "\"accuracy_std\"",
        "\"gap_closed\"",
        "\"pseudo_label_precision\"",
        "\"pseudo_label_coverage\"",
        "\"ood_auroc\"",
        "\"bank_ood_share\"",
        "\"samples_per_s\"",
        "\"bank_precision_at_coverage\"",
        "\"propagated_precision_at_coverage\"",
        "\"temperatures\": [1.000000]",
    ] {
        assert!(j.contains(key), "missing {key} in {j}");
    }
    // supervised, oracle, fixmatch and labelprop with gate and without
    assert_eq!(j.matches("\"algorithm\"").count(), 6, "{j}");
    let acc = |name: &str| -> f64 {
        let at = j.find(&format!("\"algorithm\": \"{name}\"")).unwrap();
        let rest = &j[at..];
        let k = rest.find("\"accuracy_mean\": ").unwrap() + "\"accuracy_mean\": ".len();
        rest[k..].split([',', '}']).next().unwrap().trim().parse().unwrap()
    };
    assert!(
        acc("oracle") >= acc("supervised"),
        "oracle {} < supervised {}",
        acc("oracle"),
        acc("supervised")
    );
    // malformed spec: a typed error naming the file
    std::fs::write(&spec, "name = 1").unwrap();
    let out =
        Command::new(env!("CARGO_BIN_EXE_edge-ssl")).arg("experiment").arg(&spec).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad spec"));
}

#[test]
fn experiment_lists_every_algorithm_it_accepts() {
    let out = Command::new(env!("CARGO_BIN_EXE_edge-ssl"))
        .args(["experiment", "--list-algorithms"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let names: Vec<String> =
        String::from_utf8_lossy(&out.stdout).lines().map(str::to_owned).collect();
    for must in ["fixmatch", "flexmatch", "labelprop", "comatch"] {
        assert!(names.iter().any(|n| n == must), "{must} missing from {names:?}");
    }
    // every listed name is accepted as an algorithm
    for n in &names {
        edge_ssl::learner::Algorithm::parse_combination(n).unwrap();
    }
}
