"""FarmHash ``Fingerprint64`` and TensorFlow's ``FingerprintCat64``, vectorized over NumPy arrays.

Both functions are written from their published definitions (farmhash ``farmhashna::Hash64``, the
"forever-fixed" fingerprint TensorFlow uses for strings, and ``FingerprintCat64`` from TensorFlow's
``fingerprint.h``). Every array here is ``uint64``, where NumPy arithmetic wraps modulo 2**64 as
the C++ code does. All string inputs arrive as Arrow-style ``(offsets, data)`` buffers, so no
Python object is touched per string.
"""

from __future__ import annotations

import numpy as np

_U = np.uint64
K0 = _U(0xC3A5C85C97CB3127)
K1 = _U(0xB492B66FBE98F273)
K2 = _U(0x9AE16A3B2F90404F)
K_MUL = _U(0xC6A4A7935BD1E995)  # FingerprintCat64's multiplier

_S = {n: _U(n) for n in range(65)}  # shift counts as uint64: NumPy 2 refuses mixed-sign shifts
_LOW32 = _U(0xFFFFFFFF)


def _shift_mix(v):
    return v ^ (v >> _S[47])


def _rot(v, s):
    # Rotate right; every call site uses a constant 0 < s < 64.
    return (v >> _S[s]) | (v << _S[64 - s])


def _hash_len16(u, v, mul):
    a = (u ^ v) * mul
    a ^= a >> _S[47]
    b = (v ^ a) * mul
    b ^= b >> _S[47]
    return b * mul


def _weak32(w, x, y, z, a, b):
    a = a + w
    b = _rot(b + a + z, 21)
    c = a
    a = a + x + y
    b = b + _rot(a, 44)
    return a + z, b + c


def _join(lo, hi, shift):
    """Bytes ``shift/8 ..`` of the 16-byte little-endian pair ``(lo, hi)``, i.e. an unaligned load.

    ``hi << (64 - shift)`` is written as two shifts so that ``shift == 0`` gives 0 instead of the
    undefined 64-bit shift.
    """
    return (lo >> shift) | ((hi << _S[1]) << (_S[63] - shift))


