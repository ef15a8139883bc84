"""FarmHash ``Fingerprint64`` of strings and TensorFlow's ``FingerprintCat64`` fold: the compiled
kernel, and the NumPy path it falls back to.

Two kernels compute the same bits:

- ``"c"``: the optional extension :mod:`beam_cross.core._kernel` (``_kernel.c``, built with the
  package where a C compiler is present): hashing, the fold and the modulo in one pass over Python
  objects, NumPy and Arrow buffers;
- ``"numpy"``: ``Fingerprint64`` from the compiled ``pyfarmhash`` (module ``farmhash``), one call per
  value, with a vectorized NumPy version of farmhash's short-string cases for strings of at most
  64 bytes in Arrow layout, and the fold in NumPy.

:data:`KERNEL` says which one is in use: the compiled one when it imports, unless the environment
variable ``BEAM_CROSS_KERNEL`` is ``numpy`` (``c`` makes a missing extension an ImportError).
``FingerprintCat64`` is written from TensorFlow's ``fingerprint.h``. Every array here is ``uint64``,
where NumPy arithmetic wraps modulo 2**64 as the C++ code does.
"""

from __future__ import annotations

import os

import farmhash
import numpy as np
import pyarrow as pa

KERNEL_ENV = "BEAM_CROSS_KERNEL"


def _check_farmhash() -> None:
    """pyfarmhash before 0.4 hashes neither bytes nor strings holding a NUL; refuse it at import."""
    try:
        farmhash.fingerprint64(b"\x00")
        farmhash.fingerprint64("\x00")
    except (AttributeError, TypeError, ValueError):
        raise ImportError(
            "beam_cross needs pyfarmhash>=0.4 (module `farmhash` whose `fingerprint64` takes bytes and str). "
            f"Received: the `farmhash` module at {getattr(farmhash, '__file__', '?')}"
        ) from None


_check_farmhash()


def _load_kernel():
    """The compiled kernel module, or None for the NumPy path (see the module docstring)."""
    choice = os.environ.get(KERNEL_ENV, "").strip().lower()
    if choice not in ("", "c", "numpy"):
        raise ImportError(f"{KERNEL_ENV} must be `c` or `numpy` (or unset). Received: {KERNEL_ENV}={choice!r}")
    if choice == "numpy":
        return None
    try:
        from beam_cross.core import _kernel
    except ImportError as error:
        if choice == "c":
            raise ImportError(
                f"{KERNEL_ENV}=c, but the compiled kernel beam_cross.core._kernel is not installed "
                f"(it is built when the package is installed with a C compiler): {error}"
            ) from None
        return None
    return _kernel


_C = _load_kernel()
KERNEL = "c" if _C is not None else "numpy"


def compiled() -> bool:
    """Whether the compiled kernel is in use."""
    return _C is not None

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


# Small enough that every temporary stays in cache: several times faster than whole-column
# passes, which are bound by memory bandwidth.
_CHUNK_ROWS = 4096
_FOLD_CHUNK_ROWS = 16384
# Longer strings go to pyfarmhash in slices of this many rows, so that their bytes objects never
# hold more than a slice of the column at once.
_OBJECT_CHUNK_ROWS = 65536
_LENGTH_BOUNDS = np.array([17, 33, 65], dtype=np.uint64)  # class c holds lengths < bound c
_SHORT_CLASSES = (_len_0_to_16, _len_17_to_32, _len_33_to_64)


def fingerprint64_objects(values, count: int = -1) -> np.ndarray:
    """``Fingerprint64`` of each ``str`` (its UTF-8 bytes) or ``bytes`` of an iterable, as uint64.

    Raises ``TypeError`` on a value of another type and ``UnicodeEncodeError`` on a ``str`` that
    is not valid Unicode (a lone surrogate); callers turn both into a FeatureError.

    >>> fingerprint64_objects(["a", b"a"]).tolist()
    [12917804110809363939, 12917804110809363939]
    """
    if _C is not None and isinstance(values, (list, tuple, np.ndarray)):
        fingerprints, kinds = object_fingerprints(values)
        if kinds is not None and kinds <= STRING_KIND:
            return fingerprints
    return np.fromiter(map(farmhash.fingerprint64, values), np.uint64, count)


# The kinds the compiled kernel reports, as bits: strings, integers, and both in one column.
STRING_KIND, INT_KIND = 1, 2
BOTH_KINDS = STRING_KIND | INT_KIND


def object_fingerprints(values) -> tuple[np.ndarray | None, int | None]:
    """With the compiled kernel: the fingerprints of a list, tuple or 1-D object array whose values
    are all exact ``str``, ``bytes`` or ``int`` (within int64 / uint64), and the kinds seen (bit 1
    strings, bit 2 integers; 0 when empty). ``(None, None)`` when a value is of any other type, or
    without the kernel: the caller then applies the value rule in Python.
    """
    if _C is None or (isinstance(values, np.ndarray) and (values.dtype != object or values.ndim != 1)):
        return None, None
    if isinstance(values, np.ndarray):
        values = np.ascontiguousarray(values)  # the kernel reads a contiguous array's pointers: copy a strided one
    out = np.empty(len(values), np.uint64)
    kinds = _C.fingerprint_objects(values, out)
    return (out, kinds) if kinds >= 0 else (None, None)


def fingerprint64_fixed(flat: np.ndarray) -> tuple[np.ndarray | None, int]:
    """With the compiled kernel: ``Fingerprint64`` of each value of a 1-D NumPy ``S`` / ``U`` array, as
    NumPy gives the values (trailing NULs are padding; ``U`` hashed as UTF-8), and -1; or ``(None, i)``
    when value ``i`` is not valid Unicode. ``(None, -1)`` without the kernel."""
    if _C is None:
        return None, -1
    flat = np.ascontiguousarray(flat, flat.dtype.newbyteorder("="))  # the kernel reads native UCS-4
    out = np.empty(len(flat), np.uint64)
    bad = _C.fingerprint_fixed(flat, flat.dtype.itemsize, flat.dtype.kind == "U", out) if len(flat) else -1
    return (out, -1) if bad < 0 else (None, bad)


