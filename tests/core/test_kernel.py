"""The compiled kernel ``beam_cross.core._kernel`` itself, against pyfarmhash, NumPy and ``tf.sparse.cross_hashed``.

Strings of every length class, at unaligned positions, with NULs, in any UTF-8 width; NumPy ``S`` /
``U`` arrays as NumPy gives their values; the int64 / uint64 edges; the fold and modulo against the
NumPy fold; Arrow offsets above 2**31; and the errors of malformed arguments (never an out-of-bounds
read). Also the ``BEAM_CROSS_KERNEL`` switch, in subprocesses. The whole module skips when the
kernel is not built (no C compiler at install), and fails under ``CI=true``: the CI must build it.
"""

from __future__ import annotations

import os

import farmhash
import numpy as np
import pyarrow as pa
import pytest

import beam_cross.core
from beam_cross import FeatureError, feature_column, hashed_cross
from beam_cross.core import _fingerprint

NOT_BUILT = "the compiled kernel is not built (no C compiler at install)"
IN_CI = os.environ.get("CI", "").strip().lower() == "true"

try:
    from beam_cross.core import _kernel
except ImportError:
    if IN_CI:
        pytest.fail(f"{NOT_BUILT}; the CI must build it (CI=true)", pytrace=False)
    pytest.skip(NOT_BUILT, allow_module_level=True)

UTF8_WIDTHS = {  # code point ranges by the length of their UTF-8 (surrogates left out: not encodable)
    1: [(0x00, 0x7F)],
    2: [(0x80, 0x7FF)],
    3: [(0x800, 0xD7FF), (0xE000, 0xFFFF)],
    4: [(0x10000, 0x10FFFF)],
}


def pyfarmhash(values) -> list[int]:
    """The oracle: pyfarmhash's Fingerprint64 of each value (a str as its UTF-8)."""
    return [farmhash.fingerprint64(v.encode("utf-8") if isinstance(v, str) else v) for v in values]


def arrow_layout(strings: list[bytes], lead: bytes = b"", dtype=np.int64):
    """``(offsets, data)`` of ``strings`` in Arrow layout, after ``lead`` (unrelated bytes)."""
    offsets = np.concatenate([[0], np.cumsum([len(s) for s in strings], dtype=np.int64)]) + len(lead)
    return offsets.astype(dtype), np.frombuffer(lead + b"".join(strings), np.uint8)


def kernel_buffers(offsets, data) -> list[int]:
    out = np.empty(len(offsets) - 1, np.uint64)
    assert _kernel.fingerprint_buffers(offsets, offsets.dtype.itemsize, data, out) is None
    return out.tolist()


def kernel_objects(values) -> tuple[int, list[int]]:
    out = np.empty(len(values), np.uint64)
    kinds = _kernel.fingerprint_objects(values, out)
    return kinds, out.tolist()


def random_bytes(rng, lengths) -> list[bytes]:
    return [rng.integers(0, 256, n, dtype=np.uint8).tobytes() for n in lengths]


def random_text(rng, length: int, widths=(1, 2, 3, 4)) -> str:
    chars = []
    for width in rng.choice(widths, length):
        ranges = UTF8_WIDTHS[int(width)]
        lo, hi = ranges[int(rng.integers(0, len(ranges)))]
        chars.append(chr(int(rng.integers(lo, hi + 1))))
    return "".join(chars)


def mismatches(values, got, want):
    return [(i, values[i][:12]) for i, (g, w) in enumerate(zip(got, want)) if g != w]


# ---------------------------------------------------------------- strings vs pyfarmhash


@pytest.mark.parametrize("seed", range(4))
def test_every_length_0_to_700_vs_pyfarmhash(seed):
    rng = np.random.default_rng(seed)
    strings = random_bytes(rng, range(701))
    want = pyfarmhash(strings)
    assert mismatches(strings, [_kernel.fingerprint64(s) for s in strings], want) == []
    assert mismatches(strings, kernel_buffers(*arrow_layout(strings)), want) == []
    kinds, got = kernel_objects(strings)
    assert kinds == 1
    assert mismatches(strings, got, want) == []
    assert mismatches(strings, kernel_objects(tuple(strings))[1], want) == []
    as_array = np.empty(len(strings), object)
    as_array[:] = strings
    assert mismatches(strings, kernel_objects(as_array)[1], want) == []