class _ByteReader:
    """Unaligned little-endian loads from one padded byte buffer, vectorized over positions."""

    def __init__(self, data: np.ndarray):
        # 16 zero bytes of tail room: a load at the last position reads two words past it.
        padded = np.zeros((len(data) + 23) // 8 * 8, dtype=np.uint8)
        padded[: len(data)] = data
        self.bytes = padded
        self.words = padded.view("<u8").astype(np.uint64, copy=False)

    def u64(self, pos: np.ndarray) -> np.ndarray:
        """The little-endian word at each byte position."""
        q = (pos >> _S[3]).astype(np.intp)
        shift = (pos & _S[7]) << _S[3]
        return _join(self.words[q], self.words[q + 1], shift)

    def block(self, pos: np.ndarray) -> np.ndarray:
        """The 8 consecutive words (one 64-byte block) at each position, as an ``(8, len(pos))`` array."""
        q = (pos >> _S[3]).astype(np.intp)
        shift = (pos & _S[7]) << _S[3]
        # One take of a (9, n) index beats eight separate gathers and a (n, 9) fancy index.
        words = np.take(self.words, q[None, :] + np.arange(9)[:, None])
        return _join(words[:8], words[1:], shift)

    def u32(self, pos: np.ndarray) -> np.ndarray:
        return self.u64(pos) & _LOW32


def _len_0_to_16(r: _ByteReader, s, n):
    out = np.full(len(s), K2, dtype=np.uint64)
    mul = K2 + n * _S[2]
    big = n >= 8
    if big.any():
        sb, nb, mb = s[big], n[big], mul[big]
        a = r.u64(sb) + K2
        b = r.u64(sb + nb - _S[8])
        c = _rot(b, 37) * mb + a
        d = (_rot(a, 25) + b) * mb
        out[big] = _hash_len16(c, d, mb)
    mid = (n >= 4) & ~big
    if mid.any():
        sm, nm = s[mid], n[mid]
        a = r.u32(sm)
        out[mid] = _hash_len16(nm + (a << _S[3]), r.u32(sm + nm - _S[4]), mul[mid])
    small = (n > 0) & (n < 4)
    if small.any():
        ss, ns = s[small], n[small]
        a = r.bytes[ss.astype(np.intp)].astype(np.uint64)
        b = r.bytes[(ss + (ns >> _S[1])).astype(np.intp)].astype(np.uint64)
        c = r.bytes[(ss + ns - _S[1]).astype(np.intp)].astype(np.uint64)
        y = a + (b << _S[8])
        z = ns + (c << _S[2])
        out[small] = _shift_mix(y * K2 ^ z * K0) * K2
    return out


def _len_17_to_32(r: _ByteReader, s, n):
    mul = K2 + n * _S[2]
    a = r.u64(s) * K1
    b = r.u64(s + _S[8])
    c = r.u64(s + n - _S[8]) * mul
    d = r.u64(s + n - _S[16]) * K2
    return _hash_len16(_rot(a + b, 43) + _rot(c, 30) + d, a + _rot(b + K2, 18) + c, mul)


def _len_33_to_64(r: _ByteReader, s, n):
    mul = K2 + n * _S[2]
    a = r.u64(s) * K2
    b = r.u64(s + _S[8])
    c = r.u64(s + n - _S[8]) * mul
    d = r.u64(s + n - _S[16]) * K2
    y = _rot(a + b, 43) + _rot(c, 30) + d
    z = _hash_len16(y, a + _rot(b + K2, 18) + c, mul)
    e = r.u64(s + _S[16]) * mul
    f = r.u64(s + _S[24])
    g = (y + r.u64(s + n - _S[32])) * mul
    h = (z + r.u64(s + n - _S[24])) * mul
    return _hash_len16(_rot(e + f, 43) + _rot(g, 30) + h, e + _rot(f + a, 18) + g, mul)


def _len_over_64(r: _ByteReader, s, n):
    """Strings over 64 bytes. Callers pass rows sorted by block count, longest first."""
    blocks = ((n - _S[1]) >> _S[6]).astype(np.intp)
    m = len(s)
    seed = _U(81)
    x = np.full(m, seed * K2, dtype=np.uint64) + r.u64(s)
    y = np.full(m, seed * K1 + _U(113), dtype=np.uint64)
    z = np.full(m, _shift_mix((seed * K1 + _U(113)) * K2 + _U(113)) * K2, dtype=np.uint64)
    # v and w side by side: row 0 is farmhash's v, row 1 its w; pair index .0/.1 -> first/second.
    first = np.zeros((2, m), np.uint64)
    second = np.zeros((2, m), np.uint64)
    for it in range(int(blocks[0])):
        k = m if blocks[-1] > it else int(np.count_nonzero(blocks > it))  # looping rows: a prefix
        blk = r.block(s[:k] + _U(64 * it))
        xk, yk, zk = x[:k], y[:k], z[:k]
        v0, w0 = first[0, :k], first[1, :k]
        v1, w1 = second[0, :k], second[1, :k]
        xk = _rot(xk + yk + v0 + blk[1], 37) * K1
        yk = _rot(yk + v1 + blk[6], 42) * K1
        xk ^= w1
        yk += v0 + blk[5]
        zk = _rot(zk + w0, 33) * K1
        seeds_a = np.stack((v1 * K1, zk + w1))
        seeds_b = np.stack((xk + w0, yk + blk[2]))
        quads = blk.reshape(2, 4, k)
        a, b = _weak32(quads[:, 0], quads[:, 1], quads[:, 2], quads[:, 3], seeds_a, seeds_b)
        first[:, :k], second[:, :k] = a, b
        x[:k], z[:k] = zk, xk  # std::swap(z, x)
        y[:k] = yk
    v0, w0 = first
    v1, w1 = second
    mul = K1 + ((z & _U(0xFF)) << _S[1])
    blk = r.block(s + n - _S[64])
    w0 = w0 + ((n - _S[1]) & _U(63))
    v0 = v0 + w0
    w0 = w0 + v0
    x = _rot(x + y + v0 + blk[1], 37) * mul
    y = _rot(y + v1 + blk[6], 42) * mul
    x ^= w1 * _U(9)
    y += v0 * _U(9) + blk[5]
    z = _rot(z + w0, 33) * mul
    quads = blk.reshape(2, 4, m)
    (v0, w0), (v1, w1) = _weak32(
        quads[:, 0], quads[:, 1], quads[:, 2], quads[:, 3],
        np.stack((v1 * mul, z + w1)), np.stack((x + w0, y + blk[2])),
    )
    x, z = z, x
    return _hash_len16(
        _hash_len16(v0, w0, mul) + _shift_mix(y) * K0 + z,
        _hash_len16(v1, w1, mul) + x,
        mul,
    )


# Small enough that every temporary stays in cache: several times faster than whole-column
# passes, which are bound by memory bandwidth. (Threads over chunks measured no faster: the GIL
# is held between the many short ufunc calls.)
_CHUNK_ROWS = 4096
_LENGTH_BOUNDS = np.array([17, 33, 65], dtype=np.uint64)  # class c holds lengths < bound c
_CLASSES = (_len_0_to_16, _len_17_to_32, _len_33_to_64, _len_over_64)


def fingerprint64_buffers(offsets: np.ndarray, data: np.ndarray) -> np.ndarray:
    """``Fingerprint64`` of each byte string in Arrow layout: string i is ``data[offsets[i]:offsets[i+1]]``.

    Returns a ``uint64`` array of ``len(offsets) - 1`` fingerprints.
    """
    offsets = np.asarray(offsets)
    starts = offsets[:-1].astype(np.uint64)
    lengths = (offsets[1:] - offsets[:-1]).astype(np.uint64)
    reader = _ByteReader(np.asarray(data, dtype=np.uint8))
    out = np.empty(len(starts), dtype=np.uint64)
    classes = np.searchsorted(_LENGTH_BOUNDS, lengths, side="right")
    with np.errstate(over="ignore"):
        for c, fn in enumerate(_CLASSES):
            rows = np.flatnonzero(classes == c)
            if c == 3 and len(rows):
                # Longest first, so that within a chunk the rows still looping form a prefix.
                blocks = ((lengths[rows] - _S[1]) >> _S[6]).astype(np.int64)
                rows = rows[np.argsort(-blocks, kind="stable")]
            for lo in range(0, len(rows), _CHUNK_ROWS):
                chunk = rows[lo : lo + _CHUNK_ROWS]
                out[chunk] = fn(reader, starts[chunk], lengths[chunk])
    return out


def fingerprint_cat64(a, b) -> np.ndarray:
    """TensorFlow's ``FingerprintCat64(a, b)``, elementwise; ``a`` may be a scalar seed."""
    with np.errstate(over="ignore"):
        b = np.asarray(b, dtype=np.uint64)
        t = b * K_MUL
        t ^= t >> _S[47]
        t *= K_MUL
        r = np.asarray(a, dtype=np.uint64) ^ K_MUL
        t ^= r
        t *= K_MUL
        t ^= t >> _S[47]
        t *= K_MUL
        t ^= t >> _S[47]
    return t
