"""tf.Example records to Arrow columns with NumPy: the protobuf wire format read for many records at once.

Only the layout that TensorFlow and protobuf writers produce is read here: ``Example.features`` once,
map entries with their key first, one kind per ``Feature``, packed ``int64_list`` / ``float_list``.
A record laid out any other way, or holding something the schema refuses (an unknown key, a kind
or a number of values that does not fit its column), is returned as *irregular*: the caller decodes
those with protobuf (:func:`beam_cross.job.formats.examples.decode_examples`), which also says why a record
is rejected. The two paths give the same rows (tested record by record).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

_PAD = 16
_ATTR_TAGS = {"bytes": 0x0A, "float": 0x12, "int": 0x1A}  # Feature's oneof fields, wire type 2


def _varints(buf: np.ndarray, pos: np.ndarray):
    """(values, positions after them, malformed) of the varints that start at ``pos``."""
    first = buf[pos]
    values = first.astype(np.uint64)
    stops = pos + 1
    longer = np.flatnonzero(first >= 0x80)
    malformed = np.zeros(len(pos), bool)
    if longer.size:
        values[longer] &= np.uint64(0x7F)
        shift = 7
        while longer.size:
            if shift >= 70:
                malformed[longer] = True
                break
            byte = buf[stops[longer]]
            values[longer] |= (byte & 0x7F).astype(np.uint64) << np.uint64(shift)
            stops[longer] += 1
            longer = longer[byte >= 0x80]
            shift += 7
    return values, stops, malformed


def _span(buf, pos, end):
    """(start, stop, ok) of the length-delimited fields whose tag is at ``pos`` and that fit before ``end``."""
    length, start, malformed = _varints(buf, np.minimum(pos + 1, len(buf) - _PAD))
    stop = start + length.astype(np.int64)
    return start, stop, (pos < end) & ~malformed & (length < (1 << 40)) & (stop <= end)


def _field(buf, pos, end, tag):
    """:func:`_span` of fields with ``tag`` only."""
    start, stop, ok = _span(buf, pos, end)
    return start, stop, ok & (buf[np.minimum(pos, len(buf) - 1)] == tag)


def _gather(buf, starts, stops) -> np.ndarray:
    """The bytes of spans ``[starts[i], stops[i])`` one after the other."""
    lengths = stops - starts
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, np.uint8)
    ends = np.cumsum(lengths)
    index = np.arange(total) - np.repeat(ends - lengths - starts, lengths)
    return buf[index]


def _packed_varints(data: np.ndarray):
    """(int64 values, malformed) of back-to-back varints."""
    last = data < 0x80
    if len(data) and not last[-1]:
        return None
    group_start = np.flatnonzero(np.concatenate(([True], last[:-1])))
    group = np.cumsum(np.concatenate(([0], last[:-1]))).astype(np.int64)
    position = np.arange(len(data)) - group_start[group]
    if len(position) and position.max() > 9:
        return None
    parts = (data & 0x7F).astype(np.uint64) << (position.astype(np.uint64) * np.uint64(7))
    return np.add.reduceat(parts, group_start).view(np.int64) if len(data) else np.zeros(0, np.int64)


def _counts(owner: np.ndarray, size: int) -> np.ndarray:
    return np.bincount(owner, minlength=size).astype(np.int64)


def decode(records: list[bytes], specs) -> tuple[list[pa.Array], np.ndarray]:
    """Arrow arrays (one per spec ``(name, kind, is_list, arrow type)``) of the regular records.

    Returns ``(arrays, irregular)``: ``arrays`` hold one row per record where ``irregular`` is False.
    """
    count = len(records)
    lengths = np.fromiter(map(len, records), np.int64, count)
    ends = np.cumsum(lengths)
    starts = ends - lengths
    buf = np.frombuffer(b"".join(records) + b"\0" * _PAD, np.uint8)
    irregular = np.zeros(count, bool)
    # Example: field 1 (features) once, spanning the record; an empty record is an empty Example.
    fs, fe, ok = _field(buf, starts, ends, 0x0A)
    empty = lengths == 0
    irregular |= ~(empty | (ok & (fe == ends)))
    fs, fe = np.where(empty, starts, fs), np.where(empty, starts, fe)
    # Features: repeated map entries (field 1).
    owners, entry_starts, entry_stops = [], [], []
    cursor = fs.copy()
    active = np.flatnonzero((cursor < fe) & ~irregular)
    while active.size:
        s, e, ok = _field(buf, cursor[active], fe[active], 0x0A)
        irregular[active[~ok]] = True
        good = active[ok]
        owners.append(good), entry_starts.append(s[ok]), entry_stops.append(e[ok])
        cursor[good] = e[ok]
        active = good[cursor[good] < fe[good]]
    owner = np.concatenate(owners) if owners else np.zeros(0, np.int64)
    es = np.concatenate(entry_starts) if owners else np.zeros(0, np.int64)
    ee = np.concatenate(entry_stops) if owners else np.zeros(0, np.int64)
    if len(owners) > 1:  # entries come round by round (every record's first, then second...): put each record's together
        order = np.argsort(owner, kind="stable")
        owner, es, ee = owner[order], es[order], ee[order]
    # Entry: key (field 1) then value (field 2, a Feature) up to the entry's end.
    ks, ke, ok = _field(buf, es, ee, 0x0A)
    has_value = ke < ee
    vs, ve, value_ok = _field(buf, ke, ee, 0x12)
    ok &= ~has_value | (value_ok & (ve == ee))
    vs, ve = np.where(has_value, vs, ee), np.where(has_value, ve, ee)
    key_length = ke - ks
    ok &= key_length <= 64
    irregular[owner[~ok]] = True
    # Keys to columns.
    column = np.full(len(owner), -1, np.int64)
    if len(owner):
        width = int(key_length[ok].max()) if ok.any() else 0
        window = buf[np.minimum(ks[:, None] + np.arange(width + 1), len(buf) - 1)].copy()
        window[np.arange(width + 1) >= key_length[:, None]] = 0
        window[:, width] = np.minimum(key_length, 255)
        unique, inverse = np.unique(np.ascontiguousarray(window).view(f"V{width + 1}").ravel(), return_inverse=True)
        index = {spec[0]: i for i, spec in enumerate(specs)}
        lookup = np.array([index.get(bytes(u)[: bytes(u)[-1]].decode("utf-8", "replace"), -1) for u in unique], np.int64)
        column = lookup[inverse.ravel()]
    irregular[owner[column < 0]] = True
    pair = owner * (len(specs) + 1) + column + 1
    repeated = np.flatnonzero(np.bincount(pair) > 1)
    irregular[repeated // (len(specs) + 1)] = True
    # Feature: one kind (or none), spanning the value.
    tag = buf[np.minimum(vs, len(buf) - 1)]
    s, e, ok = _span(buf, vs, ve)
    hit = ok & (e == ve) & np.isin(tag, list(_ATTR_TAGS.values()))
    kind_ok = (vs == ve) | hit
    list_start, list_stop = np.where(hit, s, vs), np.where(hit, e, vs)
    irregular[owner[~kind_ok]] = True
    arrays = []
    for number, (_, kind, is_list, _) in enumerate(specs):
        mine = np.flatnonzero(column == number)
        wrong = (list_start[mine] < list_stop[mine]) & (tag[mine] != _ATTR_TAGS[kind])  # an empty list fits any column
        irregular[owner[mine[wrong]]] = True
        mine = mine[~wrong]
        empty_other = tag[mine] != _ATTR_TAGS[kind]
        list_start[mine[empty_other]] = list_stop[mine[empty_other]]
        values, per_entry = _list_values(buf, list_start[mine], list_stop[mine], kind, irregular, owner[mine])
        if values is None:
            irregular[owner[mine]] = True
            continue
        if not is_list:
            irregular[owner[mine[per_entry > 1]]] = True
        arrays.append((number, mine, values, per_entry))
    keep = ~irregular
    rows = int(keep.sum())
    regular_rows = np.cumsum(keep) - 1
    out = []
    for number, mine, values, per_entry in arrays:
        _, kind, is_list, arrow_type = specs[number]
        value_owner = np.repeat(owner[mine], per_entry)
        value_keep = keep[value_owner]
        values = values.filter(pa.array(value_keep)) if len(values) else values
        entry_keep = keep[owner[mine]]
        row = regular_rows[owner[mine][entry_keep]]
        sizes = np.zeros(rows, np.int64)
        sizes[row] = per_entry[entry_keep]
        present = np.zeros(rows, bool)
        present[row] = True
        if is_list:
            offsets = np.concatenate(([0], np.cumsum(sizes))).astype(np.int32)
            array = pa.ListArray.from_arrays(pa.array(offsets), values, mask=pa.array(~present))
        else:
            positions = np.full(rows, -1, np.int64)
            has_one = sizes == 1
            positions[has_one] = np.arange(int(has_one.sum()))
            array = values.take(pa.array(positions, mask=~has_one))
        try:
            out.append(array.cast(arrow_type) if array.type != arrow_type else array)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):  # e.g. bytes that are not UTF-8 text
            return [], np.ones(count, bool)
    done = {number for number, *_ in arrays}
    if len(done) != len(specs):  # a column whose values could not be read: every record goes the slow way
        return [], np.ones(count, bool)
    return out, irregular


def _list_values(buf, start, stop, kind, irregular, owners):
    """(Arrow values, values per entry) of the lists at ``[start, stop)``; (None, None) if unreadable."""
    if kind == "bytes":
        value_starts, value_stops, value_owner = [], [], []
        cursor = start.copy()
        active = np.flatnonzero(cursor < stop)
        while active.size:
            s, e, ok = _field(buf, cursor[active], stop[active], 0x0A)
            irregular[owners[active[~ok]]] = True
            good = active[ok]
            value_starts.append(s[ok]), value_stops.append(e[ok]), value_owner.append(good)
            cursor[good] = e[ok]
            active = good[cursor[good] < stop[good]]
        if not value_owner:
            return pa.array([], pa.binary()), np.zeros(len(start), np.int64)
        entry = np.concatenate(value_owner)
        vs, ve = np.concatenate(value_starts), np.concatenate(value_stops)
        if len(value_owner) > 1:  # values of several rounds: put each list's values together
            order = np.argsort(entry, kind="stable")
            entry, vs, ve = entry[order], vs[order], ve[order]
        lengths = ve - vs
        if lengths.sum() >= 2**31:
            return None, None
        offsets = np.concatenate(([0], np.cumsum(lengths))).astype(np.int32)
        data = _gather(buf, vs, ve)
        values = pa.Array.from_buffers(pa.binary(), len(vs), [None, pa.py_buffer(offsets), pa.py_buffer(data)])
        return values, _counts(entry, len(start))
    # int64_list / float_list: one packed field (1) holding the numbers, or nothing.
    empty = start == stop
    s, e, ok = _field(buf, start, stop, 0x0A)
    ok = empty | (ok & (e == stop))
    irregular[owners[~ok]] = True
    s, e = np.where(ok & ~empty, s, start), np.where(ok & ~empty, e, start)
    if kind == "float":
        bad = (e - s) % 4 != 0
        irregular[owners[bad]] = True
        e = np.where(bad, s, e)
        data = _gather(buf, s, e)
        return pa.array(data.view("<f4")), (e - s) // 4
    data = _gather(buf, s, e)
    if not len(data):
        return pa.array([], pa.int64()), np.zeros(len(start), np.int64)
    last = data < 0x80
    sizes = e - s
    ends_at = np.cumsum(sizes)
    if not last[ends_at[sizes > 0] - 1].all():  # a varint running into the next list: not TensorFlow's layout
        return None, None
    totals = np.concatenate(([0], np.cumsum(last)))
    numbers = _packed_varints(data)
    if numbers is None:
        return None, None
    return pa.array(numbers), totals[ends_at] - totals[ends_at - sizes]