@pytest.mark.parametrize("start", range(1, 8))
@pytest.mark.parametrize("dtype", [np.int32, np.int64])
def test_unaligned_starts_inside_a_buffer(start, dtype):
    # Offsets from `start`: every load of every length class is unaligned; the data itself also
    # begins one byte into its allocation.
    rng = np.random.default_rng(100 + start)
    strings = random_bytes(rng, range(701))
    offsets, data = arrow_layout(strings, lead=rng.integers(0, 256, start + 1, dtype=np.uint8).tobytes(), dtype=dtype)
    assert offsets[0] == start + 1
    data, offsets = data[1:], offsets - 1  # a view: its first byte sits at an odd address
    assert offsets[0] == start
    assert mismatches(strings, kernel_buffers(offsets, data), pyfarmhash(strings)) == []


def test_nul_bytes_inside_and_trailing():
    rng = np.random.default_rng(7)
    strings = [b"\x00" * n for n in range(150)]
    for n in list(range(1, 150)) + [300, 701]:
        data = bytearray(rng.integers(0, 256, n, dtype=np.uint8).tobytes())
        data[int(rng.integers(0, n))] = 0
        strings += [bytes(data), bytes(data) + b"\x00", bytes(data) + b"\x00" * int(rng.integers(2, 70))]
    want = pyfarmhash(strings)
    assert len(set(want)) == len(set(strings))  # every NUL counts
    assert mismatches(strings, [_kernel.fingerprint64(s) for s in strings], want) == []
    assert mismatches(strings, kernel_buffers(*arrow_layout(strings, lead=b"\x00\x00\x00")), want) == []
    assert mismatches(strings, kernel_objects(strings)[1], want) == []
    texts = [s.decode("latin-1") for s in strings]  # str with NULs: their UTF-8 holds the NULs too
    assert mismatches(texts, kernel_objects(texts)[1], pyfarmhash(texts)) == []


@pytest.mark.parametrize("widths", [(1,), (2,), (3,), (4,), (1, 2, 3, 4)])
def test_non_ascii_str_is_its_utf8(widths):
    rng = np.random.default_rng(sum(widths))
    texts = [random_text(rng, n, widths) for n in list(range(0, 200)) + [int(n) for n in rng.integers(200, 3000, 10)]]
    want = pyfarmhash(texts)
    if len(widths) == 1:
        assert all(len(t.encode("utf-8")) == widths[0] * len(t) for t in texts)
    kinds, got = kernel_objects(texts)
    assert kinds == 1
    assert mismatches(texts, got, want) == []
    assert mismatches(texts, [_kernel.fingerprint64(t) for t in texts], want) == []
    assert mismatches(texts, kernel_buffers(*arrow_layout([t.encode("utf-8") for t in texts])), want) == []


@pytest.mark.parametrize("text", ["\ud800", "\udfff", "a\udc80b", "\ud83d\ude00", "é" * 20 + "\ud800"])
def test_lone_surrogates_are_refused(text):
    kinds, _ = kernel_objects(["ok", b"fine", text])
    assert kinds == -1 - 2
    with pytest.raises(UnicodeEncodeError):
        farmhash.fingerprint64(text)  # pyfarmhash refuses it as well
    with pytest.raises(UnicodeEncodeError):
        _kernel.fingerprint64(text)
    array = np.array(["ok", text, "later"])
    out = np.empty(3, np.uint64)
    assert _kernel.fingerprint_fixed(array, array.dtype.itemsize, True, out) == 1


