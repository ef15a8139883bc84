"""Beam YAML face of ``CrossFeatures``: a typed transform, its ``error_handling``, and the provider listing.

The listing file shipped in the package declares the YAML transform type ``CrossFeatures``; include it
in a pipeline with ``providers: [{include: <path>}]``, the path printed by
``python -m beam_cross.beam.yaml_transforms --provider-path`` (or returned by :func:`provider_path`).
``python -m beam_cross.beam.yaml_transforms --schema`` prints the JSON config schema Beam derives from
:class:`YamlCrossFeatures`.

This module deliberately does not use ``from __future__ import annotations``: Beam YAML reads the
constructor's annotations as real types to build the transform's config schema, and it reads
``Optional[X]`` as a nullable ``X`` but ``X | None`` as ``Any`` (Beam 2.77), hence ``Optional`` here.
"""
# ruff: noqa: UP045

import importlib.resources
import inspect
import json
import sys
from collections.abc import Mapping
from typing import Any, NamedTuple, Optional, Union

import apache_beam as beam
from apache_beam.typehints.row_type import RowTypeConstraint

from beam_cross.beam.transforms import ENGINES, CrossFeatures
from beam_cross.core.spec import OUTPUT_MODES, Cross
from beam_cross.core.transforms import STYLES

__all__ = ["CrossConfig", "ErrorHandling", "YamlCrossFeatures", "config_schema", "feature_schema", "provider_path"]

PROVIDER_FILE = "beam_yaml_providers.yaml"
MAIN_OUTPUT = "good"  # the name Beam YAML's own transforms give their main output next to the errors


class CrossConfig(NamedTuple):
    """One cross, as written in YAML (``Cross.to_dict()`` keys).

    A feature is a field name or a transform of one, as ``Cross.to_dict()`` writes it: a mapping with
    ``transform`` (``bucketize``, ``lookup``, ``identity`` or ``hash``), ``name`` (the field) and the
    transform's options, e.g. ``{transform: bucketize, name: age, boundaries: [18, 25]}``. Beam reads
    the element type as ``Any``; :func:`config_schema` spells the two shapes out.
    """

    features: list[Union[str, dict[str, Any]]]  # noqa: UP007 (Beam YAML reads annotations as real types)
    num_bins: int
    name: Optional[str] = None
    output_mode: Optional[str] = None
    hash_key: Optional[int] = None


class ErrorHandling(NamedTuple):
    """Where bad rows go: the name of the errors output."""

    output: str


def _plain(value):
    """``value`` with every Row or NamedTuple (how a config arrives through a schema'd payload) as a dict,
    every Mapping as a dict and every list or tuple as a list, down to the leaves."""
    if isinstance(value, (tuple, beam.Row)) and hasattr(value, "_asdict"):  # CrossConfig, a schema'd NamedTuple, beam.Row
        value = value._asdict()
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value


def _to_cross(config) -> Cross:
    if isinstance(config, Cross):
        return config
    config = _plain(config)
    if not isinstance(config, Mapping):
        raise TypeError(
            "Each entry of `crosses` must be a mapping with `features` and `num_bins` (and optionally `name`, "
            f"`output_mode`, `hash_key`). Received: {config!r}"
        )
    # YAML users write `name: null` (or leave it out) for "the default"; a transform's own nulls (an
    # Identity's `default_value: null`, as `Cross.to_dict()` writes it) are passed on as they are.
    return Cross.from_dict({key: value for key, value in config.items() if value is not None})


def _error_output(error_handling) -> Optional[str]:
    if error_handling is None:
        return None
    if isinstance(error_handling, tuple) and hasattr(error_handling, "_asdict"):
        error_handling = error_handling._asdict()
    output = error_handling.get("output") if isinstance(error_handling, Mapping) else None
    if (not isinstance(output, str) or not output or output == MAIN_OUTPUT
            or set(error_handling) != {"output"}):
        raise ValueError(
            f"`error_handling` must be a mapping with one key, `output`: the name of the errors output (not "
            f"{MAIN_OUTPUT!r}). Received: error_handling={error_handling!r}"
        )
    return output


