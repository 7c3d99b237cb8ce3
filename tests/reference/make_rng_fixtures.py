#!/usr/bin/python3
"""Writes tests/data/rng_expected.safetensors: scholar's Generator re-implemented in plain Python.

Python floats are IEEE-754 doubles and numpy.float32 rounds like C float, so this independent
implementation must agree with the C++ one bit for bit; the test then proves the numbers do not
depend on the compiler or platform. Philox4x32-10 is also checked against the Random123 known-answer
vectors in the C++ test.
Run: /usr/bin/python3 tests/reference/make_rng_fixtures.py
"""
import math
import os
import struct

import numpy as np
import torch

from st_write import save

M0, M1, W0, W1 = 0xD2511F53, 0xCD9E8D57, 0x9E3779B9, 0xBB67AE85
MASK = 0xFFFFFFFF


def philox(ctr, key):
    c0, c1, c2, c3 = ctr
    k0, k1 = key
    for _ in range(10):
        p0, p1 = M0 * c0, M1 * c2
        c0, c1, c2, c3 = ((p1 >> 32) ^ c1 ^ k0) & MASK, p1 & MASK, ((p0 >> 32) ^ c3 ^ k1) & MASK, p0 & MASK
        k0, k1 = (k0 + W0) & MASK, (k1 + W1) & MASK
    return [c0, c1, c2, c3]


class Gen:
    def __init__(self, seed):
        self.seed, self.counter, self.used, self.block = seed, 0, 4, [0] * 4

    def u32(self):
        if self.used >= 4:
            c = self.counter
            self.counter += 1
            self.block = philox([c & MASK, c >> 32, 0, 0], [self.seed & MASK, self.seed >> 32])
            self.used = 0
        v = self.block[self.used]
        self.used += 1
        return v

    def u64(self):
        lo = self.u32()
        return (self.u32() << 32) | lo

    def uniform(self):  # float32 in [0, 1)
        return np.float32(self.u32() >> 8) * np.float32(2.0 ** -24)

    def uniform_double(self):
        return float(self.u64() >> 11) * 2.0 ** -53

    def normal_pair(self):
        u1 = 1.0 - self.uniform_double()
        u2 = self.uniform_double()
        r = math.sqrt(-2.0 * plog(u1))
        s, c = sincos_2pi(u2)
        return r * c, r * s


def plog(x):
    m, e = math.frexp(x)
    if m < 0.70710678118654752440:
        m *= 2.0
        e -= 1
    s = (m - 1.0) / (m + 1.0)
    s2 = s * s
    series = 1.0 / 23.0
    for k in range(21, 0, -2):
        series = 1.0 / k + s2 * series
    return e * 6.93147180369123816490e-01 + (e * 1.90821492927058770002e-10 + 2.0 * s * series)


KSIN = [1.0, -1.0 / 6.0, 1.0 / 120.0, -1.0 / 5040.0, 1.0 / 362880.0, -1.0 / 39916800.0,
        1.0 / 6227020800.0, -1.0 / 1307674368000.0, 1.0 / 355687428096000.0]
KCOS = [1.0, -1.0 / 2.0, 1.0 / 24.0, -1.0 / 720.0, 1.0 / 40320.0, -1.0 / 3628800.0,
        1.0 / 479001600.0, -1.0 / 87178291200.0, 1.0 / 20922789888000.0, -1.0 / 6402373705728000.0]


def sincos_2pi(t):
    x = t * 4.0
    q = math.floor(x)
    f = x - q
    mirror = f > 0.5
    g = 1.0 - f if mirror else f
    th = g * 1.57079632679489661923
    th2 = th * th
    ps = KSIN[8]
    for j in range(7, -1, -1):
        ps = KSIN[j] + th2 * ps
    pc = KCOS[9]
    for j in range(8, -1, -1):
        pc = KCOS[j] + th2 * pc
    sn, cs = th * ps, pc
    sp, cp = (cs, sn) if mirror else (sn, cs)
    q = int(q) & 3
    return [(sp, cp), (cp, -sp), (-sp, -cp), (-cp, sp)][q]


def dbits(values):
    """Doubles as pairs of int32 words (low, high) so they survive the file exactly."""
    out = []
    for v in values:
        lo, hi = struct.unpack("<iI", struct.pack("<d", v))
        out += [lo, struct.unpack("<i", struct.pack("<I", hi))[0]]
    return torch.tensor(out, dtype=torch.int32)


out = {}
g = Gen(42)
out["u32.seed42"] = torch.tensor(np.array([g.u32() for _ in range(12)], dtype=np.uint32).view(np.int32))
g = Gen(7)
out["uniform.seed7"] = torch.tensor(np.array([g.uniform() for _ in range(10)], dtype=np.float32))
g = Gen(2026)
vals = []
for _ in range(5):
    z0, z1 = g.normal_pair()
    vals += [np.float32(0.0 + 1.0 * z0), np.float32(0.0 + 1.0 * z1)]
out["randn.seed2026"] = torch.tensor(np.array(vals, dtype=np.float32))
g = Gen(0xDEADBEEFCAFE)  # a seed above 2^32; mean 0.5, std 0.02 as C++ floats
std = float(np.float32(0.02))
vals = []
for _ in range(5):
    z0, z1 = g.normal_pair()
    vals += [np.float32(0.5 + std * z0), np.float32(0.5 + std * z1)]
out["randn.seed_big"] = torch.tensor(np.array(vals, dtype=np.float32))
xs = [1.0, 0.5, 0.7071, 0.70710678118654752440, 1e-300, 3.0, 0.999999999, 1.0 - 2.0 ** -53, 2.0 ** -1074]
out["log.x"] = dbits(xs)
out["log.y"] = dbits([plog(x) for x in xs])
ts = [0.0, 0.125, 0.25, 0.3, 0.5, 0.6180339887, 0.75, 0.99999]
out["sincos.t"] = dbits(ts)
out["sincos.sc"] = dbits([v for t in ts for v in sincos_2pi(t)])

path = os.path.join(os.path.dirname(__file__), "..", "data", "rng_expected.safetensors")
save(path, out, {"generator": "tests/reference/make_rng_fixtures.py"})
print("wrote", os.path.normpath(path), os.path.getsize(path), "bytes")
print("philox kat 0:", ["%08x" % v for v in philox([0, 0, 0, 0], [0, 0])])
print("philox kat pi:", ["%08x" % v for v in philox([0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344], [0xa4093822, 0x299f31d0])])
