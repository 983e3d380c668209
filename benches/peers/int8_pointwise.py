#!/usr/bin/env python3
"""One int8 experiment for goal 3 (int8 no slower than f32 in tract): EfficientNet-Lite0 with
only the pointwise 1x1 convolutions (expand, project, head: ~80% of the MACs) as QLinearConv
(uint8 activations, per-channel int8 weights, int32 bias, ReLU6 folded into the output range)
and everything else (stem, depthwise convs, residual adds, pooling) in f32. tract lowers a
quantized depthwise conv to a grouped matmul with one row per group (47 ms for one layer), so
the depthwise convs stay f32; each pointwise conv is QuantizeLinear -> QLinearConv ->
DequantizeLinear.

Writes `models/build/efficientnet-lite0-pw-int8.onnx` (timed by `backbone_cpu/camera/pw-int8`
in `cargo bench --bench bench_main -- backbone_cpu` when present) and prints the embedding
cosine to f32 on the held-out crops (onnxruntime, 1 thread), as `effnet_lite0.py` does for
its int8 graphs. Uses `models/scripts/effnet_lite0.py` (same weights, calibration, bias
correction; downloads into models/build/cache). Not shipped.

  python3 benches/peers/int8_pointwise.py
"""
from __future__ import annotations

import json
import os
import sys

import numpy as np
import onnx
from onnx import helper, numpy_helper

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "models", "scripts"))
import effnet_lite0 as E  # noqa: E402

BUILD = os.path.join(ROOT, "models", "build")


def pointwise(w, g):
    return g == 1 and tuple(w.shape[2:]) == (1, 1)


def build_pointwise_int8(sd, L, Lb, ranges) -> onnx.ModelProto:
    nodes, inits = [], []
    c = lambda name, arr: inits.append(numpy_helper.from_array(np.asarray(arr), name)) or name
    nodes += [helper.make_node("Cast", ["image"], ["image_f"], to=onnx.TensorProto.FLOAT),
              helper.make_node("Sub", ["image_f", c("c127", np.float32(127))], ["image_c"]),
              helper.make_node("Mul", ["image_c", c("c1_128", np.float32(1 / 128))], ["image_n"]),
              helper.make_node("Transpose", ["image_n"], ["x"], perm=[0, 3, 1, 2])]
    c("c0", np.float32(0)), c("c6", np.float32(6))
    qp = {}  # uint8 (scale, zero point) of every layer output
    for op in L:
        if op[0] == "conv":
            qp[op[1]] = ((np.float32(6 / 255), np.uint8(0)) if op[7]
                         else E._uint8_qparams(*ranges[op[1]]))
        else:
            qp[op[1]] = E._uint8_qparams(*ranges[op[1]])
    n_int8 = 0
    for op, opb in zip(L, Lb):
        if op[0] != "conv":
            _, out, a, b = op
            nodes.append(helper.make_node("Add", [a, b], [out], name=out + "_add"))
            continue
        _, out, inp, w, b, s, g, relu = op
        if not pointwise(w, g) or inp not in qp:
            conv_out = out + "_pre" if relu else out
            nodes.append(helper.make_node("Conv", [inp, c(out + ".w", w), c(out + ".b", b)],
                                          [conv_out], name=out + "_conv", **E._conv_attrs(w, s, g)))
            if relu:
                nodes.append(helper.make_node("Clip", [conv_out, "c0", "c6"], [out]))
            continue
        n_int8 += 1
        bb = opb[4]  # bias-corrected bias for the quantized layer
        xs, xz = qp[inp]
        ys, yz = qp[out]
        wq, ws = E.quantize_weights_per_channel(w)
        bq = np.clip(np.round(bb.astype(np.float64) / (np.float64(xs) * ws.astype(np.float64))),
                     -2**31, 2**31 - 1).astype(np.int32)
        nodes.append(helper.make_node("QuantizeLinear", [inp, c(out + ".xs", xs), c(out + ".xz", xz)],
                                      [out + "_xq"]))
        nodes.append(helper.make_node(
            "QLinearConv",
            [out + "_xq", out + ".xs", out + ".xz", c(out + ".wq", wq), c(out + ".ws", ws),
             c(out + ".wz", np.zeros(w.shape[0], np.int8)), c(out + ".ys", ys), c(out + ".yz", yz),
             c(out + ".bq", bq)],
            [out + "_q"], name=out + "_qconv", **E._conv_attrs(w, s, g)))
        nodes.append(helper.make_node("DequantizeLinear", [out + "_q", out + ".ys", out + ".yz"],
                                      [out]))
    nodes += [helper.make_node("GlobalAveragePool", ["head"], ["pool"]),
              helper.make_node("Flatten", ["pool"], ["embedding"], axis=1)]
    E.int8_fc(sd, nodes, inits)
    print(f"{n_int8} pointwise convs as QLinearConv, "
          f"{sum(1 for o in L if o[0] == 'conv') - n_int8} convs in f32", flush=True)
    m = E._model(nodes, inits, [E._image_input()], E._outputs(), "efficientnet_lite0_pw_int8")
    onnx.checker.check_model(m)
    return m


def main():
    cache = os.path.join(BUILD, "cache")
    sd = E.load_legacy_pth(E.fetch_pth(cache))
    L = E.layers(sd)
    images = E.fetch_images(cache)
    f32 = E.build_f32(sd, L)
    calib = E.calibration_set(images)
    ranges = E.calibrate_ranges(f32, L, calib, pct=99.99)
    Lb = E.bias_correct(L, E.channel_means(f32, L, calib))
    m = build_pointwise_int8(sd, L, Lb, ranges)
    path = os.path.join(BUILD, "efficientnet-lite0-pw-int8.onnx")
    onnx.save(m, path)
    print(f"wrote {os.path.relpath(path, ROOT)} ({os.path.getsize(path)} bytes)", flush=True)
    # onnxruntime's graph optimizations rewrite this mixed graph and lose accuracy (embedding
    # cosine 0.960 with them, 0.9974 without): evaluate the graph as written.
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads, so.inter_op_num_threads = 1, 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    plain = lambda model: ort.InferenceSession(model.SerializeToString(), so,
                                               providers=["CPUExecutionProvider"])
    sessions = {"f32": plain(f32), "pw-int8": plain(m)}
    ev = {size: E.eval_set(images, size) for size in (112, 224)}
    for tag, d in E.evaluate(sessions, ev).items():
        if tag != "f32":
            print(tag, json.dumps({s: {k: v[k] for k in ("images", "embedding_cosine_mean",
                                                            "embedding_cosine_min", "top1_agreement")}
                                   for s, v in d.items()}))


if __name__ == "__main__":
    main()