@pytest.mark.parametrize(
    "column",
    [["ok", "\ud800"], ("ok", "\ud800"), np.array(["ok", "\ud800"]), np.array(["ok", "\ud800"], object),
     np.array(["ok", "\ud800"], ">U2"), [["ok"], ["a", "\udc80"]]],
    ids=["list", "tuple", "numpy_U", "numpy_object", "numpy_U_big_endian", "multivalent"],
)
@pytest.mark.usefixtures("kernel")
def test_lone_surrogates_raise_unsupported_type_on_both_kernels(column):
    with pytest.raises(FeatureError) as info:
        hashed_cross({"bad": column, "ok": [1, 2]}, 10)
    assert (info.value.feature, info.value.reason, info.value.row) == ("bad", "unsupported_type", 1)


# ---------------------------------------------------------------- NumPy 'S' / 'U'


def fixed_values(rng, kind: str) -> list:
    texts = ["", "\x00", "a\x00b", "\x00\x00x", "x\x00", "ab\x00\x00", "\x00" * 9 + "z", "plain", "é\x00日"]
    texts += [random_text(rng, int(n)) for n in rng.integers(0, 90, 60)]
    texts += ["".join(rng.choice(["a", "\x00", "é", "🙂"], int(n))) for n in rng.integers(0, 40, 60)]
    if kind == "U":
        return texts
    return [t.encode("utf-8") for t in texts] + random_bytes(rng, range(0, 120, 3))


def kernel_fixed(array: np.ndarray) -> tuple[int, list[int]]:
    out = np.empty(len(array), np.uint64)
    return _kernel.fingerprint_fixed(array, array.dtype.itemsize, array.dtype.kind == "U", out), out.tolist()


@pytest.mark.kernels("c")  # also through the wrappers of _fingerprint, with the kernel in use
@pytest.mark.usefixtures("kernel")
@pytest.mark.parametrize("kind", ["S", "U"])
def test_numpy_fixed_width_arrays_are_numpys_values(kind):
    rng = np.random.default_rng(11)
    array = np.array(fixed_values(rng, kind), dtype=kind)
    held = array.tolist()  # NumPy's values: inner NULs kept, trailing NULs are padding
    assert any(v.endswith("\x00" if kind == "U" else b"\x00") for v in fixed_values(rng, kind))
    want = pyfarmhash(held)
    bad, got = kernel_fixed(array)
    assert bad == -1
    assert mismatches(held, got, want) == []
    for form in (array, array.astype(array.dtype.newbyteorder(">")), np.repeat(array, 2)[::2]):
        fingerprints, bad = _fingerprint.fingerprint64_fixed(form)
        assert bad == -1 and fingerprints.tolist() == want
    for width in (1, 3, 8, 17, 65):  # the same values cut to other item sizes
        cut = array.astype(f"{kind}{width}")
        assert kernel_fixed(cut) == (-1, pyfarmhash(cut.tolist()))


@pytest.mark.parametrize("kind", ["S", "U"])
@pytest.mark.usefixtures("kernel")
def test_numpy_fixed_width_columns_on_both_kernels(kind):
    rng = np.random.default_rng(12)
    array = np.array(fixed_values(rng, kind), dtype=kind)
    want = pyfarmhash(array.tolist())
    for form in (array, array.astype(array.dtype.newbyteorder(">")), np.repeat(array, 2)[::2], array.reshape(-1, 1)):
        assert feature_column(form).fingerprints.tolist() == want


# ---------------------------------------------------------------- Python values: kinds and int edges


def int_bits(number: int) -> int:
    """The 64 bits NumPy gives an int64 (or, above it, a uint64) value."""
    dtype = np.uint64 if number > np.iinfo(np.int64).max else np.int64
    return int(np.array([number], dtype).view(np.uint64)[0])


INT_EDGES = [-(2**63), -(2**63) + 1, -1, 0, 1, 2**31, 2**32, 2**63 - 1, 2**63, 2**64 - 2, 2**64 - 1]


def test_int_edges_are_their_64_bits():
    kinds, got = kernel_objects(INT_EDGES)
    assert kinds == 2
    assert got == [int_bits(v) for v in INT_EDGES]
    assert kernel_objects(tuple(INT_EDGES))[1] == got


class _Int(int):
    pass


