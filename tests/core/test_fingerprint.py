"""Fingerprint64 / FingerprintCat64 against TensorFlow (golden vectors) and pyfarmhash (live), on both kernels.

On the NumPy path ``fingerprint64_objects`` is pyfarmhash itself, so it is checked against the golden
vectors only; ``fingerprint64_buffers`` (vectorized up to 64 bytes, pyfarmhash beyond) against both.
The compiled kernel computes all of them in C and is checked against both (also in test_kernel.py)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import farmhash
import numpy as np
import pytest

from beam_cross.core import _fingerprint
from beam_cross.core._fingerprint import fingerprint64_buffers, fingerprint64_objects, fold_bins

MASK = 2**64 - 1

# Every test runs on both kernels, the compiled one and the NumPy path (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("kernel")


def buffers(strings: list[bytes], offset_dtype=np.int64, lead: bytes = b""):
    """Arrow-layout buffers; ``lead`` puts unrelated bytes before the first string."""
    lengths = [len(s) for s in strings]
    offsets = np.concatenate([[0], np.cumsum(lengths, dtype=np.int64)]) + len(lead)
    data = np.frombuffer(lead + b"".join(strings), np.uint8)
    return offsets.astype(offset_dtype), data


def mismatches(strings, got, want):
    return [(len(s), s[:20], int(g), int(w)) for s, g, w in zip(strings, got, want) if int(g) != int(w)]


def test_golden_vectors_cover_every_length_class(golden):
    lengths = {v["length"] for v in golden("fingerprint64.json")}
    assert set(range(0, 301)) <= lengths
    assert max(lengths) >= 4097


def test_golden_vectors_all_at_once(golden):
    vectors = golden("fingerprint64.json")
    strings = [v["data"] for v in vectors]
    got = fingerprint64_buffers(*buffers(strings))
    assert got.dtype == np.uint64
    assert mismatches(strings, got, [v["fingerprint64"] for v in vectors]) == []


def test_golden_vectors_one_at_a_time(golden):
    # One string per call: every length class alone (no masks), at a non-zero data offset.
    bad = []
    for v in golden("fingerprint64.json"):
        got = fingerprint64_buffers(*buffers([v["data"]], np.int32, lead=b"\xff" * 3))
        if int(got[0]) != v["fingerprint64"]:
            bad.append(v["length"])
    assert bad == []


def test_golden_vectors_agree_with_pyfarmhash(golden):
    # The golden file itself is checked against an independent implementation.
    bad = [v["length"] for v in golden("fingerprint64.json") if farmhash.fingerprint64(v["data"]) != v["fingerprint64"]]
    assert bad == []


def test_golden_vectors_as_python_objects(golden):
    # bytes as given; str (where the bytes are UTF-8) as its UTF-8 encoding, NULs included.
    vectors = golden("fingerprint64.json")
    data = [v["data"] for v in vectors]
    assert mismatches(data, fingerprint64_objects(data), [v["fingerprint64"] for v in vectors]) == []
    texts = [(v["data"].decode("utf-8"), v["fingerprint64"]) for v in vectors if _is_utf8(v["data"])]
    # Every length class of farmhashna (0, 1-3, 4-7, 8-16, 17-32, 33-64, over 64), NULs, non-ASCII.
    classes = {int(np.searchsorted([1, 4, 8, 17, 33, 65], len(t.encode()), side="right")) for t, _ in texts}
    assert classes == set(range(7))
    assert any("\x00" in t for t, _ in texts) and any(not t.isascii() for t, _ in texts)
    got = fingerprint64_objects(t for t, _ in texts)
    assert [(t, int(g)) for (t, _), g in zip(texts, got)] == texts


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def test_objects_refuse_other_types_and_lone_surrogates():
    with pytest.raises(TypeError):
        fingerprint64_objects(["a", 1])
    with pytest.raises(UnicodeEncodeError):
        fingerprint64_objects(["a", "\ud800"])


def test_many_rows_over_several_chunks_in_shuffled_order(golden):
    # Long strings (pyfarmhash) and short ones (vectorized) interleaved, over several object chunks.
    vectors = golden("fingerprint64.json")
    rng = np.random.default_rng(1)
    picks = rng.integers(0, len(vectors), 3 * _fingerprint._OBJECT_CHUNK_ROWS)
    strings = [vectors[i]["data"] for i in picks]
    got = fingerprint64_buffers(*buffers(strings))
    assert mismatches(strings, got, [vectors[i]["fingerprint64"] for i in picks]) == []


@pytest.mark.parametrize("seed", range(3))
def test_random_bytes_every_length_vs_pyfarmhash(seed):
    rng = np.random.default_rng(seed)
    lengths = list(range(0, 300)) + [int(n) for n in rng.integers(300, 5000, 20)]
    strings = [rng.integers(0, 256, n, dtype=np.uint8).tobytes() for n in lengths]
    got = fingerprint64_buffers(*buffers(strings))
    assert mismatches(strings, got, [farmhash.fingerprint64(s) for s in strings]) == []


def test_utf8_text_vs_pyfarmhash():
    rng = np.random.default_rng(5)
    alphabet = list("aZ09 \x00éü日本🙂Ωж")
    texts = ["".join(rng.choice(alphabet, n)) for n in range(0, 200)]
    strings = [t.encode("utf-8") for t in texts]
    got = fingerprint64_buffers(*buffers(strings))
    assert mismatches(strings, got, [farmhash.fingerprint64(t) for t in texts]) == []


# _OBJECT_CHUNK_ROWS slices the NumPy path's long strings; the compiled kernel has no such chunks.
@pytest.mark.kernels("numpy")
def test_only_long_strings_over_several_chunks(golden, monkeypatch):
    monkeypatch.setattr(_fingerprint, "_OBJECT_CHUNK_ROWS", 7)
    vectors = [v for v in golden("fingerprint64.json") if v["length"] > 64][:50]
    strings = [v["data"] for v in vectors]
    got = fingerprint64_buffers(*buffers(strings, np.int32, lead=b"xy"))
    assert mismatches(strings, got, [v["fingerprint64"] for v in vectors]) == []


def test_no_strings():
    got = fingerprint64_buffers(np.zeros(1, np.int64), np.zeros(0, np.uint8))
    assert got.dtype == np.uint64 and got.shape == (0,)


def _cat64_model(a: int, b: int) -> int:
    """FingerprintCat64 written from the specification, one Python int at a time."""
    k_mul = 0xC6A4A7935BD1E995

    def shift_mix(v):
        return v ^ (v >> 47)

    r = a ^ k_mul
    r ^= (shift_mix((b * k_mul) & MASK) * k_mul) & MASK
    r = (r * k_mul) & MASK
    r = (shift_mix(r) * k_mul) & MASK
    return shift_mix(r)


def test_fold_of_one_column_vs_scalar_model_at_the_edges():
    rng = np.random.default_rng(3)
    b = rng.integers(0, 2**64, 500, dtype=np.uint64, endpoint=False)
    edges = np.array([0, 1, MASK, 2**63, 2**63 - 1], np.uint64)
    b = np.concatenate([b, edges])
    for seed in [0, 1, MASK, 2**63, 2**63 - 1, 0xDECAFCAFFE]:
        assert fold_bins(seed, [b]).tolist() == [_cat64_model(seed, int(y)) for y in b]


def test_fold_is_not_commutative():
    one, two = np.array([1], np.uint64), np.array([2], np.uint64)
    assert fold_bins(0, [one, two]).tolist() != fold_bins(0, [two, one]).tolist()


def test_one_long_string_among_short_ones_vs_pyfarmhash():
    rng = np.random.default_rng(9)
    strings = [rng.integers(0, 256, n, dtype=np.uint8).tobytes() for n in rng.integers(0, 200, 5000)]
    strings.insert(2500, rng.integers(0, 256, 2**20, dtype=np.uint8).tobytes())  # 16384 blocks of 64 bytes
    got = fingerprint64_buffers(*buffers(strings))
    assert mismatches(strings, got, [farmhash.fingerprint64(s) for s in strings]) == []


@pytest.mark.parametrize("rows", [0, 1, 5, 3 * 16384 + 7])
@pytest.mark.parametrize("modulus", [0, 1, 1000, 2**63 - 1])
def test_fold_bins_is_the_cat64_fold_then_modulo_over_chunks(rows, modulus):
    rng = np.random.default_rng(rows)
    columns = [rng.integers(0, 2**64, rows, dtype=np.uint64, endpoint=False) for _ in range(3)]
    got = fold_bins(0xDECAFCAFFE, columns, modulus)
    want = [0xDECAFCAFFE] * rows
    for column in columns:
        want = [_cat64_model(h, int(v)) for h, v in zip(want, column)]
    assert got.dtype == np.uint64
    assert got.tolist() == [h % modulus if modulus else h for h in want]


# ---------------------------------------------------------------- BEAM_CROSS_KERNEL, in subprocesses


def _kernel_in_subprocess(choice: str | None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != _fingerprint.KERNEL_ENV}
    if choice is not None:
        env[_fingerprint.KERNEL_ENV] = choice
    return subprocess.run([sys.executable, "-c", "import beam_cross.core as c; print(c.KERNEL)"],
                          env=env, capture_output=True, text=True, timeout=120)


# Once: each subprocess chooses its own kernel at import, whatever this process switched to.
@pytest.mark.kernels("numpy")
def test_env_var_chooses_the_kernel():
    built = importlib.util.find_spec("beam_cross.core._kernel") is not None
    default = "c" if built else "numpy"
    for choice, printed in [("numpy", "numpy"), (" NumPy ", "numpy"), (None, default), ("", default)]:
        done = _kernel_in_subprocess(choice)
        assert (done.returncode, done.stdout.strip()) == (0, printed), (choice, done.stderr[-2000:])
    done = _kernel_in_subprocess("c")
    if built:
        assert (done.returncode, done.stdout.strip()) == (0, "c"), done.stderr[-2000:]
    else:
        assert done.returncode != 0 and "ImportError: BEAM_CROSS_KERNEL=c, but the compiled kernel" in done.stderr


@pytest.mark.kernels("numpy")  # once, as above
def test_env_var_refuses_other_values():
    done = _kernel_in_subprocess("bogus")
    assert done.returncode != 0 and done.stdout == ""
    assert ("ImportError: BEAM_CROSS_KERNEL must be `c` or `numpy` (or unset). "
            "Received: BEAM_CROSS_KERNEL='bogus'") in done.stderr


@pytest.mark.parametrize("dtype", [np.int32, np.int64])
def test_offset_steps_finds_the_first_decrease_and_unit_steps(dtype):
    from beam_cross.core._fingerprint import offset_steps

    rng = np.random.default_rng(5)
    cases = [np.arange(7), np.array([0]), np.array([], np.int64), np.array([0, 1, 1, 2]), np.array([3, 4, 5])]
    for _ in range(200):
        steps = rng.integers(-1, 3, rng.integers(0, 12))
        cases.append(np.concatenate([[rng.integers(0, 5)], steps]).cumsum())
    for offsets in cases:
        offsets = offsets.astype(dtype)
        values = offsets.tolist()
        first = next((i for i in range(len(values) - 1) if values[i + 1] < values[i]), -1)
        unit = first < 0 and all(b - a == 1 for a, b in zip(values, values[1:]))
        assert offset_steps(offsets) == (first, unit), values
