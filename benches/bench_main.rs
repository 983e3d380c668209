//! All criterion benches: `cargo bench --bench bench_main` (full), `cargo test --benches`
//! (each bench runs once, as a smoke test in CI).

use criterion::criterion_main;

mod benchmarks;

criterion_main! {
    benchmarks::backbone::benches,
    benchmarks::head::benches,
    benchmarks::bank::benches,
    benchmarks::gate::benches,
    benchmarks::persist::benches,
    benchmarks::propagate::benches,
    benchmarks::propagate::maps,
    benchmarks::learner::benches,
    benchmarks::backbone_cpu::benches,
}
