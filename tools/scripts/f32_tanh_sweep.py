#!/usr/bin/env python3
"""Exhaustive error of tinyrnn's F32Math::Fast tanh / sigmoid (src/activation.rs).

Evaluates the rational tanh exactly as the Rust code does (f32 multiplies and adds, no
fused multiply-add, one f32 division; numpy float32 arithmetic is IEEE single precision,
so the bits are the same) for every non-negative f32 up to 12.0 (the function is odd bit
for bit; beyond 12 both functions are constant), and compares with the exact functions in
f64. Needs numpy only. Prints the max absolute errors quoted in the docs (tanh 4.1e-7,
sigmoid 2.3e-7). Takes a few minutes.
"""
import numpy as np

f = np.float32
# the f32 bit patterns of src/activation.rs's constants (A1..A13, B0..B6, the clamp)
A = list(np.array([0x3BA059DC, 0x3A270DED, 0x3779434A, 0x335C0041, 0xAEBD37FF, 0x2A61337E,
                   0xA59F25C0], dtype=np.uint32).view(np.float32))
B = list(np.array([0x3BA059DD, 0x3B14AA05, 0x38F895D6, 0x35A0D3D8], dtype=np.uint32)
         .view(np.float32))
C = np.array([0x40FFF644], dtype=np.uint32).view(np.float32)[0]


def tanh_fast(x):
    x = np.minimum(np.maximum(x, -C), C)
    x2 = x * x
    p = x2 * A[6] + A[5]
    for a in A[4::-1]:
        p = x2 * p + a
    q = x2 * B[3] + B[2]
    q = x2 * q + B[1]
    q = x2 * q + B[0]
    return x * p / q


def sigmoid_fast(x):
    return f(0.5) + f(0.5) * tanh_fast(f(0.5) * x)


top = int(np.float32(12.0).view(np.uint32))
et = es = 0.0
step = 1 << 24
for s in range(0, top + 1, step):
    x = np.arange(s, min(s + step, top + 1), dtype=np.uint32).view(np.float32)
    xd = x.astype(np.float64)
    et = max(et, np.abs(tanh_fast(x).astype(np.float64) - np.tanh(xd)).max())
    sig = 1.0 / (1.0 + np.exp(-xd))
    es = max(es, np.abs(sigmoid_fast(x) - sig).max(), np.abs(sigmoid_fast(-x) - (1.0 - sig)).max())
print(f"tanh max abs error {et:.4g}, sigmoid max abs error {es:.4g} (every f32 in [0, 12] and negatives)")
