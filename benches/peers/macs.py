#!/usr/bin/env python3
"""The physical limit of each backbone figure: MACs of the model at that input size divided by
the core's peak multiply-accumulate rate, next to the latency criterion measured.

MACs come from ONNX shape inference on the model with its input fixed to [B, H, W, 3] (camera)
or [B, 128, 6] (sensor): Conv / ConvInteger / QLinearConv = B * Cout * Hout * Wout *
(Cin / group) * kh * kw; MatMul / Gemm / QLinearMatMul / MatMulInteger = M * N * K. Only the
nodes that the `embedding` output needs are counted (edge-ssl prunes the ImageNet logits); the
logits FC is printed apart.

Peak of one core (stated assumptions, from lscpu flags and the clock in /proc/cpuinfo):
  f32:  AVX2 + FMA, 2 FMA ports x 8 f32 lanes = 16 MAC/cycle (AVX-512: 32)
  int8: AVX2 vpmaddubsw, 32 u8 x i8 MAC per instruction x 2 ports = 64 MAC/cycle (AVX-VNNI
        vpdpbusd: the same 64 in one instruction instead of three; AVX-512 VNNI: 128)
tract 0.23.9 picks its kernels at run time; the AVX2+FMA figures are the ones printed as the
limit (the kernels tract has for both types on x86_64), AVX-512 is noted when the CPU has it.

Usage:
  python3 benches/peers/macs.py                # MACs and ms at peak for the shipped models
  python3 benches/peers/macs.py --measured     # also the latencies saved by
                                               # `cargo bench --bench bench_main -- backbone_cpu`
Needs numpy and onnx (optional tooling; nothing in the build runs it).
"""
from __future__ import annotations

import argparse
import json
import os
import re

import onnx
from onnx import shape_inference

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODELS = os.path.join(ROOT, "models")
CRITERION = os.path.join(ROOT, "target", "criterion")

CONV = {"Conv", "ConvInteger", "QLinearConv"}
MATMUL = {"MatMul", "Gemm", "QLinearMatMul", "MatMulInteger"}


def cpu():
    """(model name, MHz, flags) from /proc/cpuinfo."""
    name, mhz, flags = "?", 0.0, set()
    with open("/proc/cpuinfo") as f:
        for line in f:
            k, _, v = line.partition(":")
            k = k.strip()
            if k == "model name" and name == "?":
                name = v.strip()
            elif k == "cpu MHz" and not mhz:
                mhz = float(v)
            elif k == "flags" and not flags:
                flags = set(v.split())
    return name, mhz, flags


def peaks(flags):
    """MAC/cycle/core for f32 and int8 under the assumptions in the module docs."""
    f32 = 16 if {"avx2", "fma"} <= flags else 4  # SSE: 4 lanes, mul + add
    i8 = 64 if "avx2" in flags else 16
    return f32, i8


def fixed_shape(model: onnx.ModelProto, shape):
    m = onnx.ModelProto()
    m.CopyFrom(model)
    del m.graph.value_info[:]
    inp = m.graph.input[0]
    dims = inp.type.tensor_type.shape.dim
    for d, v in zip(dims, shape):
        d.ClearField("dim_param")
        d.dim_value = v
    return shape_inference.infer_shapes(m)


def needed_nodes(graph, output):
    """Nodes the named output depends on."""
    producer = {o: n for n in graph.node for o in n.output}
    seen, stack, nodes = set(), [output], []
    while stack:
        t = stack.pop()
        n = producer.get(t)
        if n is None or id(n) in seen:
            continue
        seen.add(id(n))
        nodes.append(n)
        stack.extend(i for i in n.input if i)
    return nodes


def macs(path, shape, output="embedding"):
    """(MACs of the nodes `output` needs, MACs of all conv/matmul nodes)."""
    m = fixed_shape(onnx.load(path), shape)
    g = m.graph
    shapes = {}
    for vi in list(g.value_info) + list(g.input) + list(g.output):
        shapes[vi.name] = [d.dim_value for d in vi.type.tensor_type.shape.dim]
    for t in g.initializer:
        shapes[t.name] = list(t.dims)

    def node_macs(n):
        if n.op_type in CONV:
            # QLinearConv: x, x_scale, x_zp, w, w_scale, w_zp, ...; Conv/ConvInteger: x, w
            w = n.input[3] if n.op_type == "QLinearConv" else n.input[1]
            y = shapes.get(n.output[0])
            ws = shapes.get(w) or shape_of_dequantized(g, w, shapes)
            if not y or not ws:
                raise SystemExit(f"{path}: no shape for {n.name} ({n.op_type})")
            batch, cout, spatial = y[0], y[1], y[2:]
            k = 1
            for v in ws[1:]:
                k *= v  # Cin/group * kh * kw
            out = 1
            for v in spatial:
                out *= v
            return batch * cout * out * k
        if n.op_type in MATMUL:
            a_name, b_name = (n.input[0], n.input[3]) if n.op_type == "QLinearMatMul" else n.input[:2]
            a = shapes.get(a_name)
            b = shapes.get(b_name) or shape_of_dequantized(g, b_name, shapes)
            y = shapes.get(n.output[0])
            if not (a and b and y):
                raise SystemExit(f"{path}: no shape for {n.name} ({n.op_type})")
            kdim = a[-1] if not (n.op_type == "Gemm" and any(
                at.name == "transA" and at.i for at in n.attribute)) else a[-2]
            total = 1
            for v in y:
                total *= v
            return total * kdim
        return 0

    needed = sum(node_macs(n) for n in needed_nodes(g, output))
    every = sum(node_macs(n) for n in g.node)
    return needed, every


