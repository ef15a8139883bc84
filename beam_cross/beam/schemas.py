"""Reading and extending Beam schemas for ``CrossFeatures`` (schema'd rows: ``beam.Row``, NamedTuple).

The declared type of a feature decides its kind (a ``str`` field only accepts strings) and whether
it is multivalent (a ``Sequence[...]`` field); the output schema adds one field per cross: ``int``,
``Sequence[int]`` when any of its features is a sequence, or for one_hot, and ``Any`` when a feature is
typed ``Any`` (its values may be lists or scalars).
"""

from __future__ import annotations

import typing
from collections.abc import Sequence

import numpy as np
from apache_beam.typehints.row_type import RowTypeConstraint
from apache_beam.typehints.schemas import named_fields_from_element_type

from beam_cross.core.spec import check_crosses_against


def schema_fields(element_type) -> list[tuple[str, typing.Any]] | None:
    """``[(name, type)]`` of a schema'd element type (NamedTuple class or Row type), else None."""
    if not (isinstance(element_type, RowTypeConstraint) or _is_named_tuple(element_type)):
        return None
    try:
        return list(named_fields_from_element_type(element_type))
    except (TypeError, ValueError, KeyError):
        return None


def _feature_types(element_type, fields) -> dict:
    """Field -> its declared type, for the kinds of the crossed features and the type of a cross.

    Beam reads the annotations of a NamedTuple written under ``from __future__ import annotations``
    (strings) as ``Any``; their resolved types say what the fields hold. (The fields passed through
    keep Beam's own types.)"""
    types = dict(fields)
    if _is_named_tuple(element_type):
        try:
            hints = typing.get_type_hints(element_type)
        except (NameError, TypeError):  # an annotation naming what its module does not define
            hints = {}
        types.update({name: hints[name] for name, t in fields if t is typing.Any and name in hints})
    return types


def _is_named_tuple(element_type) -> bool:
    return isinstance(element_type, type) and issubclass(element_type, tuple) and hasattr(element_type, "_fields")


def _unwrap(field_type):
    """(base type, is_sequence) after removing Optional and one Sequence/List level."""
    args = typing.get_args(field_type)
    if typing.get_origin(field_type) is typing.Union and type(None) in args:
        field_type = next(a for a in args if a is not type(None))
    origin = typing.get_origin(field_type)
    if origin in (list, Sequence, typing.Sequence, tuple) and typing.get_args(field_type):
        return typing.get_args(field_type)[0], True
    return field_type, False


def _kind(base) -> str | None:
    if base in (str, bytes):
        return "string"
    if isinstance(base, type) and issubclass(base, (int, np.integer)) and base is not bool:
        return "int"
    return None


def _column_kind(field_type) -> str | None:
    base, _ = _unwrap(field_type)
    if isinstance(base, type) and issubclass(base, (float, np.floating)):
        return "float"
    return _kind(base)


def declared_kinds(element_type, crosses) -> dict[str, str]:
    """Feature -> ``"string"`` / ``"int"`` for the raw crossed features that the schema types.

    The crosses are checked against the schema by the core (:func:`~beam_cross.core.spec.check_crosses_against`):
    a ``ValueError`` when a cross names a field the schema does not have, is named like a field, crosses
    a float field as it is, or transforms a field of a kind its transform does not take.
    """
    fields = schema_fields(element_type)
    if fields is None:
        return {}
    types = _feature_types(element_type, fields)
    check_crosses_against(crosses, {name: _column_kind(t) for name, t in types.items()})
    kinds = {}
    for cross in crosses:
        for feature, transform in zip(cross.features, cross.transforms):
            if transform is not None:
                continue  # a transform takes the kinds it takes, and refuses the others itself
            kind = _kind(_unwrap(types[feature])[0])
            if kind is not None:
                kinds[feature] = kind
    return kinds


def _id_type(field_type):
    """The type of a transformed feature's ids, from the raw field's type: int or a sequence of them."""
    base, is_sequence = _unwrap(field_type)
    if base is typing.Any:
        return typing.Any
    return typing.Sequence[int] if is_sequence else int


def _cross_type(cross, feature_types):
    """The type of a cross field: ``Sequence[int]`` for one_hot or when a feature is a sequence, ``int``
    when every feature is a scalar the schema types, and ``Any`` when a feature's schema type says
    neither (``Any``): its values may be lists or scalars, so the cross may be a list or an int."""
    if cross.output_mode == "one_hot":
        return typing.Sequence[int]
    unwrapped = [_unwrap(t) for t in feature_types]
    if any(is_sequence for _, is_sequence in unwrapped):
        return typing.Sequence[int]
    if all(_kind(base) is not None for base, _ in unwrapped):
        return int
    return typing.Any


def output_row_type(element_type, crosses, keep_inputs: bool):
    """The Row type of the outputs for a schema'd input type, else None."""
    fields = schema_fields(element_type)
    if fields is None:
        return None
    types = _feature_types(element_type, fields)
    consumed = {f for c in crosses for f in c.features}
    out = [(name, t) for name, t in fields if keep_inputs or name not in consumed]
    check_crosses_against(crosses, {name: _column_kind(t) for name, t in types.items()})  # the core's one check
    for cross in crosses:
        feature_types = [types[f] if t is None else _id_type(types[f]) for f, t in zip(cross.features, cross.transforms)]
        out.append((cross.name, _cross_type(cross, feature_types)))
    return RowTypeConstraint.from_fields(out)
