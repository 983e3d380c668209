//! Crash safety: a child process saves states in a loop and is SIGKILLed at random moments,
//! 200 times; after each kill the file must load as one of the saved states, bit for bit.
//!
//! The test binary re-executes itself (`std::env::current_exe`) with `EDGE_SSL_CRASH_CHILD`
//! set; the `crash_child` test then acts as the child and never returns.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use edge_ssl::bank::{Bank, BankParams};
use edge_ssl::gate::{Admitted, GateParams};
use edge_ssl::persist::{Dims, SectionId, StateFile, StateWriter};
use rand::{Rng, SeedableRng, rngs::StdRng};

const DIMS: Dims = Dims { embedding_dim: 16, n_classes: 4, bank_capacity: 64 };
const CHILD_ENV: &str = "EDGE_SSL_CRASH_CHILD";

/// The state of generation `g`, fully determined by `g` (~150 KB, so kills land mid-write).
fn state_bytes(g: u64) -> Vec<u8> {
    let mut rng = StdRng::seed_from_u64(g);
    let mut bank: Bank = BankParams::new(64, 16, 4).build().unwrap();
    for i in 0..(g % 100 + 1) {
        let x: Vec<f32> = (0..16).map(|_| rng.random_range(-1.0..1.0)).collect();
        let c = (i % 4) as u32;
        if i % 5 == 0 {
            bank.insert_given(&x, c, &mut rng).unwrap();
        } else {
            bank.insert_pseudo(Admitted::ungated(&x), c, 0.95, &mut rng).unwrap();
        }
    }
    let tx: Vec<f32> =
        (0..16 * 12).map(|i| ((i * 31 % 17) as f32) * 0.1 + (i % 3) as f32).collect();
    let ty: Vec<u32> = (0..12).map(|i| i % 4).collect();
    let gate = GateParams::default().fit(&tx, 16, &ty, 4, &[]).unwrap();
    let student: Vec<f32> = (0..32_768).map(|_| rng.random()).collect();
    let mut w = StateWriter::new(DIMS, g);
    w.bank(&bank).unwrap().gate(&gate).unwrap();
    w.f32_blob(SectionId::STUDENT, &student).unwrap();
    w.f32_blob(SectionId::TEACHER, &student[..1000]).unwrap();
    w.counters(&[g, g * 2]).unwrap();
    w.to_bytes().unwrap()
}

fn save(path: &Path, g: u64) {
    // rebuild through the writer API so the child exercises `save` itself
    let bytes = state_bytes(g);
    let f = StateFile::from_bytes(bytes, &DIMS).unwrap();
    let mut w = StateWriter::new(DIMS, g);
    w.bank(&f.bank().unwrap()).unwrap().gate(&f.gate().unwrap()).unwrap();
    let mut s = vec![0f32; f.f32_len(SectionId::STUDENT).unwrap()];
    f.f32_blob_into(SectionId::STUDENT, &mut s).unwrap();
    w.f32_blob(SectionId::STUDENT, &s).unwrap();
    let mut t = vec![0f32; f.f32_len(SectionId::TEACHER).unwrap()];
    f.f32_blob_into(SectionId::TEACHER, &mut t).unwrap();
    w.f32_blob(SectionId::TEACHER, &t).unwrap();
    w.counters(&f.counters().unwrap()).unwrap();
    w.save(path).unwrap();
}

#[test]
fn crash_child() {
    let Some(path) = std::env::var_os(CHILD_ENV) else { return };
    let path = PathBuf::from(path);
    let start = StateFile::open(&path, &DIMS).map(|f| f.generation() + 1).unwrap_or(0);
    for g in start.. {
        save(&path, g);
    }
}

#[test]
fn sigkill_at_random_moments_leaves_a_saved_state() {
    let dir = std::env::temp_dir().join(format!("edge-ssl-crash-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("state.bin");
    save(&path, 0);
    let exe = std::env::current_exe().unwrap();
    let mut rng = StdRng::seed_from_u64(42);
    let mut last = 0u64;
    let t0 = Instant::now();
    for round in 0..200 {
        let mut child = Command::new(&exe)
            .args(["crash_child", "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, &path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_micros(rng.random_range(1_000..40_000)));
        child.kill().unwrap(); // SIGKILL on Unix
        child.wait().unwrap();
        let f = StateFile::open(&path, &DIMS)
            .unwrap_or_else(|e| panic!("round {round}: state does not load: {e}"));
        let g = f.generation();
        assert!(g >= last, "round {round}: generation went back from {last} to {g}");
        let on_disk = std::fs::read(&path).unwrap();
        assert!(
            on_disk == state_bytes(g),
            "round {round}: generation {g} differs from what was saved"
        );
        last = g;
    }
    assert!(last > 50, "children made too little progress ({last} saves) to test anything");
    std::fs::remove_dir_all(&dir).unwrap();
    eprintln!("200 kills in {:.1} s, {last} generations saved", t0.elapsed().as_secs_f64());
}