class YamlCrossFeatures(beam.PTransform):
    """Adds one hashed-cross field per cross to every row, bit for bit as Keras `HashedCrossing`.

    Each cross hashes the values of its features (strings and integers; a list value makes the
    feature multivalent) into `num_bins` bins exactly as `tf.sparse.cross_hashed` and Keras
    `HashedCrossing` do, and the row gets a new integer field (a list of integers for a multivalent
    or one_hot cross) named after the cross. A row that cannot be crossed (a null, a float, a
    missing field, a string into a bucketize) fails the pipeline, or, with `error_handling`, goes to the errors output as
    `{element, msg, stack}`: the row, the error message naming the feature, the cross and the value,
    and the error's type with its reason, feature and cross.

    Args:
      crosses: The crosses to compute. Each is a mapping with `features` (a list of at least two
        features, in order: the order changes the bins), `num_bins` (the number of bins; 0 keeps
        the whole 63-bit hash), and optionally `name` (the output field; defaults to the features'
        fields joined by `_X_`), `output_mode` (`int`, the default, or `one_hot`) and `hash_key` (the
        hash seed; defaults to TensorFlow's). A feature is a field name, crossed as it is, or a
        transform of a field, whose ids are crossed: a mapping with `transform` (`bucketize`,
        `lookup`, `identity` or `hash`), `name` (the field) and the transform's options, as
        `Cross.to_dict()` writes it, e.g. `{transform: bucketize, name: age, boundaries: [18, 25]}`
        (Keras `Discretization`), `{transform: lookup, name: country, vocabulary: [fr, us]}` (Keras
        `StringLookup`; `num_oov_indices`, `style`: `keras` or `feature_column`, `default_value`),
        `{transform: identity, name: hour, num_buckets: 24}` (`default_value`) or `{transform: hash,
        name: city, num_bins: 100}` (Keras `Hashing`).
      keep_inputs: Whether to keep the fields the crosses consume. Defaults to true; other fields
        are always kept.
      feature_types: Optional map of field name to `string` or `int`: a value of the other kind is
        rejected. For schema'd rows the kinds already come from the schema.
      engine: `numpy` (the default, vectorised) or `tensorflow` (`tf.sparse.cross_hashed` itself).
        Both give identical bins.
      batch_size: Deprecated and without effect (rows are crossed one by one); setting it warns.
      error_handling: Whether and where to output rows that cannot be crossed: `output` names the
        errors output. Without it such a row fails the pipeline.
    """

    def __init__(
        self,
        crosses: list[CrossConfig],
        keep_inputs: bool = True,
        feature_types: Optional[dict[str, str]] = None,
        engine: Optional[str] = None,
        batch_size: Optional[int] = None,
        error_handling: Optional[ErrorHandling] = None,
    ):
        super().__init__()
        if isinstance(crosses, (str, bytes, Mapping)) or not isinstance(crosses, (list, tuple)):
            raise TypeError(f"`crosses` must be a list of crosses. Received: crosses={crosses!r}")
        self._error_output = _error_output(error_handling)
        self._cross_features = CrossFeatures(
            [_to_cross(c) for c in crosses], keep_inputs=keep_inputs, engine=engine or "numpy",
            batch_size=batch_size, feature_types=feature_types,
        )

    def default_label(self) -> str:
        return self._cross_features.default_label()

    def display_data(self) -> dict:
        return self._cross_features.display_data()

    def expand(self, pcoll):
        if self._error_output is None:
            return pcoll | "Cross" >> self._cross_features
        crossed, rejected = pcoll | "Cross" >> self._cross_features.with_exception_handling()
        error_type = RowTypeConstraint.from_fields([("element", pcoll.element_type), ("msg", str), ("stack", str)])
        errors = rejected | "ErrorRows" >> beam.Map(_error_row).with_output_types(error_type)
        return {MAIN_OUTPUT: crossed, self._error_output: errors}


