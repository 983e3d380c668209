//! Proves that a steady-state `Learner::observe` (gate score, admission, bank insert, replay
//! step with teacher, strong view, FixMatch loss, SGD and EMA) and `Learner::predict` allocate
//! nothing once the gate is fitted, for the linear and the MLP head, and that the periodic
//! refreshes of the bank's graph (label propagation, CoMatch) allocate nothing either; with an
//! adaptive block too (its steps, the stored maps, the embedding refreshes).

use edge_ssl::adapt::AdaptParams;
use edge_ssl::backbone::PointwiseConv;
use edge_ssl::learner::{Algorithm, LearnerParams};
use rand::{Rng, SeedableRng, rngs::StdRng};

mod common;

use common::allocations_in;

#[global_allocator]
static GLOBAL: common::Counting = common::Counting;

#[test]
fn the_counter_counts() {
    let mut v = Vec::new();
    let n = allocations_in(|| v = vec![1u8; 10]);
    assert_eq!((v.len(), n), (10, 1));
}

#[test]
fn steady_state_observe_and_predict_allocate_nothing() {
    for (alg, hidden, adapt) in [
        (Algorithm::FixMatch, 0, false),
        (Algorithm::FlexMatch, 16, false),
        (Algorithm::Uda, 0, false),
        (Algorithm::LabelProp, 0, false),
        (Algorithm::CoMatch, 16, false),
        (Algorithm::LabelProp, 0, true),
        (Algorithm::FixMatch, 16, true),
        (Algorithm::CoMatch, 0, true),
        // a frozen block, the graph and its vote on the maps
        (Algorithm::LabelProp, 16, true),
    ] {
        let mut p = LearnerParams::new(16, 4);
        if adapt {
            // maps of 4 channels x 4 positions -> 12-d embeddings; block steps every 2
            // samples and embedding refreshes every 40 happen inside the measured window
            let conv = PointwiseConv {
                inputs: 4,
                outputs: 12,
                weight: (0..48).map(|i| ((i * 7) % 5) as f32 * 0.1 - 0.1).collect(),
                bias: vec![0.2; 12],
            };
            let mut a = AdaptParams::new(conv, 4);
            a.refresh_every = 40;
            // CoMatch's graph on the shipped block's embeddings (a second bank pass)
            a.graph_on_shipped = alg == Algorithm::CoMatch;
            // LabelProp's block steps on the surer half of the propagated labels
            a.surest_half = alg == Algorithm::LabelProp && hidden == 0;
            if alg == Algorithm::LabelProp && hidden == 16 {
                (a.lr, a.graph_on_map) = (0.0, true);
            }
            p = p.with_adapt(a);
        }
        p.algorithm = alg;
        p.hidden = hidden;
        // graph refreshes (PCA, kNN graph, propagation) happen inside the measured window
        p.propagation.pca_dim = 8;
        p.propagation.every = 40;
        if p.adapt.as_ref().is_some_and(|a| a.graph_on_map) {
            // the map graph's configuration (PropagationParams::maps) at this size, plus the
            // Sinkhorn balancing it leaves off
            p.propagation.positions = 4;
            p.propagation.whiten = 0.5;
            p.propagation.teacher_start = false;
            p.propagation.balance_iters = 30;
        }
        p.bank_capacity = 256;
        p.gate = Some(edge_ssl::gate::GateParams {
            projection: edge_ssl::gate::Projection::Pca(4),
            ..Default::default()
        });
        p.gate_warmup = 64;
        // the teacher's temperature is refitted inside the measured window too
        p.temperature_scaling = Some(20);
        // the graph's vote in predict (on the shipped embeddings for CoMatch with a block)
        p.graph_vote = 0.5;
        let mut l = p.build().unwrap();
        let mut rng = StdRng::seed_from_u64(9);
        let sample = |c: usize, rng: &mut StdRng| -> Vec<f32> {
            let mut x: Vec<f32> = (0..16).map(|_| rng.random::<f32>() - 0.5).collect();
            x[c] += 3.0;
            x
        };
        for i in 0..12 {
            l.observe_labeled(&sample(i % 4, &mut rng), (i % 4) as u32).unwrap();
        }
        let warm: Vec<Vec<f32>> = (0..400).map(|i| sample(i % 4, &mut rng)).collect();
        for x in &warm[..300] {
            l.observe(x).unwrap();
        }
        assert!(l.gate_fitted());
        let n = allocations_in(|| {
            for (i, x) in warm[300..].iter().enumerate() {
                if i % 2 == 0 {
                    l.observe(x).unwrap();
                } else {
                    l.observe_with_view(x, &warm[i]).unwrap();
                }
                l.predict(x).unwrap();
            }
        });
        assert_eq!(
            n, 0,
            "{alg:?} hidden {hidden} adapt {adapt}: {n} allocations in 100 observe + predict"
        );
        assert_ne!(l.temperature(), 1.0, "the temperature was refitted");
        if alg.uses_graph() {
            assert!(l.propagation().unwrap().refreshes() >= 5, "refreshes were measured");
        }
    }
}
