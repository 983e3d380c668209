#!/usr/bin/env python3
"""MiniRocket-style random-convolution backbone for 6-channel IMU windows.

Builds the SENSOR backbone of edge-ssl: two ONNX graphs (float32 and int8)
that map a RAW float32 IMU window [N, 128, 6] (time x channels: accel xyz,
gyro xyz at 50 Hz) to a PPV embedding [N, D] (D = 840 by default), plus golden
input/output files, and (optionally) a leave-subjects-out evaluation that
justifies the extractor against simple per-channel statistics.

Method (Dempster, Schmidt & Webb, "MiniRocket", KDD 2021, multivariate form):
  * 84 fixed kernels of length 9, weights -1 everywhere and 2 at 3 of the 9
    positions (all C(9,3) = 84 choices; each kernel sums to 0).
  * dilations exponentially spaced from 1 to (T-1)/8 = 15.9 (T = 128):
    unique(int(logspace(0, log2(127/8), F/84, base 2))) = 1,2,3,4,6,8,11,15
    for F = 840; the repeated dilation 1 gets 3 biases per kernel, the others 1.
  * multivariate: every (dilation, kernel) pair sums a random subset of the 6
    channels (subset size 2**U(0, log2 7) floored, i.e. 1..6 channels), i.e.
    the kernel is applied to the sum of the selected standardized channels.
  * padding alternates as in MiniRocket: pair (dilation i, kernel k) uses
    'same' zero padding (4*d on each side) when (i + k) is even, otherwise the
    'valid' convolution (length T - 8d).
  * biases: for each (dilation, kernel) one random window of the FIT set
    (recordings of subjects 1-5 only) is convolved and the biases are the
    quantiles q_f = (f * golden_ratio) mod 1 (f = global feature index 1..F)
    of that output.
  * feature = PPV = fraction over time of [conv(x) > bias].
  * extension ("level" features, --levels K, default 16, 0 = pure MiniRocket):
    the 84 kernels sum to zero, so their PPVs are blind to the DC level of a
    window, i.e. to the gravity direction / arm posture, which is the most
    discriminative cue for these exercises.  We append, per channel, the PPV
    of the standardized channel itself (a 1x1 one-hot kernel) against K
    biases at the fit-set quantiles k/(K+1): a K-bin empirical CDF of every
    channel (6*K features, same [0,1] range, exact in int8 as well).
  * per-channel standardization (fit-set mean / std, computed over every time
    step of every fit window) is the first op of the graph, so the graph input
    is the raw window.

Graphs (opset 13, default domain only):
  f32 : window -Sub(mean)-Mul(1/std)-Transpose-> z [N,6,128]
        per (dilation, padding group): Conv(z, W[C,6,9], dilations=[d],
        pads=[p,p]) -> Greater(., bias[C,1]) -> Cast(float) -> ReduceSum(t)
        -> Mul(float32(1/L)); levels: Conv 1x1 one-hot, same tail;
        -> Concat(axis 1) -> embedding [N, D]
        (ReduceSum + Mul(1/L) instead of ReduceMean: tract rewrites a mean as
        sum * (1/L) while onnxruntime divides, which differs by 1 ulp for L not
        a power of 2; with the explicit Mul both runtimes are bit-identical.)
  int8: same, but z is QuantizeLinear'ed to int8 (symmetric, zero point 0,
        scale calibrated on the fit set), the convolution is ConvInteger with
        the exact int8 kernel weights {-1, 0, 2} (0 = channel not selected),
        giving an exact int32 accumulator, and each bias is expressed in the
        same integer unit: conv_q * s > b  <=>  conv_q > floor(b / s).

Feature order of the embedding (both graphs): for each dilation ascending, the
kernels with 'same' padding (ascending kernel index) then those with 'valid'
padding (ascending kernel index); for each kernel its biases consecutively;
then the 6*K level features, channel-major (channel c, bias k at 840+c*K+k).
`graph_order` in the JSON report / metadata maps it to MiniRocket's order.

Usage:
  python3 models/scripts/minirocket_imu.py                 # pip-downloads the wheel
  python3 models/scripts/minirocket_imu.py --wheel seglearn-1.2.5-py3-none-any.whl
  python3 models/scripts/minirocket_imu.py --npy .../seglearn/data/watch_dataset.npy
  add --eval for the accuracy study, --bench for ORT latency, --report r.json

Everything is deterministic (seed 2021, numpy default_rng); rerunning writes
byte-identical ONNX and golden files.  Requirements: numpy, onnx,
onnxruntime (only for golden outputs / eval / bench).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import subprocess
import sys
import tempfile
import time
import zipfile
from itertools import combinations

import numpy as np

SEGLEARN_VERSION = "1.2.5"
SEGLEARN_WHEEL = "seglearn-1.2.5-py3-none-any.whl"
SEGLEARN_WHEEL_SHA256 = "ec6b952c85c9627050102854b372d85951563d3b990df677d7c55547e87413dd"
# sha256 of seglearn/data/watch_dataset.npy inside that wheel
WATCH_NPY_SHA256 = "eb122f23cdf06ef6bd6c6c5312958ec5cf9d038e2e6d457b8081662c75a42537"

WINDOW = 128          # 2.56 s at 50 Hz
STRIDE = 64
NCH = 6
SEED = 2021
NUM_FEATURES = 840    # 84 kernels x 10 features
LEVELS = 16           # level biases per channel (0 = pure MiniRocket)
MAX_DILATIONS_PER_KERNEL = 32
FIT_SUBJECTS = (1, 2, 3, 4, 5)
TEST_SUBJECTS = (6, 7, 8, 9, 10)
OPSET = 13
IR_VERSION = 8
# candidate quantization ranges: quantile of |z| over the fit set mapped to 127
SCALE_QUANTILES = (0.99, 0.995, 0.999, 0.9995, 0.9999, 0.99999, 1.0)
KERNELS = np.array(list(combinations(range(9), 3)), dtype=np.int64)  # [84, 3]
NUM_KERNELS = len(KERNELS)

HERE = os.path.dirname(os.path.abspath(__file__))
MODELS_DIR = os.path.normpath(os.path.join(HERE, ".."))


# ----------------------------------------------------------------------------
# data
# ----------------------------------------------------------------------------

def sha256_bytes(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def sha256_file(path: str) -> str:
    with open(path, "rb") as f:
        return sha256_bytes(f.read())


def download_wheel(dest: str) -> str:
    """pip download --no-deps seglearn==1.2.5 with the pinned hash enforced."""
    os.makedirs(dest, exist_ok=True)
    req = os.path.join(dest, "seglearn-req.txt")
    with open(req, "w") as f:
        f.write(f"seglearn=={SEGLEARN_VERSION} --hash=sha256:{SEGLEARN_WHEEL_SHA256}\n")
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                    "--require-hashes", "-r", req, "-d", dest], check=True)
    return os.path.join(dest, SEGLEARN_WHEEL)


def load_watch(wheel: str | None = None, npy: str | None = None, cache: str | None = None):
    """Return the seglearn watch dataset dict; verifies the pinned sha256."""
    if npy is not None:
        raw = open(npy, "rb").read()
    else:
        if wheel is None:
            wheel = download_wheel(cache or os.path.join(tempfile.gettempdir(), "seglearn-wheel"))
        got = sha256_file(wheel)
        if got != SEGLEARN_WHEEL_SHA256:
            sys.exit(f"sha256 mismatch for {wheel}: {got}")
        with zipfile.ZipFile(wheel) as z:
            raw = z.read("seglearn/data/watch_dataset.npy")
    got = sha256_bytes(raw)
    if got != WATCH_NPY_SHA256:
        sys.exit(f"sha256 mismatch for watch_dataset.npy: {got}")
    # pickle is only loaded after its hash has been checked
    return np.load(io.BytesIO(raw), allow_pickle=True).item()


def make_windows(d):
    """Cut every recording into 128-row windows, stride 64 (float32).

    Returns W [M,128,6] float32, y [M] label, g [M] subject, r [M] recording."""
    W, y, g, r = [], [], [], []
    for i, (x, lab, subj) in enumerate(zip(d["X"], d["y"], d["subject"])):
        x = np.asarray(x, dtype=np.float32)
        for s in range(0, x.shape[0] - WINDOW + 1, STRIDE):
            W.append(x[s:s + WINDOW])
            y.append(int(lab))
            g.append(int(subj))
            r.append(i)
    return np.stack(W), np.array(y), np.array(g), np.array(r)


# ----------------------------------------------------------------------------
# MiniRocket fit / numpy reference transform
# ----------------------------------------------------------------------------

def fit_dilations(T: int, num_features: int, max_dil: int = MAX_DILATIONS_PER_KERNEL):
    """MiniRocket's dilation schedule (identical to the reference code)."""
    per_kernel = num_features // NUM_KERNELS
    true_max = min(per_kernel, max_dil)
    multiplier = per_kernel / true_max
    max_exponent = np.log2((T - 1) / (9 - 1))
    dil, counts = np.unique(np.logspace(0, max_exponent, true_max, base=2).astype(np.int32),
                            return_counts=True)
    counts = (counts * multiplier).astype(np.int32)
    remainder = per_kernel - counts.sum()
    i = 0
    while remainder > 0:
        counts[i] += 1
        remainder -= 1
        i = (i + 1) % len(counts)
    return dil.astype(np.int64), counts.astype(np.int64)


