//! Resident memory of a learner over a long stream (no backbone): feeds a synthetic embedding
//! stream to a default learner and prints VmRSS and VmHWM (from `/proc/self/status`, Linux)
//! after 10k, 100k and 1M samples (and every 100k, and at N), so a growth in memory shows up as a growing
//! RSS. Default run: 1280-d embeddings, 10 classes, `LearnerParams::new` (FlexMatch, gate,
//! bank 4096), 10 labels per class, then N unlabeled samples (10% of them low-norm "strange"
//! inputs). At ~1 ms per step, the full million takes ~20 minutes.
//!
//! ```sh
//! cargo run --release --example rss -- [N=1000000] [DIM=1280] [CLASSES=10] [ALGORITHM=flexmatch]
//! ```

use edge_ssl::learner::{Algorithm, LearnerParams};
use rand::{Rng, SeedableRng, rngs::StdRng};

/// `(VmRSS, VmHWM)` of this process in KiB (0 where `/proc` is missing).
fn rss_kib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let arg = |i: usize, default: &str| std::env::args().nth(i).unwrap_or_else(|| default.into());
    let n: u64 = arg(1, "1000000").parse()?;
    let (d, k): (usize, usize) = (arg(2, "1280").parse()?, arg(3, "10").parse()?);
    let mut p = LearnerParams::new(d, k);
    p.algorithm = arg(4, "flexmatch").parse::<Algorithm>()?;
    let mut rng = StdRng::seed_from_u64(7);
    let centres: Vec<f32> = (0..k * d).map(|_| rng.random::<f32>()).collect();
    // One sample of class `c` (non-negative, like a pooled ReLU6 embedding) or, for `None`,
    // a low-norm strange one, written into `x`.
    let sample = |c: Option<usize>, rng: &mut StdRng, x: &mut [f32]| {
        let centre = &centres[c.unwrap_or(0) * d..][..d];
        for (v, m) in x.iter_mut().zip(centre) {
            let s = (m + rng.random_range(-0.3..0.3f32)).max(0.0);
            *v = if c.is_some() { s } else { 0.2 * s };
        }
    };
    let mut row = vec![0f32; d];
    let mut learner = p.build()?;
    println!("start: VmRSS {} KiB, VmHWM {} KiB", rss_kib().0, rss_kib().1);
    for i in 0..10 * k {
        sample(Some(i % k), &mut rng, &mut row);
        learner.observe_labeled(&row, (i % k) as u32)?;
    }
    let marks = [10_000, 100_000, 1_000_000];
    let t0 = std::time::Instant::now();
    for i in 1..=n {
        let c = rng.random_range(0..k);
        let strange = rng.random_bool(0.1);
        sample((!strange).then_some(c), &mut rng, &mut row);
        learner.observe(&row)?;
        if marks.contains(&i) || i % 100_000 == 0 || i == n {
            let (rss, hwm) = rss_kib();
            let c = learner.counters();
            println!(
                "{i} samples: VmRSS {rss} KiB, VmHWM {hwm} KiB ({:.1} s, admitted {}, gated {}, bank {})",
                t0.elapsed().as_secs_f64(),
                c.admitted,
                c.gated,
                learner.bank().len()
            );
        }
    }
    Ok(())
}
