"""The index of a string vocabulary: each value's position in it (-1 if absent) and its ``Fingerprint64``.

With the compiled kernel, one pass per value: its fingerprint, a probe of an open-addressing table of
the tokens' fingerprints, a byte comparison with the token found (the fingerprint only filters, so a
collision never gives a wrong id; a token of up to 16 bytes is compared within its table entry), and
the id. On the NumPy path, the positions from Arrow's hash table
(``pyarrow.compute.index_in``), then the same rule. The fingerprint gives the hashed OOV ids
(``tf.strings.to_hash_bucket_fast(x, k)`` is ``Fingerprint64(x) % k``).

>>> index = VocabularyIndex(["b", "a"])
>>> index.ids(pa.array([b"a", b"zz", b"b"], pa.large_binary()), (1, 0, 1, 0)).tolist()  # StringLookup's
[2, 0, 1]
"""

from __future__ import annotations

import mmap
import threading
import zlib

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from beam_cross.core import _fingerprint
from beam_cross.core.arrow_values import arrow_fingerprints


def _buffers(array: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(offsets, data) of a binary (int32 offsets) or large_binary (int64) array, sliced as the array is."""
    offset_type = np.int64 if pa.types.is_large_binary(array.type) else np.int32
    _, offsets_buffer, data_buffer = array.buffers()
    offsets = np.frombuffer(offsets_buffer, offset_type, len(array) + 1, array.offset * offset_type().itemsize)
    data = np.frombuffer(data_buffer, np.uint8) if data_buffer is not None else np.zeros(0, np.uint8)
    return offsets, data


class VocabularyIndex:
    """Ids of byte strings in ``tokens`` (a list of ``str``, hashed as UTF-8, unique), under a rule.

    A rule is ``(base, oov_base, oov_buckets, fallback)``: a token at position ``p`` gets ``p + base``;
    a value outside the vocabulary gets ``oov_base + Fingerprint64(value) % oov_buckets``, or
    ``fallback`` when ``oov_buckets`` is 0.
    """

    def __init__(self, tokens):
        self.tokens = pa.array(tokens, pa.large_string()).view(pa.large_binary())
        self.offsets, self.data = _buffers(self.tokens)
        self.table = self._table(arrow_fingerprints(self.tokens, "vocabulary")[0])

    def _table(self, fingerprints: np.ndarray):
        """(entries, mask): per slot 4 words, a token's fingerprint, its position << 32 | its length (all
        ones: empty), its first 16 bytes zero-padded (two little-endian words); linear probing from
        ``fingerprint & mask``; at most a quarter full, so that nine values in ten are in the first slot
        of their chain: half full, one in four was not, and the branch that walks on cost 40% of a lookup.
        32 bytes per slot: 16 MiB for 100,000 tokens, in memory aligned for huge pages (see
        :func:`_table_memory`). Built by the kernel when it is there (1 ms for 100,000 tokens; NumPy, 80)."""
        size = 16
        while size < 4 * len(fingerprints):
            size *= 2
        mask = size - 1
        lengths = np.diff(self.offsets).astype(np.uint64)
        if len(lengths) and int(lengths.max()) >= 2**32:
            raise ValueError("A vocabulary token must be shorter than 4 GiB.")
        entries = _table_memory(size)
        kernel = _fingerprint._C
        if kernel is not None:
            kernel.build_vocab_table(fingerprints, self.offsets, self.data, entries, mask)
            return entries, mask
        tokens = self.tokens.to_pylist()
        prefixes = np.frombuffer(b"".join(t[:16].ljust(16, b"\0") for t in tokens), "<u8").reshape(-1, 2)
        entries[:] = 0
        entries[:, 1] = np.uint64(2**64 - 1)
        taken = np.zeros(size, bool)
        waiting = np.arange(len(fingerprints))
        at = fingerprints & np.uint64(mask)
        while len(waiting):  # one token per free slot, the others one slot on
            wanted = at[waiting]
            free = ~taken[wanted]
            chosen, first = np.unique(wanted[free], return_index=True)
            winners = waiting[free][first]
            taken[chosen] = True
            entries[chosen, 0] = fingerprints[winners]
            entries[chosen, 1] = (winners.astype(np.uint64) << np.uint64(32)) | lengths[winners]
            entries[chosen, 2:] = prefixes[winners]
            placed = np.zeros(len(fingerprints), bool)
            placed[winners] = True
            waiting = waiting[~placed[waiting]]
            at[waiting] = (at[waiting] + np.uint64(1)) & np.uint64(mask)
        return entries, mask

    def ids(self, values: pa.Array, rule) -> np.ndarray:
        """The ids of a ``binary`` or ``large_binary`` array without nulls."""
        kernel = _fingerprint._C
        if kernel is not None:
            offsets, data = _buffers(values)
            ids = np.empty(len(values), np.int64)
            entries, mask = self.table
            kernel.lookup_buffers(np.ascontiguousarray(offsets), offsets.itemsize, data, entries, mask, self.offsets,
                                  self.data, tuple(rule), ids, None)
            return ids
        found = pc.index_in(values.cast(pa.large_binary()), value_set=self.tokens)
        positions = found.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64, copy=False)
        fingerprints = arrow_fingerprints(values, "values")[0]
        return apply_rule(positions, fingerprints, rule)

    def ids_of_objects(self, values: np.ndarray, rule) -> tuple[np.ndarray, np.ndarray] | None:
        """(ids, fingerprints) of a 1-D object array of exact ``str`` / ``bytes`` with the compiled kernel;
        None without it, or when a value is of another type (the caller's general path)."""
        kernel = _fingerprint._C
        if kernel is None:
            return None
        values = np.ascontiguousarray(values)
        ids = np.empty(len(values), np.int64)
        fingerprints = np.empty(len(values), np.uint64)
        entries, mask = self.table
        bad = kernel.lookup_objects(values, entries, mask, self.offsets, self.data, tuple(rule), ids, fingerprints)
        return (ids, fingerprints) if bad < 0 else None


def pack_tokens(tokens: tuple | None) -> tuple | None:
    """A vocabulary (a tuple of ``str`` or of ``int``) in the compact form it is pickled in: its bytes
    and lengths compressed with zlib's fastest level. Beam pickles a step's function with bz2, several
    times per pipeline, and unpickles it in each worker; a tuple of 100,000 tokens pickles to 2 MB, which
    bz2 took 0.17 s to compress each time; packed, it is 0.24 MB.

    >>> unpack_tokens(pack_tokens(("fr", "", "日本"))), unpack_tokens(pack_tokens((3, -1)))
    (('fr', '', '日本'), (3, -1))
    """
    if tokens is None:  # a vocabulary still to learn
        return None
    if tokens and isinstance(tokens[0], str):
        array = pa.array(tokens, pa.large_string())
        _, offsets, data = array.buffers()
        lengths = np.diff(np.frombuffer(offsets, np.int64, len(array) + 1)).astype(np.uint32)
        return ("str", len(tokens), zlib.compress(lengths.tobytes(), 1),
                zlib.compress(data.to_pybytes() if data is not None else b"", 1))
    return ("int", len(tokens), zlib.compress(np.array(tokens, np.int64).tobytes(), 1), b"")


def unpack_tokens(packed: tuple | None) -> tuple | None:
    """The vocabulary that :func:`pack_tokens` packed."""
    if packed is None:
        return None
    kind, count, first, second = packed
    if kind == "int":
        return tuple(np.frombuffer(zlib.decompress(first), np.int64, count).tolist())
    offsets = np.zeros(count + 1, np.int64)
    np.cumsum(np.frombuffer(zlib.decompress(first), np.uint32, count), out=offsets[1:])
    array = pa.LargeStringArray.from_buffers(count, pa.py_buffer(offsets), pa.py_buffer(zlib.decompress(second)))
    return tuple(array.to_pylist())


# The lookups unpickled in this process (see unpickled_state), the last few.
_UNPICKLED: dict = {}
_UNPICKLED_KEPT = 8
_UNPICKLED_LOCK = threading.Lock()


def unpickled_state(state: dict) -> dict:
    """A ``Lookup``'s pickled state (its ``vocabulary`` and ``lookup_tokens`` packed, ``lookup_tokens``
    None when equal to the vocabulary) with its tokens unpacked. A worker unpickles a step once per
    instance (a Dataflow worker: once per thread): equal lookups share their tokens and their cache
    (the index included) within the process."""
    key = tuple(sorted((k, v) for k, v in state.items() if k != "_cache"))
    with _UNPICKLED_LOCK:
        shared = _UNPICKLED.get(key)
    if shared is None:
        vocabulary = unpack_tokens(state["vocabulary"])
        lookup_tokens = vocabulary if state["lookup_tokens"] is None else unpack_tokens(state["lookup_tokens"])
        cache = {**state["_cache"], "packed": (state["vocabulary"], state["lookup_tokens"])}
        with _UNPICKLED_LOCK:
            while len(_UNPICKLED) >= _UNPICKLED_KEPT:
                del _UNPICKLED[next(iter(_UNPICKLED))]
            shared = _UNPICKLED.setdefault(key, (vocabulary, lookup_tokens, cache))
    vocabulary, lookup_tokens, cache = shared
    return {**state, "vocabulary": vocabulary, "lookup_tokens": lookup_tokens, "_cache": cache}


_HUGE_PAGE = 2 << 20


def _table_memory(slots: int) -> np.ndarray:
    """A ``(slots, 4)`` uint64 array for a table. Past a huge page (2 MiB), in anonymous memory aligned to
    one and advised for transparent huge pages where the system allows it: each lookup is one random
    read, and with 4 KiB pages one in a few also misses the TLB (a 16 MiB table: about 1 ns of 18 per
    value). Elsewhere, or on any refusal, plain NumPy memory."""
    size = slots * 32
    advise = getattr(mmap, "MADV_HUGEPAGE", None)
    if size < _HUGE_PAGE or advise is None:
        return np.empty((slots, 4), np.uint64)
    try:
        memory = mmap.mmap(-1, size + _HUGE_PAGE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        memory.madvise(advise)
    except (OSError, ValueError, AttributeError):
        return np.empty((slots, 4), np.uint64)
    raw = np.frombuffer(memory, np.uint8)
    start = -raw.ctypes.data % _HUGE_PAGE
    return raw[start:start + size].view(np.uint64).reshape(slots, 4)  # the array keeps the mapping alive


def apply_rule(positions: np.ndarray, keys: np.ndarray, rule) -> np.ndarray:
    """The ids of vocabulary ``positions`` (-1: OOV) under ``rule`` (see :class:`VocabularyIndex`);
    ``keys`` are the uint64 values an OOV id is hashed from (only read for OOV rows)."""
    base, oov_base, oov_buckets, fallback = rule
    ids = positions + base if base else positions.copy()
    rows = np.flatnonzero(positions < 0)  # the OOV values only: a uint64 modulo is slow
    if len(rows):
        if oov_buckets:
            ids[rows] = oov_base + (keys[rows] % np.uint64(oov_buckets)).astype(np.int64)
        else:
            ids[rows] = fallback
    return ids
