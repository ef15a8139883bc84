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
from typing import NamedTuple, Optional

import apache_beam as beam
from apache_beam.typehints.row_type import RowTypeConstraint

from beam_cross.beam.transforms import ENGINES, CrossFeatures
from beam_cross.core.spec import OUTPUT_MODES, Cross

__all__ = ["CrossConfig", "ErrorHandling", "YamlCrossFeatures", "config_schema", "provider_path"]

PROVIDER_FILE = "beam_yaml_providers.yaml"
MAIN_OUTPUT = "good"  # the name Beam YAML's own transforms give their main output next to the errors


class CrossConfig(NamedTuple):
    """One cross, as written in YAML (``Cross.to_dict()`` keys)."""

    features: list[str]
    num_bins: int
    name: Optional[str] = None
    output_mode: Optional[str] = None
    hash_key: Optional[int] = None


class ErrorHandling(NamedTuple):
    """Where bad rows go: the name of the errors output."""

    output: str


def _to_cross(config) -> Cross:
    if isinstance(config, Cross):
        return config
    if isinstance(config, tuple) and hasattr(config, "_asdict"):  # CrossConfig or beam.Row
        config = config._asdict()
    if not isinstance(config, Mapping):
        raise TypeError(
            "Each entry of `crosses` must be a mapping with `features` and `num_bins` (and optionally `name`, "
            f"`output_mode`, `hash_key`). Received: {config!r}"
        )
    # YAML users write `name: null` (or leave it out) for "the default".
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
    missing field) fails the pipeline, or, with `error_handling`, goes to the errors output as
    `{element, msg, stack}`: the row, the error message naming the feature, the cross and the value,
    and the error's type with its reason, feature and cross.

    Args:
      crosses: The crosses to compute. Each is a mapping with `features` (a list of at least two
        field names, in order: the order changes the bins), `num_bins` (the number of bins; 0 keeps
        the whole 63-bit hash), and optionally `name` (the output field; defaults to the features
        joined by `_X_`), `output_mode` (`int`, the default, or `one_hot`) and `hash_key` (the hash
        seed; defaults to TensorFlow's).
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
    # The allowed values, which Python types cannot say.
    items["properties"]["output_mode"]["enum"] = list(OUTPUT_MODES)
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
