#!/usr/bin/python3
"""Fits the polynomial of scholar's vectorized erfc (src/kernels/simd_impl.hpp, normal_cdf).

For z >= 0 the kernels compute erfc(z) = t * exp(-z^2 + P(t)) with t = 1 / (1 + z / 2): the
function P(t) = log(erfc(z) / t) + z^2 is smooth on t in [0, 1] (it tends to -log(2 sqrt(pi)) as
z grows), so one polynomial keeps a small *relative* error over the whole range, tails included.
The kernels need z <= 10 (t >= 1/6): beyond, erfc(z) < 3e-45 is below the smallest float.

This script fits P by least squares on Chebyshev nodes of [1/6, 1], with erfc from mpmath (50
digits), then evaluates the formula in float32 arithmetic, as the kernels do, and prints the
coefficients and the worst relative error of erfc and the worst absolute error of x * Phi(x).

  /usr/bin/python3 scripts/fit_erfc.py [degree [zmax]]   (needs python3-numpy and python3-mpmath;
  zmax, default 10, bounds the z over which the relative error of erfc is reported)
"""
import sys

import mpmath
import numpy as np

mpmath.mp.dps = 50
DEG = int(sys.argv[1]) if len(sys.argv) > 1 else 9
T0, T1 = 1.0 / 6.0, 1.0


def target(t):
    z = 2 * (1 - mpmath.mpf(t)) / t
    return float(mpmath.log(mpmath.erfc(z) / t) + z * z)


# Least squares on many Chebyshev nodes approximates the minimax fit closely enough here.
n = 2000
nodes = 0.5 * (T0 + T1) + 0.5 * (T1 - T0) * np.cos(np.pi * (np.arange(n) + 0.5) / n)
vals = np.array([target(t) for t in nodes])
# Fit in the monomial basis of t (what Horner's rule in the kernel evaluates).
V = np.vander(nodes, DEG + 1, increasing=True)
coef, *_ = np.linalg.lstsq(V, vals, rcond=None)
c32 = coef.astype(np.float32)


def erfc32(z):
    z = np.float32(z)
    t = np.float32(1) / (np.float32(1) + np.float32(0.5) * z)
    p = c32[DEG]
    for c in c32[DEG - 1::-1]:
        p = np.float32(p * t + c)
    return np.float32(t * np.float32(np.exp(np.float32(-z * z + p))))


ZMAX = float(sys.argv[2]) if len(sys.argv) > 2 else 10.0
zs = np.concatenate([np.linspace(0, ZMAX, 40001), np.linspace(0, 0.5, 2001)])
worst_rel = 0.0
for z in zs:
    ref = float(mpmath.erfc(z))
    if ref < 1e-37:
        continue
    worst_rel = max(worst_rel, abs(float(erfc32(z)) - ref) / ref)
worst_gelu = 0.0
for x in np.linspace(-14, 14, 28001):
    z = abs(x) / np.sqrt(2)
    e = erfc32(z)
    phi = 0.5 * e if x < 0 else 1 - 0.5 * e
    ref = float(x * 0.5 * mpmath.erfc(-x / mpmath.sqrt(2)))
    worst_gelu = max(worst_gelu, abs(float(np.float32(x) * np.float32(phi)) - ref) / max(1.0, abs(ref)))
print("degree", DEG)
print("coefficients (t^0 first):")
for c in c32:
    print(f"  {float(c):.9e}f,")
print(f"worst relative error of erfc(z), z in [0, {ZMAX:g}] (float32 evaluation): {worst_rel:.3g}")
print(f"worst error of x Phi(x), x in [-14, 14] (absolute below 1, relative above): {worst_gelu:.3g}")
