#!/usr/bin/env python3
"""Goal 1 of the performance issue from criterion's saved estimates: the learner's share of a
backbone pass, all measured in one run of the learner bench (thread CPU time):

  cargo bench --bench bench_main -- 'learner|propagate' && python3 benches/peers/ratios.py

Prints each `learner/observe/*` step against `learner/backbone/int8/size112` (one pass of the
default camera model), LabelProp's graph refresh amortized over its 500 samples, and
`learner/device/int8/size112` against backbone + learner. Uses criterion's median.
"""
from __future__ import annotations

import json
import os

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CRITERION = os.path.join(ROOT, "target", "criterion")


def ms(*parts):
    p = os.path.join(CRITERION, *parts, "new", "estimates.json")
    if not os.path.exists(p):
        return None
    with open(p) as f:
        return json.load(f)["median"]["point_estimate"] / 1e6


def main():
    bb = ms("learner", "backbone_int8", "size112")
    if bb is None:
        raise SystemExit("run `cargo bench --bench bench_main -- learner` first")
    print(f"backbone pass (int8 EfficientNet-Lite0, 112, batch 1): {bb:.3f} ms")
    steps = {}
    for name in ("flexmatch", "flexmatch-noview", "labelprop"):
        t = ms("learner_observe", name, "d1280")
        if t is None:
            continue
        steps[name] = t
        print(f"Learner::observe {name:17s} {t:7.3f} ms = {100 * t / bb:5.1f}% of a backbone pass"
              f" (goal <= 5%: {'met' if t <= 0.05 * bb else f'missed by {t / (0.05 * bb):.1f}x'})")
    refresh = ms("propagate_refresh", "n4096", "d1280")
    if refresh is not None:
        print(f"propagate/refresh n4096 d1280: {refresh:.1f} ms, every 500 samples = "
              f"{refresh / 500:.3f} ms per sample ({100 * refresh / 500 / bb:.1f}% of a pass)")
    dev = ms("learner", "device_int8", "size112")
    if dev is not None and "flexmatch" in steps:
        print(f"Device::observe (112x112 frame): {dev:.3f} ms vs backbone + learner "
              f"{bb + steps['flexmatch']:.3f} ms")


if __name__ == "__main__":
    main()
