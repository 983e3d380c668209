//! Readers on the shipped data (good input) and on corrupted copies of it (typed errors, no panic).

use std::io::Write;
use std::path::{Path, PathBuf};

use edge_ssl::Error;
use edge_ssl::data::{folder, idx, npy};

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/data");

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("edge-ssl-readers-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn gunzip(p: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    std::io::Read::read_to_end(
        &mut flate2::read::GzDecoder::new(std::fs::File::open(p).unwrap()),
        &mut out,
    )
    .unwrap();
    out
}

fn bad_data_reason(e: Error) -> String {
    match e {
        Error::BadData { reason, .. } => reason,
        other => panic!("expected BadData, got {other:?}"),
    }
}

#[test]
fn idx_reads_shipped_fashion_mnist_and_mnist() {
    let fm = Path::new(DATA).join("fashion-mnist");
    let test = idx::read_images(
        fm.join("t10k-images-idx3-ubyte.gz"),
        Some(fm.join("t10k-labels-idx1-ubyte.gz")),
    )
    .unwrap();
    assert_eq!((test.len(), test.height, test.width, test.channels), (2000, 28, 28, 1));
    let labels = test.labels.as_ref().unwrap();
    for c in 0..10 {
        assert_eq!(labels.iter().filter(|&&l| l == c).count(), 200, "class {c} balanced");
    }
    let pool = idx::read_images(fm.join("train-images-idx3-ubyte.gz"), None::<&Path>).unwrap();
    assert_eq!(pool.len(), 6000);
    let ood = idx::read_images(
        Path::new(DATA).join("mnist/ood-images-idx3-ubyte.gz"),
        Some(Path::new(DATA).join("mnist/ood-labels-idx1-ubyte.gz")),
    )
    .unwrap();
    assert_eq!(ood.len(), 2000);
    // Digits are dark background with bright strokes: the border pixels are ~0.
    let border: u32 = (0..ood.len()).map(|i| u32::from(ood.image(i)[0])).sum();
    assert_eq!(border, 0);
}

#[test]
fn idx_plain_and_gz_agree() {
    let gz = Path::new(DATA).join("fashion-mnist/t10k-labels-idx1-ubyte.gz");
    let plain = tmp("labels-plain");
    std::fs::write(&plain, gunzip(&gz)).unwrap();
    assert_eq!(idx::read_labels(&gz).unwrap(), idx::read_labels(&plain).unwrap());
}

#[test]
fn idx_truncated_file_is_a_typed_error_naming_the_file() {
    let raw = gunzip(&Path::new(DATA).join("fashion-mnist/t10k-images-idx3-ubyte.gz"));
    let p = tmp("truncated-idx");
    std::fs::write(&p, &raw[..raw.len() - 100]).unwrap();
    let e = idx::read_images(&p, None::<&Path>).unwrap_err();
    assert!(e.to_string().contains("truncated-idx"), "{e}");
    assert!(bad_data_reason(e).contains("truncated"));
}

#[test]
fn idx_truncated_gzip_stream_is_a_typed_error() {
    let gz =
        std::fs::read(Path::new(DATA).join("fashion-mnist/t10k-labels-idx1-ubyte.gz")).unwrap();
    let p = tmp("truncated.gz");
    std::fs::write(&p, &gz[..gz.len() / 2]).unwrap();
    let e = idx::read_labels(&p).unwrap_err();
    assert!(matches!(e, Error::BadData { .. }), "{e:?}");
}

#[test]
fn idx_wrong_magic_and_wrong_dims() {
    let p = tmp("wrong-magic");
    std::fs::write(&p, [1u8, 0, 8, 1, 0, 0, 0, 1, 5]).unwrap();
    assert!(bad_data_reason(idx::read_labels(&p).unwrap_err()).contains("magic"));
    // A label file (1-D) given as images.
    let labels = Path::new(DATA).join("fashion-mnist/t10k-labels-idx1-ubyte.gz");
    assert!(
        bad_data_reason(idx::read_images(&labels, None::<&Path>).unwrap_err()).contains("dims")
    );
    // Images and labels of different lengths.
    let images = Path::new(DATA).join("fashion-mnist/t10k-images-idx3-ubyte.gz");
    let other = Path::new(DATA).join("fashion-mnist/train-labels-idx1-ubyte.gz");
    assert!(
        bad_data_reason(idx::read_images(&images, Some(&other)).unwrap_err())
            .contains("labels for")
    );
}

#[test]
fn idx_missing_file_is_io_error() {
    let e = idx::read_labels("/nonexistent/labels.idx").unwrap_err();
    assert!(matches!(e, Error::Io { .. }), "{e:?}");
}

#[test]
fn npy_reads_shipped_watch_windows() {
    let w = Path::new(DATA).join("watch");
    let set = npy::read_windows(
        w.join("windows_x.npy"),
        Some(w.join("windows_y.npy")),
        Some(w.join("windows_groups.npy")),
    )
    .unwrap();
    assert_eq!((set.steps, set.channels), (128, 6));
    assert!(set.len() > 1000);
    let y = set.labels.as_ref().unwrap();
    assert_eq!(*y.iter().max().unwrap(), 6, "7 exercises");
    let g = set.groups.as_ref().unwrap();
    assert_eq!((*g.iter().min().unwrap(), *g.iter().max().unwrap()), (1, 10), "10 subjects");
}