def shape_of_dequantized(g, name, shapes):
    """The shape of a weight that reaches a Conv through DequantizeLinear (QDQ graphs)."""
    for n in g.node:
        if name in n.output and n.op_type in ("DequantizeLinear", "Cast", "Identity"):
            return shapes.get(n.input[0])
    return None


def measured(group, function, value):
    """Criterion's median estimate in ms from the thread-CPU-time bench `backbone_cpu/<group>`,
    else from the wall-clock bench `backbone/<group>`, or None."""
    for g in (f"backbone_cpu_{group}", f"backbone_{group}"):
        p = os.path.join(CRITERION, g, function, value, "new", "estimates.json")
        if os.path.exists(p):
            with open(p) as f:
                return json.load(f)["median"]["point_estimate"] / 1e6
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--measured", action="store_true",
                    help="print criterion's saved backbone latencies next to the limit")
    a = ap.parse_args()
    name, mhz, flags = cpu()
    f32_mac, i8_mac = peaks(flags)
    ghz = mhz / 1000
    avx512 = "avx512f" in flags
    print(f"CPU: {name}, {os.cpu_count()} cores, {mhz:.0f} MHz (/proc/cpuinfo; no turbo assumed)")
    print(f"peak per core: f32 {f32_mac} MAC/cycle = {f32_mac * ghz:.1f} GMAC/s (AVX2+FMA: 2 x 8 lanes);"
          f" int8 {i8_mac} MAC/cycle = {i8_mac * ghz:.1f} GMAC/s (AVX2 vpmaddubsw: 32 x 2 ports)")
    if avx512:
        print(f"  (the CPU also has AVX-512{' + VNNI' if 'avx512_vnni' in flags else ''}: "
              f"f32 {2 * f32_mac}, int8 {2 * i8_mac} MAC/cycle if a kernel used it)")
    build = os.path.join(MODELS, "build")
    rows = [
        ("camera", "int8", os.path.join(MODELS, "efficientnet-lite0-int8.onnx"), i8_mac),
        ("camera", "f32", os.path.join(build, "efficientnet-lite0-f32.onnx"), f32_mac),
        ("camera", "pw-int8", os.path.join(build, "efficientnet-lite0-pw-int8.onnx"), i8_mac),
    ]
    print()
    print("| model | input | batch | MMACs (embedding) | at peak | measured (tract, 1 thread) | measured / peak |")
    print("|---|---|---|---|---|---|---|")
    for kind, dt, path, rate in rows:
        if not os.path.exists(path):
            print(f"| {kind} {dt} | (missing: {os.path.relpath(path, ROOT)}) | | | | | |")
            continue
        for size in (112, 224):
            for batch in (1, 8):
                need, every = macs(path, [batch, size, size, 3])
                at_peak = need / (rate * ghz * 1e9) * 1e3
                t = measured("camera", dt, f"size{size}_batch{batch}") if a.measured else None
                tm = f"{t:.2f} ms" if t else "-"
                ratio = f"{t / at_peak:.1f}x" if t else "-"
                print(f"| EfficientNet-Lite0 {dt} | {size}x{size} | {batch} | {need / 1e6:.1f} "
                      f"(+{(every - need) / 1e6:.1f} logits FC) | {at_peak:.2f} ms | {tm} | {ratio} |")
    for dt, fname, rate in (("int8", "minirocket-imu-int8.onnx", i8_mac),
                            ("f32", "minirocket-imu-f32.onnx", f32_mac)):
        for batch in (1, 8):
            need, _ = macs(os.path.join(MODELS, fname), [batch, 128, 6])
            at_peak = need / (rate * ghz * 1e9) * 1e3
            t = measured("sensor", dt, f"batch{batch}") if a.measured else None
            tm = f"{t:.3f} ms" if t else "-"
            ratio = f"{t / at_peak:.0f}x" if t else "-"
            print(f"| MiniRocket IMU {dt} | 128x6 | {batch} | {need / 1e6:.2f} | {at_peak:.4f} ms "
                  f"| {tm} | {ratio} |")


if __name__ == "__main__":
    main()
