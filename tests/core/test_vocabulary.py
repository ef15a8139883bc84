"""The vocabulary index and the bucketize kernel against plain Python, on both kernels: tokens of every
length class (0 to 80 bytes, NULs, UTF-8), values that differ from a token in one byte at each position,
prefixes and extensions of tokens, Arrow ``string`` / ``large_string`` / sliced arrays and object arrays."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from beam_cross import Bucketize, Lookup
from beam_cross.core.vocabulary import VocabularyIndex

pytestmark = pytest.mark.usefixtures("kernel")

RULES = [(1, 0, 1, 0), (3, 0, 3, -1), (0, 0, 0, -1), (0, 100, 7, 0), (0, 0, 0, 42)]


def _tokens():
    rng = np.random.default_rng(5)
    tokens = ["", "a", "\x00", "a\x00b", "é", "日本語", "x" * 16, "y" * 17, "z" * 64, "w" * 80]
    for length in range(1, 41):
        tokens.append("".join(rng.choice(list("abcXYZ09\x00é"), length)))
    return list(dict.fromkeys(tokens))


def _probes(tokens):
    values = list(tokens)
    for token in tokens:
        raw = token.encode()
        values.append(raw + b"!")
        values.append(raw[:-1])
        for i in range(len(raw)):
            values.append(raw[:i] + bytes([raw[i] ^ 1]) + raw[i + 1 :])
    return [v if isinstance(v, bytes) else v.encode() for v in values]


def _expected(tokens, values, rule):
    import farmhash

    base, oov_base, buckets, fallback = rule
    position = {t.encode(): i for i, t in enumerate(tokens)}
    out = []
    for v in values:
        if v in position:
            out.append(position[v] + base)
        else:
            out.append(oov_base + farmhash.fingerprint64(v) % buckets if buckets else fallback)
    return out


@pytest.mark.parametrize("rule", RULES)
def test_ids_equal_a_python_dictionary(rule):
    tokens = _tokens()
    index = VocabularyIndex(tokens)
    values = _probes(tokens)
    expected = _expected(tokens, values, rule)
    assert index.ids(pa.array(values, pa.large_binary()), rule).tolist() == expected
    padded = pa.array([b"pad"] + values + [b"pad"], pa.large_binary()).slice(1, len(values))  # an offset array
    assert index.ids(padded, rule).tolist() == expected
    found = index.ids_of_objects(np.array(values, dtype=object), rule)
    if found is not None:  # the compiled kernel: bytes objects, and str objects hashed as their UTF-8
        assert found[0].tolist() == expected
        texts = [(i, v.decode()) for i, v in enumerate(values) if v.isascii() or _utf8(v)]
        as_str = index.ids_of_objects(np.array([t for _, t in texts], dtype=object), rule)
        assert as_str[0].tolist() == [expected[i] for i, _ in texts]
    else:
        assert index.ids_of_objects(np.array(values, dtype=object), rule) is None


def _utf8(raw: bytes) -> bool:
    try:
        raw.decode()
    except UnicodeDecodeError:
        return False
    return True


def test_a_lookup_reads_every_arrow_string_layout():
    tokens = _tokens()
    lookup = Lookup("w", tokens, num_oov_indices=3, style="feature_column")
    values = [v.decode("utf-8", "replace") for v in _probes(tokens) if v]
    want = lookup(values).tolist()  # Python values: the general path
    for kind in (pa.string(), pa.large_string(), pa.string_view()):
        assert lookup(pa.array(values, kind)).tolist() == want
    assert lookup(np.array(values, dtype=object)).tolist() == want
    assert lookup(pa.chunked_array([pa.array(values[:7]), pa.array(values[7:])])).tolist() == want


def test_bucketize_kernel_equals_numpy_searchsorted():
    rng = np.random.default_rng(3)
    for count in (1, 5, 31, 32, 33, 200):  # both sides of the kernel's counting / binary-search switch
        boundaries = np.unique(rng.normal(0, 100, count).astype(np.float32)).tolist()
        transform = Bucketize("x", boundaries)
        values = np.concatenate([rng.normal(0, 120, 3000), [np.nan, np.inf, -np.inf, -0.0, 1e-40, -1e-45], boundaries])
        b32 = np.asarray(boundaries, np.float32)
        flat = values.astype(np.float32)
        flat[np.abs(flat) < np.finfo(np.float32).tiny] = 0
        want = np.searchsorted(b32, flat, side="right")
        np.testing.assert_array_equal(transform(values), want)
        np.testing.assert_array_equal(transform(values.astype(np.float32)), want)
        np.testing.assert_array_equal(transform(pa.array(values)), want)


def test_a_table_past_a_huge_page_gives_the_same_ids():
    # 20,000 tokens: a 4 MiB table, in memory aligned for huge pages; built by the kernel or by NumPy.
    tokens = [f"t{i:05d}" for i in range(20_000)]
    index = VocabularyIndex(tokens)
    entries, mask = index.table
    assert entries.shape == (mask + 1, 4) and entries.nbytes >= 2 << 20
    values = [t.encode() for t in tokens[::7]] + [b"t", b"t99999", b"", b"t00000\x00"]
    rule = (3, 0, 3, -1)
    ids = index.ids(pa.array(values, pa.binary()), rule)
    assert ids.tolist() == _expected(tokens, values, rule)


def test_a_vocabulary_token_that_has_no_utf8_bytes_is_refused_when_the_lookup_is_made():
    with pytest.raises(ValueError, match=r"lone surrogate .*Received: token '\\ud800'"):
        Lookup("country", ["fr", "\ud800"])


@pytest.mark.parametrize("lookup", [
    Lookup("t", ["a\x00", "b", "", "日本", "x" * 40], num_oov_indices=2),
    Lookup("t", [3, -2, 2**63 - 1, -(2**63)]),
    Lookup("t", ["a", "b"], style="feature_column", default_value=7),
    Lookup("t", ["a", "b"], style="feature_column", num_oov_indices=3),
], ids=["keras-strings", "keras-ints", "feature-column-default", "feature-column-buckets"])
def test_a_lookup_pickles_to_its_equal_with_the_same_ids(lookup):
    import pickle

    copy = pickle.loads(pickle.dumps(lookup))
    values = ["a", "zz", "日本", "b", "a\x00"] if isinstance(lookup.vocabulary[0], str) else [3, 5, -2, 0]
    if lookup.style == "keras":
        values.append("" if isinstance(values[0], str) else -(2**63))  # feature columns drop '' before a lookup
    assert copy == lookup and hash(copy) == hash(lookup)
    assert (copy.vocabulary, copy.lookup_tokens) == (lookup.vocabulary, lookup.lookup_tokens)
    assert copy(values).tolist() == Lookup(**{k: v for k, v in lookup.to_dict().items() if k != "transform"})(values).tolist()


def test_a_large_vocabulary_pickles_packed():
    # Beam bz2-compresses a step's pickle several times per pipeline: the packed vocabulary is what it compresses.
    import pickle

    tokens = [f"token_{i:06d}" for i in range(100_000)]
    lookup = Lookup("t", tokens)
    assert len(pickle.dumps(lookup)) * 4 < len(pickle.dumps(tuple(tokens)))
    assert pickle.loads(pickle.dumps(lookup)).vocabulary == tuple(tokens)


def test_equal_lookups_unpickled_in_one_process_share_their_index_and_others_do_not():
    import pickle

    tokens = ["fr", "us", "de"]
    a, b = (pickle.loads(pickle.dumps(Lookup("country", tokens))) for _ in range(2))
    other = pickle.loads(pickle.dumps(Lookup("land", tokens)))
    assert a(["us"]).tolist() == b(["us"]).tolist() == other(["us"]).tolist() == [2]
    assert a._strings() is b._strings() and other._strings() is not a._strings()
    assert hash(other) == hash(Lookup("land", tokens)) and hash(a) == hash(Lookup("country", tokens))


def test_a_lookup_still_to_learn_pickles_to_its_equal():
    import pickle

    lookup = Lookup("t", max_tokens=10, min_count=2)
    copy = pickle.loads(pickle.dumps(lookup))
    assert copy == lookup and copy.vocabulary is None and copy.to_dict() == lookup.to_dict()