fn write_npy_f32(p: &Path, shape: &[usize], v: &[f32]) {
    std::fs::write(p, npy::encode_f32(shape, v).unwrap()).unwrap();
}

#[test]
fn npy_nan_values_are_reported_with_their_position() {
    let mut v = vec![0.5f32; 2 * 4 * 3];
    v[4 * 3 + 2 * 3 + 1] = f32::NAN; // window 1, step 2, channel 1
    let p = tmp("nan.npy");
    write_npy_f32(&p, &[2, 4, 3], &v);
    let r = bad_data_reason(npy::read_windows(&p, None::<&Path>, None::<&Path>).unwrap_err());
    assert!(r.contains("window 1, step 2, channel 1"), "{r}");
}

#[test]
fn npy_truncated_wrong_magic_and_wrong_dims() {
    let good = npy::encode_f32(&[2, 4, 3], &[1.0; 24]).unwrap();
    let p = tmp("trunc.npy");
    std::fs::write(&p, &good[..good.len() - 3]).unwrap();
    assert!(
        bad_data_reason(npy::read_windows(&p, None::<&Path>, None::<&Path>).unwrap_err())
            .contains("truncated")
    );
    let p = tmp("magic.npy");
    let mut bad = good.clone();
    bad[0] = b'P';
    std::fs::write(&p, &bad).unwrap();
    assert!(bad_data_reason(npy::read(&p).unwrap_err()).contains("magic"));
    let p = tmp("dims.npy");
    write_npy_f32(&p, &[24], &[1.0; 24]);
    assert!(
        bad_data_reason(npy::read_windows(&p, None::<&Path>, None::<&Path>).unwrap_err())
            .contains("[n, T, C]")
    );
    // labels of the wrong length
    let x = tmp("x.npy");
    write_npy_f32(&x, &[2, 4, 3], &[1.0; 24]);
    let y = Path::new(DATA).join("watch/windows_y.npy");
    assert!(
        bad_data_reason(npy::read_windows(&x, Some(&y), None::<&Path>).unwrap_err())
            .contains("shape [2]")
    );
    // float labels
    let yf = tmp("yf.npy");
    write_npy_f32(&yf, &[2], &[0.0, 1.0]);
    assert!(
        bad_data_reason(npy::read_windows(&x, Some(&yf), None::<&Path>).unwrap_err())
            .contains("integer")
    );
}

#[test]
fn npy_write_then_read_round_trips() {
    let p = tmp("emb.npy");
    let v: Vec<f32> = (0..12).map(|i| i as f32 * 0.25 - 1.0).collect();
    npy::write_f32(&p, &[3, 4], &v).unwrap();
    let a = npy::read(&p).unwrap();
    assert_eq!(a.shape, vec![3, 4]);
    assert_eq!(a.to_f32().unwrap(), v);
}

fn write_png(p: &Path, w: u32, h: u32, value: u8) {
    let img = image::RgbImage::from_pixel(w, h, image::Rgb([value, value / 2, 255 - value]));
    img.save(p).unwrap();
}

#[test]
fn folder_reads_classes_in_sorted_order_and_resizes() {
    let root = tmp("folder-good");
    for (class, v) in [("b_shirt", 10u8), ("a_boot", 200)] {
        std::fs::create_dir_all(root.join(class)).unwrap();
        write_png(&root.join(class).join("1.png"), 5, 7, v);
        write_png(&root.join(class).join("2.png"), 9, 3, v);
    }
    std::fs::write(root.join("a_boot").join("notes.txt"), "skipped").unwrap();
    let set = folder::read_folder(&root, 4, 6).unwrap();
    assert_eq!(set.class_names, vec!["a_boot", "b_shirt"]);
    assert_eq!(set.labels.as_deref(), Some(&[0, 0, 1, 1][..]));
    assert_eq!((set.len(), set.height, set.width, set.channels), (4, 4, 6, 3));
    assert_eq!(&set.image(0)[..3], &[200, 100, 55]);
    assert_eq!(&set.image(3)[..3], &[10, 5, 245]);
}

#[test]
fn folder_corrupt_image_names_the_file() {
    let root = tmp("folder-bad");
    std::fs::create_dir_all(root.join("cat")).unwrap();
    write_png(&root.join("cat").join("ok.png"), 4, 4, 1);
    let mut f = std::fs::File::create(root.join("cat").join("zz-broken.png")).unwrap();
    f.write_all(b"\x89PNG\r\n\x1a\n this is not a png body").unwrap();
    let e = folder::read_folder(&root, 4, 4).unwrap_err();
    assert!(
        matches!(e, Error::BadImage { ref path, .. } if path.ends_with("zz-broken.png")),
        "{e:?}"
    );
}

#[test]
fn folder_without_classes_or_images_is_an_error() {
    let root = tmp("folder-empty");
    std::fs::create_dir_all(&root).unwrap();
    assert!(bad_data_reason(folder::read_folder(&root, 4, 4).unwrap_err()).contains("no class"));
    std::fs::create_dir_all(root.join("empty-class")).unwrap();
    assert!(bad_data_reason(folder::read_folder(&root, 4, 4).unwrap_err()).contains("no .png"));
}
