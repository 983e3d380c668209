#!/usr/bin/env python3
"""A numpy reference of edge-ssl's unlabeled `Learner::observe` with the default parameters
(`LearnerParams::new(1280, 10)`: FlexMatch, gate, bank 4096), timed like the Rust bench
`learner/observe/flexmatch/d1280` (thread CPU time per step, median of many), and the ratio.

Per observed sample, the same math as src/learner.rs:
  gate: projection on 16 PCA directions, Mahalanobis with a 16x16 precision, the norm,
        z-scored and compared with a threshold;
  admission: teacher forward on the one sample (L2-normalized x sqrt(D)), softmax, argmax,
        written into a row of the 4096 x 1280 f32 bank;
  one replay step: 16 given + 112 pseudo rows gathered from the bank, each L2-normalized and
        scaled by sqrt(D); student forward + softmax cross-entropy on the given rows and its
        backward; teacher forward + softmax on the pseudo rows; FreeMatch update of the global
        and per-class thresholds (momentum 0.999); strong view = the rows + N(0, (0.1 rms)^2)
        noise, then inverted dropout 0.1; student forward on the strong view, CE on the
        teacher's argmax where its confidence >= global * class[y] / max(class), backward;
        SGD (lr 0.03, momentum 0.9, Nesterov, weight decay 5e-2); EMA teacher (decay 0.999).
The ramp-up weight (past 2000 steps it is 1) and the error checks are left out.

numpy is pinned to one thread (OMP_NUM_THREADS=OPENBLAS_NUM_THREADS=MKL_NUM_THREADS=1, set
before numpy is imported) since tract and the Rust learner run on one thread.

Usage:
  python3 benches/peers/learner_step.py            # time the numpy step
  cargo bench --bench bench_main -- learner/observe/flexmatch/ && \\
    python3 benches/peers/learner_step.py --compare  # and print the ratio to the Rust step
"""
from __future__ import annotations

import argparse
import json
import os
import time

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = "1"

import numpy as np  # noqa: E402  (after the thread pinning)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RUST = os.path.join(ROOT, "target", "criterion", "learner_observe", "flexmatch", "d1280",
                    "new", "estimates.json")

D, K, CAP, NL, NU = 1280, 10, 4096, 16, 112
LR, MOM, WD, EMA, FM_MOM, NOISE, DROP = 0.03, 0.9, 5e-2, 0.999, 0.999, 0.1, 0.1
SCALE = np.float32(np.sqrt(D))


def features(x):
    n = np.maximum(np.sqrt((x * x).sum(1, keepdims=True)), 1e-12)
    return x / n * SCALE


def softmax(z):
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


class Learner:
    def __init__(self, rng):
        self.rng = rng
        self.bank = rng.random((CAP, D), dtype=np.float32)
        self.labels = rng.integers(0, K, CAP)
        self.given = np.arange(0, 100)  # slots of given entries
        self.pseudo = np.arange(100, CAP)
        bound = 1 / np.sqrt(D)
        self.W = rng.uniform(-bound, bound, (K, D)).astype(np.float32)
        self.b = rng.uniform(-bound, bound, K).astype(np.float32)
        self.Wt, self.bt = self.W.copy(), self.b.copy()
        self.mW, self.mb = np.zeros_like(self.W), np.zeros_like(self.b)
        self.glob, self.cls = np.float32(1 / K), np.full(K, 1 / K, np.float32)
        self.mean = self.bank.mean(0)
        self.P = np.linalg.qr(rng.standard_normal((D, 16)))[0].astype(np.float32)
        self.prec = np.eye(16, dtype=np.float32)
        self.threshold = np.float32(3.0)
        self.next_slot = 100

    def gate(self, x):
        z = (x - self.mean) @ self.P
        maha = z @ self.prec @ z
        neg_norm = -np.sqrt(x @ x)
        return (maha - 16.0) / 4.0 + (neg_norm + 20.0) / 2.0 <= self.threshold

    def admit(self, x):
        f = features(x[None])
        p = softmax(f @ self.Wt.T + self.bt)[0]
        y = int(p.argmax())
        slot = self.pseudo[self.next_slot % len(self.pseudo)]
        self.next_slot += 1
        self.bank[slot] = x
        self.labels[slot] = y

    def step(self):
        rng = self.rng
        il = self.given[rng.integers(0, len(self.given), NL)]
        xl = features(self.bank[il])
        yl = self.labels[il]
        pl = softmax(xl @ self.W.T + self.b)
        pl[np.arange(NL), yl] -= 1
        dl = pl / NL
        gW, gb = dl.T @ xl, dl.sum(0)

        iu = self.pseudo[rng.integers(0, len(self.pseudo), NU)]
        xu = features(self.bank[iu])
        pt = softmax(xu @ self.Wt.T + self.bt)
        conf, yu = pt.max(1), pt.argmax(1)
        self.glob = FM_MOM * self.glob + (1 - FM_MOM) * conf.mean()
        self.cls = FM_MOM * self.cls + (1 - FM_MOM) * pt.mean(0)
        mask = conf >= self.glob * self.cls[yu] / self.cls.max()

        sigma = NOISE * np.sqrt((xu * xu).mean(1, keepdims=True))
        xs = xu + sigma * rng.standard_normal((NU, D), dtype=np.float32)
        xs *= (rng.random((NU, D), dtype=np.float32) >= DROP) / np.float32(1 - DROP)
        ps = softmax(xs @ self.W.T + self.b)
        ps[np.arange(NU), yu] -= 1
        du = ps * (mask[:, None] / np.float32(NU))
        gW += du.T @ xs
        gb += du.sum(0)

        for p, g, m in ((self.W, gW, self.mW), (self.b, gb, self.mb)):
            g = g + WD * p
            m *= MOM
            m += g
            p -= LR * (g + MOM * m)
        self.Wt *= EMA
        self.Wt += (1 - EMA) * self.W
        self.bt *= EMA
        self.bt += (1 - EMA) * self.b

    def observe(self, x):
        if self.gate(x):
            self.admit(x)
        self.step()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--compare", action="store_true",
                    help="print the ratio to the Rust bench's saved estimate")
    a = ap.parse_args()
    rng = np.random.default_rng(0)
    learner = Learner(rng)
    stream = rng.random((1024, D), dtype=np.float32)
    for i in range(200):  # warm up caches and allocator
        learner.observe(stream[i % 1024])
    times = []
    for i in range(a.steps):
        t0 = time.thread_time_ns()
        learner.observe(stream[i % 1024])
        times.append(time.thread_time_ns() - t0)
    t = np.array(times) / 1e6
    print(f"numpy {np.__version__}, 1 thread: observe (gate + admission + FlexMatch step) "
          f"median {np.median(t):.3f} ms, mean {t.mean():.3f} ms, p10 {np.percentile(t, 10):.3f}, "
          f"p90 {np.percentile(t, 90):.3f} ms over {a.steps} steps (thread CPU time)")
    if a.compare:
        if not os.path.exists(RUST):
            raise SystemExit(f"no Rust estimate at {RUST}: run "
                             "`cargo bench --bench bench_main -- learner/observe/flexmatch/` first")
        with open(RUST) as f:
            est = json.load(f)
        rust = est["median"]["point_estimate"] / 1e6
        print(f"Rust Learner::observe (criterion median, thread CPU time): {rust:.3f} ms")
        print(f"ratio numpy / Rust = {np.median(t) / rust:.2f}")


if __name__ == "__main__":
    main()