@pytest.mark.parametrize(
    "value",
    [2**64, 2**100, -(2**63) - 1, -(2**100), True, False, np.int64(1), np.uint64(1), np.int8(-1), 1.0, float("nan"),
     None, np.str_("a"), np.bytes_(b"a"), np.bytes_(b"a\x00"), bytearray(b"a"), memoryview(b"a"), _Int(3), ["a"], 1j],
    ids=lambda value: type(value).__name__,
)
def test_other_values_return_the_index_of_the_first(value):
    for position in (0, 1, 5):
        values = ["a", b"b", 1, 2**64 - 1, "é"][:position] + [value, "after", 7]
        assert kernel_objects(values)[0] == -1 - position
    assert kernel_objects([value])[0] == -1


def test_kinds_of_strings_ints_both_and_none():
    assert kernel_objects([])[0] == 0
    assert kernel_objects(["a", b"b"])[0] == 1
    assert kernel_objects([1, 2**64 - 1])[0] == 2
    assert kernel_objects(["a", 1])[0] == 3
    assert kernel_objects([-1, b"x", "y"])[0] == 3


@pytest.mark.kernels("c")  # also through the wrappers of _fingerprint, with the kernel in use
@pytest.mark.usefixtures("kernel")
def test_fingerprint_objects_wrapper_on_strided_and_2d_object_arrays():
    values = np.array(["a", "bb", "c" * 70, "d", b"e", "f"], object)
    want = pyfarmhash(values[::2].tolist())
    assert _fingerprint.fingerprint64_objects(values[::2]).tolist() == want
    fingerprints, kinds = _fingerprint.object_fingerprints(values[::2])
    assert kinds == 1 and fingerprints.tolist() == want
    assert _fingerprint.object_fingerprints(values.reshape(2, 3)) == (None, None)
    assert _fingerprint.object_fingerprints(np.arange(3)) == (None, None)


# ---------------------------------------------------------------- the fold


@pytest.mark.parametrize("modulus", [0, 1, 3, 1000, 2**32 + 1, 2**62 + 12345, 2**63 - 1, 2**63, 2**64 - 1])
@pytest.mark.parametrize("num_columns", [1, 2, 5])
def test_fold_vs_the_numpy_fold(modulus, num_columns, monkeypatch):
    rng = np.random.default_rng(modulus % 1000 + num_columns)
    rows = 40_000
    edges = np.array([0, 1, 2**63 - 1, 2**63, 2**64 - 1], np.uint64)
    columns = [np.concatenate([edges, rng.integers(0, 2**64, rows, np.uint64)]) for _ in range(num_columns)]
    seeds = [0, 1, 0xDECAFCAFFE, 2**63, 2**64 - 1, int(rng.integers(0, 2**64, dtype=np.uint64))]
    got = {}
    for seed in seeds:
        out = np.empty(len(columns[0]), np.uint64)
        assert _kernel.fold(seed, columns, modulus, out) is None
        got[seed] = out.tolist()
    monkeypatch.setattr(_fingerprint, "_C", None)  # the NumPy fold is the oracle
    for seed in seeds:
        want = _fingerprint.fold_bins(seed, columns, modulus).tolist()
        assert got[seed] == want, seed
    if modulus:
        assert max(max(v) for v in got.values()) < modulus


# ---------------------------------------------------------------- against TensorFlow