def golden_quantiles(n: int) -> np.ndarray:
    return (np.arange(1, n + 1) * ((np.sqrt(5) + 1) / 2)) % 1


def standardize(W: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """[M,T,C] raw -> [M,C,T] float64 standardized, using the float32 constants of the graph."""
    m32 = mean.astype(np.float32)
    inv32 = (1.0 / std).astype(np.float32)
    z = (W.astype(np.float32) - m32) * inv32          # same float32 ops as the graph
    return np.ascontiguousarray(z.transpose(0, 2, 1)).astype(np.float64)


def conv_kernel(s: np.ndarray, k: int, d: int) -> np.ndarray:
    """'same' (zero padded) convolution of s [M,T] with kernel k at dilation d."""
    T = s.shape[-1]
    p = 4 * d
    sp = np.pad(s, [(0, 0)] * (s.ndim - 1) + [(p, p)])
    taps = [sp[..., j * d:j * d + T] for j in range(9)]
    total = taps[0].copy()
    for j in range(1, 9):
        total += taps[j]
    three = taps[KERNELS[k, 0]] + taps[KERNELS[k, 1]] + taps[KERNELS[k, 2]]
    return 3 * three - total


def fit(W: np.ndarray, num_features: int = NUM_FEATURES, seed: int = SEED,
        levels: int = LEVELS) -> dict:
    """Fit standardization, channel subsets and biases on the windows W [M,T,C]."""
    rng = np.random.default_rng(seed)
    M, T, C = W.shape
    flat = W.reshape(-1, C).astype(np.float64)
    mean, std = flat.mean(0), flat.std(0)
    Z = standardize(W, mean, std)
    dil, nfpd = fit_dilations(T, num_features)
    ncomb = NUM_KERNELS * len(dil)
    nch = (2 ** rng.uniform(0, np.log2(min(C, 9) + 1), ncomb)).astype(np.int64)
    subsets = [np.sort(rng.choice(C, int(n), replace=False)) for n in nch]
    F = int(NUM_KERNELS * nfpd.sum())
    q = golden_quantiles(F)
    biases = np.zeros(F)
    examples = np.zeros(ncomb, dtype=np.int64)
    f0 = 0
    for di, d in enumerate(dil):
        for k in range(NUM_KERNELS):
            ci = di * NUM_KERNELS + k
            ex = int(rng.integers(M))
            examples[ci] = ex
            c = conv_kernel(Z[ex, subsets[ci]].sum(0), k, int(d))
            nb = int(nfpd[di])
            biases[f0:f0 + nb] = np.quantile(c, q[f0:f0 + nb])
            f0 += nb
    # level features: per-channel quantiles k/(K+1) of z over the fit set
    qk = np.arange(1, levels + 1) / (levels + 1)
    level_biases = np.stack([np.quantile(Z[:, c].ravel(), qk) for c in range(C)]) \
        if levels else np.zeros((C, 0))
    params = dict(mean=mean, std=std, dilations=dil, features_per_dilation=nfpd,
                  subsets=subsets, biases=biases, seed=seed, num_features=F, T=T,
                  levels=levels, level_biases=level_biases, D=F + C * levels)
    params["graph_order"] = graph_order(params)
    return params


def padded(di: int, k: int) -> bool:
    """MiniRocket: 'same' padding when (dilation index + kernel index) is even."""
    return (di + k) % 2 == 0


def groups(params):
    """Yield (di, d, pad_flag, kernels, first MiniRocket feature index per kernel)."""
    nfpd = params["features_per_dilation"]
    start = 0
    for di, d in enumerate(params["dilations"]):
        nb = int(nfpd[di])
        for flag in (True, False):
            ks = [k for k in range(NUM_KERNELS) if padded(di, k) == flag]
            yield di, int(d), flag, ks, [start + k * nb for k in ks], nb
        start += NUM_KERNELS * nb


def graph_order(params) -> np.ndarray:
    """graph feature j == MiniRocket feature graph_order[j]."""
    order = []
    for _, _, _, ks, f0s, nb in groups(params):
        for f0 in f0s:
            order.extend(range(f0, f0 + nb))
    return np.array(order, dtype=np.int64)


def transform_ref(W: np.ndarray, params: dict, qscale: float | None = None) -> np.ndarray:
    """numpy reference of the graphs, returned in GRAPH order.

    qscale None: float64 convolution (reference for the f32 graph).
    qscale s   : int8 path: q = clip(rint(z/s), -128, 127) in float32, exact
                 integer conv, compared with floor(b/s) (reference for int8)."""
    M = W.shape[0]
    Z = standardize(W, params["mean"], params["std"])
    if qscale is not None:
        z32 = Z.astype(np.float32)
        Z = np.clip(np.rint(z32 / np.float32(qscale)), -128, 127).astype(np.float64)
    out = np.zeros((M, params["D"]), dtype=np.float32)
    j = 0
    for di, d, flag, ks, f0s, nb in groups(params):
        for k, f0 in zip(ks, f0s):
            ci = di * NUM_KERNELS + k
            c = conv_kernel(Z[:, params["subsets"][ci]].sum(1), k, d)
            if not flag:
                c = c[:, 4 * d:c.shape[1] - 4 * d]
            b = params["biases"][f0:f0 + nb]
            if qscale is not None:
                b = np.floor(b / qscale)
            out[:, j:j + nb] = ppv(c[:, None, :] > b[None, :, None])
            j += nb
    for ch in range(NCH):
        b = params["level_biases"][ch]
        if qscale is not None:
            b = np.floor(b / qscale)
        out[:, j:j + len(b)] = ppv(Z[:, ch, None, :] > b[None, :, None])
        j += len(b)
    return out


def ppv(mask: np.ndarray) -> np.ndarray:
    """count * float32(1/L), exactly what the graphs compute."""
    L = mask.shape[-1]
    return mask.sum(-1).astype(np.float32) * np.float32(1.0 / L)


def calibrate_scale(W_fit: np.ndarray, params: dict):
    """Pick the int8 input scale among quantiles of |z| on the fit set by the
    smallest mean |PPV_int8 - PPV_f32| on (a subsample of) the fit windows."""
    Z = standardize(W_fit, params["mean"], params["std"]).astype(np.float32)
    sub = W_fit[:: max(1, len(W_fit) // 400)]
    ref = transform_ref(sub, params)
    best, table = None, []
    for qq in SCALE_QUANTILES:
        s = float(np.float32(np.quantile(np.abs(Z), qq) / 127.0))
        err = float(np.abs(transform_ref(sub, params, qscale=s) - ref).mean())
        table.append(dict(quantile=qq, scale=s, fit_mean_abs_diff=err))
        if best is None or err < best[1]:
            best = (s, err)
    return best[0], table


# ----------------------------------------------------------------------------
# ONNX graphs
# ----------------------------------------------------------------------------

def build_onnx(params: dict, qscale: float | None = None):
    """float32 graph (qscale None) or int8 graph (QuantizeLinear + ConvInteger)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    F = params["D"]
    T = params["T"]
    nodes, inits = [], []

    def const(name, arr):
        inits.append(numpy_helper.from_array(arr, name))
        return name

    const("mean", params["mean"].astype(np.float32))
    const("inv_std", (1.0 / params["std"]).astype(np.float32))
    nodes += [helper.make_node("Sub", ["window", "mean"], ["centered"], name="center"),
              helper.make_node("Mul", ["centered", "inv_std"], ["z_tc"], name="scale"),
              helper.make_node("Transpose", ["z_tc"], ["z"], perm=[0, 2, 1], name="to_nct")]
    conv_in = "z"
    if qscale is not None:
        const("x_scale", np.array(qscale, dtype=np.float32))
        const("x_zp", np.array(0, dtype=np.int8))
        const("w_zp", np.array(0, dtype=np.int8))
        nodes.append(helper.make_node("QuantizeLinear", ["z", "x_scale", "x_zp"], ["z_q"],
                                      name="quantize"))
        conv_in = "z_q"

    const("time_axis", np.array([2], dtype=np.int64))
    outs = []

    def ppv_tail(tag, L):
        const(f"inv_len_{tag}", np.array(1.0 / L, dtype=np.float32))
        nodes.extend([
            helper.make_node("Greater", [f"conv_{tag}", f"b_{tag}"], [f"pos_{tag}"], name=f"gt_{tag}"),
            helper.make_node("Cast", [f"pos_{tag}"], [f"posf_{tag}"], to=TensorProto.FLOAT,
                             name=f"cast_{tag}"),
            helper.make_node("ReduceSum", [f"posf_{tag}", "time_axis"], [f"cnt_{tag}"], keepdims=0,
                             name=f"count_{tag}"),
            helper.make_node("Mul", [f"cnt_{tag}", f"inv_len_{tag}"], [f"ppv_{tag}"],
                             name=f"ppv_{tag}"),
        ])
        outs.append(f"ppv_{tag}")

    def conv_node(tag, Wk, bias, attrs):
        if qscale is None:
            const(f"W_{tag}", Wk.astype(np.float32))
            const(f"b_{tag}", bias.astype(np.float32)[:, None])
            nodes.append(helper.make_node("Conv", [conv_in, f"W_{tag}"], [f"conv_{tag}"],
                                          name=f"conv_{tag}", **attrs))
        else:
            const(f"W_{tag}", Wk.astype(np.int8))
            const(f"b_{tag}", np.floor(bias / qscale).astype(np.int32)[:, None])
            nodes.append(helper.make_node("ConvInteger", [conv_in, f"W_{tag}", "x_zp", "w_zp"],
                                          [f"conv_{tag}"], name=f"conv_{tag}", **attrs))

    for di, d, flag, ks, f0s, nb in groups(params):
        rows, bias = [], []
        for k, f0 in zip(ks, f0s):
            w = np.zeros((NCH, 9), dtype=np.int64)
            kv = -np.ones(9, dtype=np.int64)
            kv[KERNELS[k]] = 2
            w[params["subsets"][di * NUM_KERNELS + k]] = kv
            for b in params["biases"][f0:f0 + nb]:
                rows.append(w)
                bias.append(b)
        Wk = np.stack(rows)                                   # [Cout, 6, 9]
        bias = np.array(bias)
        tag = f"d{d}_{'same' if flag else 'valid'}"
        pad = 4 * d if flag else 0
        attrs = dict(kernel_shape=[9], dilations=[d], pads=[pad, pad], strides=[1], group=1)
        conv_node(tag, Wk, bias, attrs)
        ppv_tail(tag, T - 2 * (4 * d - pad))
    K = params["levels"]
    if K:
        Wl = np.zeros((NCH * K, NCH, 1), dtype=np.int64)
        for ch in range(NCH):
            Wl[ch * K:(ch + 1) * K, ch, 0] = 1
        conv_node("levels", Wl, params["level_biases"].reshape(-1),
                  dict(kernel_shape=[1], dilations=[1], pads=[0, 0], strides=[1], group=1))
        ppv_tail("levels", T)
    nodes.append(helper.make_node("Concat", outs, ["embedding"], axis=1, name="concat"))

    kind = "f32" if qscale is None else "int8"
    graph = helper.make_graph(
        nodes, f"minirocket_imu_{kind}",
        [helper.make_tensor_value_info("window", TensorProto.FLOAT, ["N", T, NCH])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["N", F])],
        inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="edge-ssl/minirocket_imu.py", producer_version="1")
    model.ir_version = IR_VERSION
    model.doc_string = ("MiniRocket-style random convolution extractor for raw IMU windows "
                        "[N,128,6] (accel xyz, gyro xyz, 50 Hz) -> PPV embedding [N,%d]; "
                        "%s graph" % (F, kind))
    meta = dict(
        method="MiniRocket multivariate (Dempster et al. KDD 2021), PPV features",
        input="window float32 [N,128,6] raw (time x channels: ax ay az wx wy wz)",
        output=f"embedding float32 [N,{F}] (PPV in [0,1])",
        seed=str(params["seed"]), fit_subjects=",".join(map(str, FIT_SUBJECTS)),
        dilations=",".join(map(str, params["dilations"])),
        features_per_dilation_per_kernel=",".join(map(str, params["features_per_dilation"])),
        minirocket_features=str(params["num_features"]),
        level_features=f"{NCH}x{params['levels']} (per-channel PPV at fit-set quantiles k/{params['levels'] + 1})",
        feature_order="per dilation ascending: 'same'-padded kernels then 'valid' kernels "
                      "(ascending kernel index), each kernel's biases consecutive; then the "
                      "level features channel-major",
        source=f"seglearn=={SEGLEARN_VERSION} watch_dataset.npy sha256 {WATCH_NPY_SHA256}",
    )
    if qscale is not None:
        meta["input_quant_scale"] = repr(float(qscale))
        meta["input_quant_zero_point"] = "0 (int8)"
    helper.set_model_props(model, meta)
    onnx.checker.check_model(model, full_check=True)
    return model


def ort_session(path_or_bytes, threads: int = 0):
    import onnxruntime as ort
    so = ort.SessionOptions()
    if threads:
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
    return ort.InferenceSession(path_or_bytes, so, providers=["CPUExecutionProvider"])


def ort_embed(sess, W: np.ndarray, batch: int = 512) -> np.ndarray:
    return np.concatenate([sess.run(None, {"window": W[i:i + batch]})[0]
                           for i in range(0, len(W), batch)])


# ----------------------------------------------------------------------------
# evaluation (numpy only)
# ----------------------------------------------------------------------------

ALPHAS = np.logspace(-2, 5, 15)
NCM_SEEDS = range(5)


def stats_features(W: np.ndarray) -> np.ndarray:
    """Per-channel mean, std, min, max of the raw window -> [M, 24]."""
    W = W.astype(np.float64)
    return np.concatenate([W.mean(1), W.std(1), W.min(1), W.max(1)], axis=1)


def _zscore(Xtr, *others):
    mu, sd = Xtr.mean(0), Xtr.std(0)
    sd[sd < 1e-12] = 1.0
    return [(X - mu) / sd for X in (Xtr,) + others]


def _ridge_multi(Xtr, Ytr, Xte, alphas):
    """Closed-form ridge (centred Xtr, Ytr) for all alphas via one eigh of the
    Gram matrix; returns [n_alpha, n_te, K] scores (without the intercept)."""
    evals, V = np.linalg.eigh(Xtr.T @ Xtr)
    VtXtY = V.T @ (Xtr.T @ Ytr)
    XV = Xte @ V
    return np.stack([XV @ (VtXtY / (evals + a)[:, None]) for a in alphas])


def ridge_classify(Xtr, ytr, gtr, Xte, nclass=7, alphas=ALPHAS):
    """Ridge classifier (one-vs-rest +-1 targets, z-scored features, intercept);
    alpha chosen by leave-one-subject-out CV inside the training subjects."""
    Y = -np.ones((len(ytr), nclass))
    Y[np.arange(len(ytr)), ytr] = 1.0
    acc = np.zeros(len(alphas))
    for s in np.unique(gtr):
        tr, va = gtr != s, gtr == s
        a, b = _zscore(Xtr[tr].astype(np.float64), Xtr[va].astype(np.float64))
        scores = _ridge_multi(a, Y[tr] - Y[tr].mean(0), b, alphas)
        acc += (scores.argmax(-1) == ytr[va]).mean(-1)
    alpha = alphas[int(np.argmax(acc))]
    a, b = _zscore(Xtr.astype(np.float64), Xte.astype(np.float64))
    scores = _ridge_multi(a, Y - Y.mean(0), b, [alpha])[0]
    return scores.argmax(-1), float(alpha)


def ncm_accuracies(Xtr, ytr, Xte, yte, zscore=True, shots=10, nclass=7):
    """Nearest class mean (Euclidean) from `shots` random labelled training
    windows per class, one accuracy per seed.  zscore: features standardized
    with the UNLABELLED training pool; else the raw embedding is used."""
    a, b = (_zscore(Xtr, Xte) if zscore else (Xtr, Xte))
    a, b = a.astype(np.float64), b.astype(np.float64)
    accs = []
    for seed in NCM_SEEDS:
        rng = np.random.default_rng(1000 + seed)
        means = np.stack([a[rng.choice(np.flatnonzero(ytr == c), shots, replace=False)].mean(0)
                          for c in range(nclass)])
        d2 = (b ** 2).sum(1)[:, None] - 2 * b @ means.T + (means ** 2).sum(1)[None]
        accs.append(float((d2.argmin(1) == yte).mean()))
    return accs


def evaluate_sets(feats: dict, y, g, train_mask, test_mask):
    res = {}
    for name, X in feats.items():
        pred, alpha = ridge_classify(X[train_mask], y[train_mask], g[train_mask], X[test_mask])
        res[name] = dict(
            ridge=float((pred == y[test_mask]).mean()), ridge_alpha=alpha,
            ncm10_z=ncm_accuracies(X[train_mask], y[train_mask], X[test_mask], y[test_mask]),
            ncm10_raw=ncm_accuracies(X[train_mask], y[train_mask], X[test_mask], y[test_mask],
                                     zscore=False))
    return res


def ms(v):
    v = np.asarray(v, dtype=np.float64)
    return f"{100 * v.mean():.1f} +- {100 * v.std():.1f}"


def feature_sets(emb_f32, emb_int8, stats, F):
    """Named feature sets; the pure-MiniRocket ablation is the first F columns."""
    sets = {"embedding_f32": emb_f32, "embedding_int8": emb_int8}
    if emb_f32.shape[1] > F:
        sets["minirocket_only_f32"] = emb_f32[:, :F]
        sets["levels_only_f32"] = emb_f32[:, F:]
    sets["stats24"] = stats
    return sets


def run_eval(W, y, g, params, qscale, emb_ort_f32, emb_ort_int8, report):
    """(a) fixed split: shipped graphs (fit on subjects 1-5), train 1-5, test 6-10;
    (b) 5-fold by subject, transform + int8 scale refitted on each training fold."""
    stats = stats_features(W)
    F = params["num_features"]
    tr = np.isin(g, FIT_SUBJECTS)
    te = ~tr
    print("\n== (a) train subjects 1-5 / test 6-10, shipped graphs (ORT outputs); "
          "ridge | NCM-10shot z-scored (5 seeds) | NCM-10shot raw (5 seeds) ==")
    a = evaluate_sets(feature_sets(emb_ort_f32, emb_ort_int8, stats, F), y, g, tr, te)
    for k, v in a.items():
        print(f"  {k:20s} ridge {100 * v['ridge']:.1f}% (alpha {v['ridge_alpha']:.3g})"
              f" | {ms(v['ncm10_z'])} | {ms(v['ncm10_raw'])}")
    report["eval_fixed_split"] = a

    print("\n== (b) 5-fold by subject, transform refit per training fold (numpy reference) ==")
    folds = [(1, 2), (3, 4), (5, 6), (7, 8), (9, 10)]
    per, diffs = {}, []
    for f in folds:
        te = np.isin(g, f)
        tr = ~te
        p = fit(W[tr], F, params["seed"], params["levels"])
        s, _ = calibrate_scale(W[tr], p)
        ff = transform_ref(W, p)
        fq = transform_ref(W, p, qscale=s)
        diffs.append(float(np.abs(ff[te] - fq[te]).mean()))
        r = evaluate_sets(feature_sets(ff, fq, stats, F), y, g, tr, te)
        for k, v in r.items():
            e = per.setdefault(k, dict(ridge=[], ncm10_z=[], ncm10_raw=[]))
            e["ridge"].append(v["ridge"])
            e["ncm10_z"].extend(v["ncm10_z"])
            e["ncm10_raw"].extend(v["ncm10_raw"])
        print(f"  test subjects {f}: ridge " +
              "  ".join(f"{k} {100 * v['ridge']:.1f}%" for k, v in r.items()), flush=True)
    print("  ridge: mean +- std over 5 folds; NCM: over 5 folds x 5 seeds")
    for k, v in per.items():
        print(f"  {k:20s} ridge {ms(v['ridge'])} | {ms(v['ncm10_z'])} | {ms(v['ncm10_raw'])}")
    print(f"  int8 vs f32 mean |PPV diff| on the test folds: {np.mean(diffs):.5f}")
    report["eval_5fold_by_subject"] = dict(folds=folds, per_set=per, int8_mean_abs_diff=diffs)


def bench(paths, report, reps=300):
    print("\n== ORT latency (ms per call, median / p90) ==")
    rng = np.random.default_rng(0)
    out = {}
    for name, path in paths.items():
        for threads in (1, 0):
            sess = ort_session(path, threads)
            for bs in (1, 8):
                x = rng.standard_normal((bs, WINDOW, NCH)).astype(np.float32)
                for _ in range(20):
                    sess.run(None, {"window": x})
                t = []
                for _ in range(reps):
                    t0 = time.perf_counter()
                    sess.run(None, {"window": x})
                    t.append((time.perf_counter() - t0) * 1e3)
                key = f"{name} threads={'default' if threads == 0 else threads} batch={bs}"
                out[key] = dict(median_ms=float(np.median(t)), p90_ms=float(np.percentile(t, 90)))
                print(f"  {key:40s} {np.median(t):.3f} / {np.percentile(t, 90):.3f}")
    report["ort_latency"] = out


# ----------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    src = ap.add_mutually_exclusive_group()
    src.add_argument("--wheel", help="local seglearn-1.2.5 wheel (sha256 checked)")
    src.add_argument("--npy", help="already unpacked seglearn/data/watch_dataset.npy (sha256 checked)")
    ap.add_argument("--cache", help="download folder for the wheel (default: $TMP/seglearn-wheel)")
    ap.add_argument("--out", default=MODELS_DIR, help="models folder (default: the one holding scripts/)")
    ap.add_argument("--num-features", type=int, default=NUM_FEATURES,
                    help="MiniRocket features (rounded down to a multiple of 84)")
    ap.add_argument("--levels", type=int, default=LEVELS, help="level biases per channel (0: none)")
    ap.add_argument("--seed", type=int, default=SEED)
    ap.add_argument("--eval", action="store_true", help="run the accuracy study (~5 min)")
    ap.add_argument("--bench", action="store_true", help="ORT latency, batch 1 and 8")
    ap.add_argument("--dump-windows", help="save all windows/labels/subjects to this .npz")
    ap.add_argument("--report", help="write a JSON report here")
    args = ap.parse_args()

    import onnx

    d = load_watch(args.wheel, args.npy, args.cache)
    W, y, g, rec = make_windows(d)
    print(f"windows: {W.shape} from {len(d['X'])} recordings, classes {list(d['y_labels'])}")
    if args.dump_windows:
        np.savez(args.dump_windows, W=W, y=y, g=g, rec=rec)
    fitm = np.isin(g, FIT_SUBJECTS)
    params = fit(W[fitm], args.num_features, args.seed, args.levels)
    D = params["D"]
    print(f"fit on {fitm.sum()} windows of subjects {FIT_SUBJECTS}: D = {D} "
          f"({params['num_features']} MiniRocket + {NCH}x{args.levels} level), "
          f"dilations {params['dilations'].tolist()}, "
          f"biases/kernel {params['features_per_dilation'].tolist()}")
    qscale, qtable = calibrate_scale(W[fitm], params)
    for row in qtable:
        print(f"  int8 scale candidate q={row['quantile']}: s={row['scale']:.6f} "
              f"fit mean|diff|={row['fit_mean_abs_diff']:.5f}")
    print(f"  chosen input scale s = {qscale!r} (z range +-{127 * qscale:.2f} std)")

    out = args.out
    os.makedirs(os.path.join(out, "golden"), exist_ok=True)
    paths = {"f32": os.path.join(out, "minirocket-imu-f32.onnx"),
             "int8": os.path.join(out, "minirocket-imu-int8.onnx")}
    onnx.save(build_onnx(params), paths["f32"])
    onnx.save(build_onnx(params, qscale), paths["int8"])

    # golden: 4 real windows from held-out subjects, distinct classes
    picks = []
    for subj, cls in ((6, 0), (7, 2), (8, 4), (9, 6)):
        idx = np.flatnonzero((g == subj) & (y == cls))
        picks.append(int(idx[len(idx) // 2]))
    gin = np.ascontiguousarray(W[picks])
    golden = {"minirocket_input.npy": gin}

    report = dict(num_windows=int(len(W)), D=D, minirocket_features=params["num_features"],
                  levels=args.levels, seed=args.seed, fit_subjects=FIT_SUBJECTS,
                  dilations=params["dilations"].tolist(),
                  features_per_dilation=params["features_per_dilation"].tolist(),
                  channel_subset_sizes=np.bincount([len(s) for s in params["subsets"]],
                                                   minlength=NCH + 1)[1:].tolist(),
                  mean=params["mean"].tolist(), std=params["std"].tolist(),
                  level_biases=params["level_biases"].tolist(),
                  int8_scale=qscale, int8_scale_table=qtable, golden_window_indices=picks,
                  graph_order=params["graph_order"].tolist())

    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        print("onnxruntime missing: golden outputs, eval and bench skipped")
        onnxruntime = None
    if onnxruntime is not None:
        sess = {k: ort_session(p) for k, p in paths.items()}
        for k in ("f32", "int8"):
            golden[f"minirocket_{k}_embedding.npy"] = sess[k].run(None, {"window": gin})[0]
        emb = {k: ort_embed(sess[k], W) for k in sess}
        ref = {"f32": transform_ref(W, params), "int8": transform_ref(W, params, qscale)}
        print("\n== ORT vs numpy reference / int8 vs f32, all windows ==")
        chk = {}
        for k in ("f32", "int8"):
            dif = np.abs(emb[k] - ref[k])
            chk[f"{k}_ort_vs_numpy"] = dict(max_abs=float(dif.max()),
                                           frac_bit_equal=float((dif == 0).mean()))
            print(f"  {k}: ORT vs numpy max|diff| {dif.max():.3g}, "
                  f"fraction bit-equal {(dif == 0).mean():.6f}")
        dq = np.abs(emb["int8"] - emb["f32"])
        held = ~fitm
        chk["int8_vs_f32"] = dict(
            mean_abs_diff_all=float(dq.mean()), mean_abs_diff_test=float(dq[held].mean()),
            max_abs_diff=float(dq.max()), frac_features_changed=float((dq > 0).mean()),
            frac_features_changed_test=float((dq[held] > 0).mean()),
            cosine_min=float(((emb["int8"] * emb["f32"]).sum(1) /
                              np.linalg.norm(emb["int8"], axis=1) /
                              np.linalg.norm(emb["f32"], axis=1)).min()))
        print(f"  int8 vs f32 (ORT): mean|diff| {dq.mean():.5f} (held-out {dq[held].mean():.5f}), "
              f"max {dq.max():.4f}, features changed {(dq > 0).mean():.4f}, "
              f"min row cosine {chk['int8_vs_f32']['cosine_min']:.5f}")
        report["checks"] = chk
        if args.eval:
            run_eval(W, y, g, params, qscale, emb["f32"], emb["int8"], report)
        if args.bench:
            bench(paths, report)

    for name, arr in golden.items():
        np.save(os.path.join(out, "golden", name), arr)
    files = list(paths.values()) + [os.path.join(out, "golden", n) for n in golden]
    print("\n== outputs ==")
    report["outputs"] = {}
    for p in files:
        h = sha256_file(p)
        report["outputs"][os.path.relpath(p, out)] = dict(bytes=os.path.getsize(p), sha256=h)
        print(f"  {os.path.relpath(p, out):40s} {os.path.getsize(p):8d} B  {h}")
    if args.report:
        with open(args.report, "w") as f:
            json.dump(report, f, indent=1)


if __name__ == "__main__":
    main()