def offset_steps(offsets: np.ndarray) -> tuple[int, bool]:
    """``(first, unit)`` over an int32 / int64 offsets array: the index of the first step that decreases
    (-1 if none) and whether every step is exactly 1 (one value per row). One pass with the kernel.

    >>> offset_steps(np.array([0, 1, 2], np.int64)), offset_steps(np.array([0, 2, 1], np.int32))
    ((-1, True), (1, False))
    """
    if _C is not None and offsets.dtype in (np.int32, np.int64):
        return _C.offset_steps(np.ascontiguousarray(offsets), offsets.dtype.itemsize)
    steps = offsets[1:] - offsets[:-1]
    decreasing = np.flatnonzero(steps < 0)
    if len(decreasing):
        return int(decreasing[0]), False
    return -1, bool(np.all(steps == 1))


def fingerprint64_buffers(offsets: np.ndarray, data: np.ndarray) -> np.ndarray:
    """``Fingerprint64`` of each byte string in Arrow layout: string i is ``data[offsets[i]:offsets[i+1]]``.

    Returns a ``uint64`` array of ``len(offsets) - 1`` fingerprints. Strings of up to 64 bytes are
    hashed here, vectorized; longer ones by pyfarmhash.
    """
    offsets = np.asarray(offsets)
    if _C is not None and offsets.dtype in (np.int32, np.int64):
        out = np.empty(max(len(offsets) - 1, 0), np.uint64)
        _C.fingerprint_buffers(np.ascontiguousarray(offsets), offsets.dtype.itemsize, np.ascontiguousarray(data, np.uint8), out)
        return out
    lengths = (offsets[1:] - offsets[:-1]).astype(np.uint64)
    out = np.empty(len(lengths), dtype=np.uint64)
    classes = np.searchsorted(_LENGTH_BOUNDS, lengths, side="right")
    long_rows = np.flatnonzero(classes == len(_SHORT_CLASSES))
    data = np.asarray(data, dtype=np.uint8)
    if len(long_rows) < len(out):
        starts = offsets[:-1].astype(np.uint64)
        reader = _ByteReader(data)
        with np.errstate(over="ignore"):
            for c, fn in enumerate(_SHORT_CLASSES):
                rows = np.flatnonzero(classes == c)
                for lo in range(0, len(rows), _CHUNK_ROWS):
                    chunk = rows[lo : lo + _CHUNK_ROWS]
                    out[chunk] = fn(reader, starts[chunk], lengths[chunk])
    if len(long_rows):
        binary = pa.Array.from_buffers(
            pa.large_binary(), len(out), [None, pa.py_buffer(offsets.astype(np.int64, copy=False)), pa.py_buffer(data)]
        )
        for lo in range(0, len(long_rows), _OBJECT_CHUNK_ROWS):
            chunk = long_rows[lo : lo + _OBJECT_CHUNK_ROWS]
            # All long: a slice, no gather.
            values = binary.slice(lo, len(chunk)) if len(long_rows) == len(out) else binary.take(pa.array(chunk))
            out[chunk] = fingerprint64_objects(values.to_numpy(zero_copy_only=False), len(chunk))
    return out


def fold_bins(seed: int, columns: list[np.ndarray], modulus: int = 0) -> np.ndarray:
    """``h = seed``, then ``h = FingerprintCat64(h, column)`` for each column in order, elementwise;
    then ``h % modulus`` (unless 0). Returns uint64, computed a cache-sized chunk at a time.

    >>> a, b = np.array([1, 2], np.uint64), np.array([3, 4], np.uint64)
    >>> (fold_bins(7, [a, b]) != fold_bins(7, [b, a])).all()  # the order of the columns matters
    np.True_
    """
    n = len(columns[0])
    out = np.empty(n, np.uint64)
    if _C is not None and n:
        _C.fold(seed % 2**64, [np.ascontiguousarray(c, np.uint64) for c in columns], modulus, out)
        return out
    scratch = np.empty((2, min(n, _FOLD_CHUNK_ROWS)), np.uint64)
    seed_key = _U(seed) ^ K_MUL
    mod = _U(modulus)
    for lo in range(0, n, _FOLD_CHUNK_ROWS):
        hi = min(n, lo + _FOLD_CHUNK_ROWS)
        h, t, u = out[lo:hi], scratch[0, : hi - lo], scratch[1, : hi - lo]
        for j, column in enumerate(columns):
            np.multiply(column[lo:hi], K_MUL, out=t)  # t = ShiftMix(b * kMul) * kMul
            np.right_shift(t, _S[47], out=u)
            np.bitwise_xor(t, u, out=t)
            np.multiply(t, K_MUL, out=t)
            if j:  # t ^= h ^ kMul
                np.bitwise_xor(t, h, out=t)
                np.bitwise_xor(t, K_MUL, out=t)
            else:
                np.bitwise_xor(t, seed_key, out=t)
            np.multiply(t, K_MUL, out=t)  # h = ShiftMix(ShiftMix(t * kMul) * kMul)
            np.right_shift(t, _S[47], out=u)
            np.bitwise_xor(t, u, out=t)
            np.multiply(t, K_MUL, out=t)
            np.right_shift(t, _S[47], out=u)
            np.bitwise_xor(t, u, out=h)
        if modulus:
            np.remainder(h, mod, out=h)
    return out