@pytest.mark.kernels("c")
@pytest.mark.usefixtures("kernel")
@pytest.mark.parametrize("num_bins", [0, 7, 2**62 + 12345])
def test_generated_columns_vs_tf_sparse_cross_hashed(num_bins):
    tf = pytest.importorskip("tensorflow", reason="the oracle is tf.sparse.cross_hashed (extra `tf`)")
    rng = np.random.default_rng(num_bins % 997)
    n = 3000
    data = random_bytes(rng, rng.integers(0, 200, n))
    texts = [random_text(rng, int(k)).rstrip("\x00") for k in rng.integers(0, 40, n)]  # a 'U' array holds them all
    ints = rng.integers(-(2**63), 2**63 - 1, n, dtype=np.int64, endpoint=True)
    tensors = [tf.constant(np.array(data, object).reshape(-1, 1), tf.string),
               tf.constant(np.array([t.encode("utf-8") for t in texts], object).reshape(-1, 1), tf.string),
               tf.constant(ints.reshape(-1, 1))]
    expected = tf.sparse.cross_hashed(tensors, num_buckets=num_bins, hash_key=None).values.numpy().tolist()
    forms = {
        "python": [data, texts, ints.tolist()],
        "arrow": [pa.array(data, pa.binary()), pa.array(texts, pa.large_string()), pa.array(ints)],
        "numpy": [np.array(data, object), np.array(texts), ints],
    }
    got = {name: hashed_cross(columns, num_bins).tolist() for name, columns in forms.items()}
    assert got == dict.fromkeys(forms, expected)


# ---------------------------------------------------------------- Arrow offsets above 2**31


@pytest.mark.slow
@pytest.mark.kernels("c")
@pytest.mark.usefixtures("kernel")
def test_large_binary_offsets_above_2_to_31():
    # About 2.2 GB: a zeroed 2**31 + 4 KiB buffer (untouched pages cost nothing) and one copy of its
    # longest string for pyfarmhash.
    size = 2**31 + 4096
    data = np.zeros(size, np.uint8)
    rng = np.random.default_rng(31)
    near_end = 2**31 + 7
    tail = rng.integers(0, 256, size - near_end, dtype=np.uint8)
    tail[[0, 5, 100]] = 0  # NULs among the known bytes
    data[near_end:] = tail
    data[:8] = np.frombuffer(b"head\x00!#$", np.uint8)
    data[2**31 - 40 : 2**31 + 7] = rng.integers(0, 256, 47, dtype=np.uint8)  # across the 2**31 boundary
    cuts = [0, 8, 2**31 - 40, 2**31 + 3, near_end, near_end + 1, near_end + 1, near_end + 17, near_end + 82,
            near_end + 782, size - 5, size]
    offsets = np.array(cuts, np.int64)
    slices = [bytes(data[a:b]) for a, b in zip(cuts[2:], cuts[3:])]  # all but the first two
    want_tail = pyfarmhash(slices)
    long_string = bytes(data[cuts[1] : cuts[2]])
    want_long = farmhash.fingerprint64(long_string)
    del long_string
    want = [farmhash.fingerprint64(bytes(data[:8])), want_long, *want_tail]

    assert _fingerprint.fingerprint64_buffers(offsets, data).tolist() == want
    array = pa.Array.from_buffers(pa.large_binary(), len(cuts) - 1, [None, pa.py_buffer(offsets), pa.py_buffer(data)])
    assert feature_column(array).fingerprints.tolist() == want
    assert cuts[3] > 2**31  # the slice's first offset
    assert feature_column(array.slice(3)).fingerprints.tolist() == want[3:]
    as_list = pa.LargeListArray.from_arrays(pa.array([0, 2, len(cuts) - 1], pa.int64()), array)
    column = feature_column(as_list)
    assert column.fingerprints.tolist() == want and column.row_splits.tolist() == [0, 2, len(cuts) - 1]


# ---------------------------------------------------------------- malformed arguments


@pytest.mark.parametrize("dtype", [np.int32, np.int64])
@pytest.mark.parametrize(
    "offsets",
    [[0, 3, 2, 5], [0, 5, 6], [-1, 2], [0, 2, -1], [4, 2], [0, 2**30], [0, 1, 2**31 - 1]],
    ids=["decreasing", "past_end", "negative_start", "negative_end", "start_after_end", "far_past_end", "int32_max"],
)
def test_fingerprint_buffers_refuses_bad_offsets(offsets, dtype):
    data = np.frombuffer(b"abcde", np.uint8)
    offsets = np.array(offsets, dtype)
    out = np.zeros(len(offsets) - 1, np.uint64)
    with pytest.raises(ValueError, match=r"offsets decrease or point outside the data"):
        _kernel.fingerprint_buffers(offsets, dtype().itemsize, data, out)