def _error_row(rejected):
    """Beam YAML's error record (``element``, ``msg``, ``stack``) of a rejected row: its encoding
    :meth:`~beam_cross.core.elements.Rejected.as_error_row` as a ``beam.Row``."""
    return beam.Row(**rejected.as_error_row())


def provider_path() -> str:
    """The path of the Beam YAML provider listing shipped in the package, for ``providers: - include:``."""
    return str(importlib.resources.files("beam_cross") / "data" / PROVIDER_FILE)


def _transform_schema(kind: str, options: dict, required: tuple[str, ...]) -> dict:
    return {
        "type": "object",
        "properties": {"transform": {"const": kind}, "name": {"type": "string", "minLength": 1}, **options},
        "required": ["transform", "name", *required],
        "additionalProperties": False,
    }


def feature_schema() -> dict:
    """The JSON schema of one feature of a cross: a field name, or a transform of a field as
    ``Transform.to_dict()`` writes it (``{"transform": "bucketize", "name": "age", "boundaries": [18, 25]}``)."""
    count = {"type": "integer", "minimum": 0}
    nullable_count = {"type": ["integer", "null"], "minimum": 0}
    transforms = {
        "bucketize": _transform_schema(
            "bucketize", {"boundaries": {"type": "array", "minItems": 1, "items": {"type": "number"}}}, ("boundaries",)),
        "lookup": _transform_schema("lookup", {
            "vocabulary": {"type": "array", "items": {"type": ["string", "integer"]}},
            "num_oov_indices": nullable_count,
            "style": {"enum": list(STYLES)},
            "default_value": {"type": ["integer", "null"]},
        }, ("vocabulary",)),
        "identity": _transform_schema("identity", {"num_buckets": {**count, "minimum": 1},
                                                   "default_value": nullable_count}, ("num_buckets",)),
        "hash": _transform_schema("hash", {"num_bins": {**count, "minimum": 1}}, ("num_bins",)),
    }
    return {"oneOf": [{"type": "string", "minLength": 1, "description": "A field, crossed as it is."},
                      *({**schema, "description": f"A field through `{kind}`: its ids are crossed."}
                        for kind, schema in transforms.items())]}


def config_schema() -> dict:
    """The JSON schema of the ``CrossFeatures`` YAML config, as Beam YAML derives it from the constructor,
    with the descriptions Beam reads from the docstring, the required keys and the allowed values."""
    from apache_beam.yaml import json_utils
    from apache_beam.yaml.yaml_provider import InlineProvider

    beam_schema = InlineProvider.config_schema_from_callable(YamlCrossFeatures)
    schema = json_utils.beam_schema_to_json_schema(beam_schema)
    for field in beam_schema.fields:
        if field.description:
            schema["properties"][field.name]["description"] = " ".join(field.description.split())
    schema["required"] = [name for name, parameter in inspect.signature(YamlCrossFeatures).parameters.items()
                          if parameter.default is inspect.Parameter.empty]
    items = schema["properties"]["crosses"]["items"]
    items["required"] = [name for name in CrossConfig._fields if name not in CrossConfig._field_defaults]
    items["properties"]["features"] = {
        "type": "array", "minItems": 2, "items": feature_schema(),
        "description": "The features, in order: each a field name or a transform of a field.",
    }
    # A null optional key is its default (what `Cross.to_dict()` writes for `hash_key`, and `_to_cross` reads).
    for name in CrossConfig._field_defaults:
        items["properties"][name]["type"] = [items["properties"][name]["type"], "null"]
    # The allowed values, which Python types cannot say.
    items["properties"]["output_mode"]["enum"] = [*OUTPUT_MODES, None]
    schema["properties"]["engine"]["enum"] = list(ENGINES)
    schema["properties"]["feature_types"]["additionalProperties"]["enum"] = ["string", "int"]
    return schema


def main(argv=None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    if args == ["--provider-path"]:
        print(provider_path())
        return 0
    if args == ["--schema"]:
        print(json.dumps(config_schema(), indent=2))
        return 0
    print("usage: python -m beam_cross.beam.yaml_transforms --provider-path | --schema", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
