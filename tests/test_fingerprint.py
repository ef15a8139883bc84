"""Fingerprint64 / FingerprintCat64 against TensorFlow (golden vectors) and pyfarmhash (live)."""

from __future__ import annotations

import farmhash
import numpy as np
import pytest

from beam_cross._fingerprint import fingerprint64_buffers, fingerprint_cat64

MASK = 2**64 - 1


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


def test_many_rows_over_several_chunks_in_shuffled_order(golden):
    vectors = golden("fingerprint64.json")
    rng = np.random.default_rng(1)
    picks = rng.integers(0, len(vectors), 20_000)
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


def test_fingerprint_cat64_vs_scalar_model():
    rng = np.random.default_rng(3)
    a = rng.integers(0, 2**64, 500, dtype=np.uint64, endpoint=False)
    b = rng.integers(0, 2**64, 500, dtype=np.uint64, endpoint=False)
    edges = np.array([0, 1, MASK, 2**63, 2**63 - 1], np.uint64)
    a, b = np.concatenate([a, edges, edges[::-1]]), np.concatenate([b, edges, edges])
    got = fingerprint_cat64(a, b)
    assert [int(g) for g in got] == [_cat64_model(int(x), int(y)) for x, y in zip(a, b)]


def test_fingerprint_cat64_scalar_seed_broadcasts_and_is_not_commutative():
    b = np.array([1, 2, 3], np.uint64)
    got = fingerprint_cat64(0xDECAFCAFFE, b)
    assert [int(g) for g in got] == [_cat64_model(0xDECAFCAFFE, int(x)) for x in b]
    assert int(fingerprint_cat64(np.uint64(1), np.uint64(2))) != int(fingerprint_cat64(np.uint64(2), np.uint64(1)))


def test_one_long_string_among_short_ones_vs_pyfarmhash():
    rng = np.random.default_rng(9)
    strings = [rng.integers(0, 256, n, dtype=np.uint8).tobytes() for n in rng.integers(0, 200, 5000)]
    strings.insert(2500, rng.integers(0, 256, 2**20, dtype=np.uint8).tobytes())  # 16384 blocks of 64 bytes
    got = fingerprint64_buffers(*buffers(strings))
    assert mismatches(strings, got, [farmhash.fingerprint64(s) for s in strings]) == []