def test_fingerprint_buffers_refuses_bad_offsets_above_int32():
    data = np.frombuffer(b"abcde", np.uint8)
    for offsets in ([0, 2**40], [2**40, 2**40 + 1], [0, 2, -(2**40)]):
        with pytest.raises(ValueError, match=r"offsets decrease or point outside the data"):
            _kernel.fingerprint_buffers(np.array(offsets, np.int64), 8, data, np.zeros(len(offsets) - 1, np.uint64))


def test_outputs_too_small_are_refused():
    data, strings = np.frombuffer(b"abcdef", np.uint8), ["a", "b", "c"]
    with pytest.raises(ValueError, match=r"output buffer holds 16 bytes, 24 are needed"):
        _kernel.fingerprint_buffers(np.array([0, 1, 2, 3], np.int64), 8, data, np.zeros(2, np.uint64))
    with pytest.raises(ValueError, match=r"output buffer holds 16 bytes, 24 are needed"):
        _kernel.fingerprint_buffers(np.array([0, 1, 2, 3], np.int32), 4, data, np.zeros(2, np.uint64))
    with pytest.raises(ValueError, match=r"output buffer holds 16 bytes, 24 are needed"):
        _kernel.fingerprint_objects(strings, np.zeros(2, np.uint64))
    with pytest.raises(ValueError, match=r"output buffer holds 0 bytes, 8 are needed"):
        _kernel.fingerprint_objects(np.array(strings[:1], object), np.zeros(0, np.uint64))
    array = np.array(strings)
    with pytest.raises(ValueError, match=r"output buffer holds 16 bytes, 24 are needed"):
        _kernel.fingerprint_fixed(array, array.dtype.itemsize, True, np.zeros(2, np.uint64))
    with pytest.raises(ValueError, match=r"column 1 holds 16 bytes, 24 are needed"):
        _kernel.fold(0, [np.zeros(3, np.uint64), np.zeros(2, np.uint64)], 0, np.zeros(3, np.uint64))


def test_other_malformed_arguments_are_refused():
    data = np.frombuffer(b"abcdef", np.uint8)
    with pytest.raises(ValueError, match=r"offset width must be 4 or 8, not 2"):
        _kernel.fingerprint_buffers(np.array([0, 1], np.int16), 2, data, np.zeros(1, np.uint64))
    with pytest.raises(ValueError, match=r"bad itemsize"):
        _kernel.fingerprint_fixed(np.array(["ab"]), 6, True, np.zeros(1, np.uint64))
    with pytest.raises(ValueError, match=r"bad itemsize"):
        _kernel.fingerprint_fixed(np.array([b"ab"]), 0, False, np.zeros(1, np.uint64))
    with pytest.raises(ValueError, match=r"fold takes 1 to 64 columns, not 0"):
        _kernel.fold(0, [], 0, np.zeros(1, np.uint64))
    with pytest.raises(TypeError, match=r"a list, a tuple or a 1-D object array"):
        _kernel.fingerprint_objects(np.arange(3), np.zeros(3, np.uint64))
    read_only = np.zeros(1, np.uint64)
    read_only.setflags(write=False)
    with pytest.raises(ValueError, match=r"read-only"):
        _kernel.fingerprint_objects(["a"], read_only)


def test_empty_inputs():
    assert kernel_buffers(np.zeros(1, np.int64), np.zeros(0, np.uint8)) == []
    assert _kernel.fingerprint_buffers(np.zeros(0, np.int64), 8, np.zeros(0, np.uint8), np.zeros(0, np.uint64)) is None
    assert kernel_objects(()) == (0, [])
    out = np.zeros(0, np.uint64)
    assert _kernel.fold(5, [np.zeros(0, np.uint64)], 3, out) is None


# ---------------------------------------------------------------- which kernel


def test_kernel_fixture_switches_the_kernel_in_use(kernel):
    assert kernel == beam_cross.core.KERNEL
    assert _fingerprint.compiled() == (kernel == "c")
