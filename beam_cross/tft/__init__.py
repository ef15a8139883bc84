"""tf.Transform front door: ``hashed_cross`` for a ``preprocessing_fn``, a ready ``preprocessing_fn``
for a list of :class:`beam_cross.Cross`, and a collision-statistics analyzer.

Import it explicitly (``import beam_cross.tft``): it loads TensorFlow and tensorflow_transform, and
tensorflow_transform sets ``TF_USE_LEGACY_KERAS=1`` (its serving layer is a tf_keras model).
``import beam_cross`` never loads this module.

Ids are bit for bit those of :func:`beam_cross.hashed_cross` and Keras ``HashedCrossing`` on the same
values, in the order the inputs are given (unlike ``tf.sparse.cross_hashed``, which puts sparse inputs
before dense ones).

Missing values, as tf.Transform delivers them:

- a ``VarLenFeature`` (a ``SparseTensor``; in TFX, any feature not present in every example) with no
  value in a row gives that row no cross: an empty output row, as the core on an empty list. The row
  is kept, never dropped;
- ``defaults={"feature": value}`` in :func:`make_preprocessing_fn` fills such a row with ``value``
  and makes the feature single-valued (dense) instead; a row holding more than one value then fails
  loudly at run time;
- a ``FixedLenFeature`` has a value in every row: tf.Example parsing fills its ``default_value`` or
  fails on a missing value.
"""

from __future__ import annotations

import json
import os
import re

import apache_beam as beam
import numpy as np

from beam_cross.core.beam_notices import drop_beam_notices
from beam_cross.core.cross import check_hash_key, check_num_bins
from beam_cross.core.spec import Cross, check_crosses
from beam_cross.core.stats import (
    DEFAULT_TARGET_COLLISION_SHARE,
    CrossStats,
    CrossStatsAccumulator,
    check_target,
)
from beam_cross.tf.cross_ops import COMPOSITE, as_int64_or_string, as_ragged, crossed_ids
from beam_cross.tf.startup import start_up_lines_dropped
from beam_cross.tf.transform_ops import transform_ids
from beam_cross.tft.learned import learned_ids

with start_up_lines_dropped():
    import tensorflow as tf
    import tensorflow_transform as tft
    import tensorflow_transform.beam as tft_beam
    from tensorflow_transform import schema_inference


drop_beam_notices()  # what Beam prints that a user cannot act on (beam_cross.core.beam_notices)

__all__ = ["collision_stats_analyzer", "hashed_cross", "make_preprocessing_fn", "read_collision_stats", "transform_ids"]

_INT64_MAX = 2**63 - 1



def _check_input(index, value):
    if not isinstance(value, (tf.Tensor, *COMPOSITE)):
        raise TypeError(
            f"`inputs[{index}]` must be a tf.Tensor, tf.SparseTensor or tf.RaggedTensor. "
            f"Received: inputs[{index}] of type {type(value).__name__}"
        )
    if not (value.dtype == tf.string or value.dtype.is_integer):
        raise TypeError(
            f"`inputs[{index}]` must have a string or integer dtype (cast or bucketize it first). "
            f"Received: inputs[{index}] with dtype={value.dtype.name}"
        )
    rank = value.shape.rank
    if isinstance(value, tf.Tensor):
        if rank not in (1, 2) or (rank == 2 and value.shape[1] not in (1, None)):
            raise ValueError(
                f"`inputs[{index}]` must be a dense tensor of shape (batch,) or (batch, 1), or a "
                f"SparseTensor / RaggedTensor of rank 2 for several values per row. "
                f"Received: inputs[{index}] with shape={value.shape}"
            )
    elif rank != 2:
        raise ValueError(
            f"`inputs[{index}]` must be a SparseTensor / RaggedTensor of rank 2 (batch, values). "
            f"Received: inputs[{index}] with shape={value.shape}"
        )


def _record_domain(ids: tf.Tensor, num_bins: int) -> None:
    """Records ``[0, num_bins - 1]`` as the domain of ``ids`` in the transformed schema."""
    if tf.executing_eagerly():
        return  # no graph, no schema: called outside a preprocessing_fn
    top = num_bins - 1 if num_bins > 0 else _INT64_MAX - 1
    schema_inference.set_tensor_schema_override(ids, tf.constant(0, tf.int64), tf.constant(top, tf.int64))


def hashed_cross(inputs, num_bins, *, hash_key=None, name=None):
    """Crosses features inside a ``preprocessing_fn``, bit for bit as Keras ``HashedCrossing``.

    Args:
        inputs: a list or tuple of two or more features, each a ``tf.Tensor`` of shape ``(batch,)``
            or ``(batch, 1)``, a rank-2 ``tf.SparseTensor`` (a ``VarLenFeature``) or a rank-2
            ``tf.RaggedTensor``; string or integer dtype, mixed freely. Order matters and is kept.
        num_bins: the number of bins, ``>= 0`` (``0``: the whole hash modulo ``2**63 - 1``).
        hash_key: the int64 seed; ``None`` (and ``0``) mean TF's default ``0xDECAFCAFFE``.
        name: a name scope for the ops.

    Returns:
        int64 ids. All inputs dense: a dense tensor of the first input's shape. Otherwise, per row,
        the cartesian product of the rows' values (last input fastest; a row where any input has no
        value gives no id): a ``tf.RaggedTensor`` if any input is ragged, else a ``tf.SparseTensor``
        of shape ``(batch, max ids per row)``. The domain ``[0, num_bins - 1]`` is recorded in the
        transformed schema, as ``tft.apply_buckets`` does.

    >>> ids = hashed_cross([tf.constant(["A", "B", "A", "B", "A"]),
    ...                     tf.constant([101, 101, 101, 102, 102])], num_bins=5)
    >>> ids.numpy().tolist()
    [1, 4, 1, 1, 3]
    >>> tags = tf.ragged.constant([["a", "b"], []])
    >>> hashed_cross([tags, tf.constant([1, 2])], num_bins=10).to_list()
    [[5, 3], []]
    """
    if not isinstance(inputs, (list, tuple)):
        raise TypeError(f"`inputs` must be a list or tuple of tensors. Received: inputs of type {type(inputs).__name__}")
    if len(inputs) < 2:
        raise ValueError(f"A cross needs at least two inputs. Received: {len(inputs)} input(s)")
    num_bins = check_num_bins(num_bins)
    hash_key = check_hash_key(hash_key)
    for index, value in enumerate(inputs):
        _check_input(index, value)
    with tf.name_scope(name or "hashed_cross"):
        ids = crossed_ids([as_int64_or_string(v) for v in inputs], num_bins, hash_key)
        _record_domain(ids.flat_values if isinstance(ids, tf.RaggedTensor) else
                       ids.values if isinstance(ids, tf.SparseTensor) else ids, num_bins)
        return ids


def _single_valued(value, default, feature):
    """A feature with at most one value per row, as a dense ``(batch,)`` tensor; empty rows get ``default``."""
    if isinstance(value, tf.Tensor):
        return value
    ragged = as_ragged(value)
    lengths = ragged.row_lengths()
    too_many = tf.debugging.assert_less_equal(
        lengths, tf.constant(1, lengths.dtype),
        message=f"Feature `{feature}` has a default, so it must hold at most one value per row",
    )
    with tf.control_dependencies([too_many]):
        padded = ragged.to_tensor(default_value=tf.constant(default, ragged.dtype), shape=[None, 1])
    return tf.reshape(padded, [-1])


def make_preprocessing_fn(crosses, passthrough=(), *, defaults=None, collision_stats=False,
                          target_collision_share=DEFAULT_TARGET_COLLISION_SHARE):
    """A ``preprocessing_fn`` that outputs one id feature per cross, named by ``Cross.name``.

    A cross may transform its features (:class:`beam_cross.Bucketize`, ``Lookup``, ``Identity``,
    ``Hash``): the graph applies the TF ops of :func:`transform_ids`, so the training output and the
    served ``transform_fn`` give the ids of :func:`beam_cross.hashed_cross` and of ``CrossFeatures``.

    Args:
        crosses: a list of :class:`beam_cross.Cross` (``output_mode="int"``), or of their dicts (as
            :func:`beam_cross.core.spec_file.read_crosses` reads them). An unlearned transform
            (``Bucketize(name, num_buckets=k)``, ``Lookup(name, max_tokens=...)``) is learned by
            tf.Transform analyzers in the analyze pass (:mod:`beam_cross.tft.learned`).
        passthrough: names of input features copied to the output unchanged (e.g. the label).
        defaults: ``{feature: value}`` for features that may be missing: a ``VarLenFeature``
            listed here is made single-valued, its empty rows filled with ``value``. A VarLen
            feature not listed stays multivalent: a row without values gives no id (see the module
            docstring). Dense features are used as they are.
        collision_stats: also run :func:`collision_stats_analyzer` on every cross;
            read the figures back with :func:`read_collision_stats`.
        target_collision_share: the collision share ``suggested_num_bins`` aims at.

    Returns:
        ``preprocessing_fn(inputs) -> dict``, for ``tft_beam.AnalyzeAndTransformDataset`` or a
        TFX Transform module file.
    """
    crosses = _check_crosses(crosses)
    if isinstance(passthrough, str) or not all(isinstance(f, str) for f in passthrough):
        raise TypeError(f"`passthrough` must be a list of feature names. Received: passthrough={passthrough!r}")
    passthrough = tuple(passthrough)
    defaults = dict(defaults or {})
    for feature, value in defaults.items():
        if isinstance(value, (bool, float)) or not isinstance(value, (str, bytes, int)):
            raise TypeError(
                f"The default of feature `{feature}` must be a string or an int. Received: value={value!r}"
            )
    clashes = sorted(set(passthrough) & {c.name for c in crosses})
    if clashes:
        raise ValueError(f"Passthrough features {clashes} have the name of a cross output.")
    check_target(target_collision_share)

    def preprocessing_fn(inputs):
        needed = {f for c in crosses for f in c.features} | set(passthrough) | set(defaults)
        missing = sorted(needed - set(inputs))
        if missing:
            raise KeyError(f"The preprocessing_fn needs features {missing}, missing from its inputs {sorted(inputs)}")
        features = {
            name: _single_valued(value, defaults[name], name) if name in defaults else value
            for name, value in inputs.items()
        }
        outputs = {name: inputs[name] for name in passthrough}
        learning: dict = {}  # an unlearned transform shared by crosses is learned once

        def _ids(t, value):
            if t.learned:
                return transform_ids(t, value, name=f"{t.kind}_{_safe(t.name)}")
            if t not in learning:
                learning[t] = learned_ids(t, value, name=f"learn_{t.kind}_{_safe(t.name)}_{len(learning)}")
            return learning[t]

        for cross in crosses:
            # A transformed feature is crossed by its ids, computed by the same ops as the served graph's.
            columns = [features[f] if t is None else _ids(t, features[f]) for f, t in zip(cross.features, cross.transforms)]
            outputs[cross.name] = hashed_cross(columns, cross.num_bins, hash_key=cross.hash_key,
                                             name=f"cross_{_safe(cross.name)}")
            if collision_stats:
                collision_stats_analyzer(columns, cross, target_collision_share=target_collision_share)
        return outputs

    return preprocessing_fn


def _check_crosses(crosses) -> tuple[Cross, ...]:
    crosses = check_crosses([crosses] if isinstance(crosses, Cross) else crosses)
    names = [_safe(c.name) for c in crosses]
    if len(set(names)) != len(names):
        raise ValueError(f"Cross names must be unique (after replacing characters unsafe in file names). Received: {names}")
    one_hot = [c.name for c in crosses if c.output_mode != "int"]
    if one_hot:
        raise ValueError(
            f"tf.Transform outputs the ids of a cross; one-hot encode them in the model. "
            f"Received: output_mode='one_hot' for crosses {one_hot}"
        )
    return crosses


# -- collision statistics as an analyzer ----------------------------------------------------------

STATS_FILE_PREFIX = "beam_cross_collisions_"


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)


def _flat(ids):
    if isinstance(ids, tf.SparseTensor):
        return ids.values
    if isinstance(ids, tf.RaggedTensor):
        return ids.flat_values
    return tf.reshape(ids, [-1])


class _CollisionStatsCombineFn(beam.CombineFn):
    """Batches of ``(full hashes, bins, row count)`` in, :class:`CrossStats` out."""

    def __init__(self, cross: Cross, target_collision_share: float):
        self._cross = cross
        self._target = target_collision_share

    def create_accumulator(self):
        return CrossStatsAccumulator(self._cross, self._target)

    def add_input(self, accumulator, batch):
        keys, bins, rows = batch
        accumulator.add_hashes(keys, bins, rows=int(np.sum(rows)))
        return accumulator

    def merge_accumulators(self, accumulators):
        accumulators = iter(accumulators)
        merged = next(accumulators)
        for other in accumulators:
            merged.merge(other)
        return merged

    def extract_output(self, accumulator):
        return accumulator.result()


class _CollisionStatsAnalyzer(tft_beam.experimental.PTransformAnalyzer):
    """Counts collisions over the whole dataset and writes them as a JSON asset of the transform_fn."""

    def __init__(self, cross: Cross, target_collision_share: float):
        super().__init__()
        self._cross = cross
        self._target = target_collision_share

    def expand(self, batches):
        cross = self._cross
        directory = self.base_temp_dir

        def write(stats: CrossStats) -> bytes:
            tf.io.gfile.makedirs(directory)
            path = os.path.join(directory, f"{STATS_FILE_PREFIX}{_safe(cross.name)}.json")
            report = {**stats.to_dict(), "features": list(cross.features), "hash_key": cross.hash_key}
            with tf.io.gfile.GFile(path, "w") as file:
                file.write(json.dumps(report, indent=2, sort_keys=True))
            return path.encode()

        return (
            batches
            | "Count" >> beam.CombineGlobally(_CollisionStatsCombineFn(cross, self._target))
            | "WriteJson" >> beam.Map(write)
        )


def collision_stats_analyzer(inputs, cross: Cross, *, target_collision_share=DEFAULT_TARGET_COLLISION_SHARE):
    """A tf.Transform analyzer: the collision statistics of ``cross`` over the whole dataset.

    ``inputs`` are the cross's features, as for :func:`hashed_cross`. Each cross value is identified
    by its full hash (``num_bins=0``) and counted in its bin by :mod:`beam_cross.core.stats`; the figures
    (rows, distinct crosses, bins used, collision share, suggested ``num_bins``, ...) are written as
    ``beam_cross_collisions_<cross name>.json`` among the assets of the transform_fn, that is next
    to the transform output. Read them with :func:`read_collision_stats`.

    Returns:
        The asset's path, a string scalar tensor.
    """
    if not isinstance(cross, Cross):
        raise TypeError(f"`cross` must be a beam_cross.Cross. Received: cross={cross!r}")
    target = check_target(target_collision_share)
    with tf.name_scope(f"collision_stats_{_safe(cross.name)}"):
        keys = _flat(hashed_cross(inputs, 0, hash_key=cross.hash_key))
        bins = _flat(hashed_cross(inputs, cross.num_bins, hash_key=cross.hash_key))
        first = inputs[0]
        rows = first.nrows() if isinstance(first, tf.RaggedTensor) else tf.shape(first, out_type=tf.int64)[0]
        (path,) = tft.experimental.ptransform_analyzer(
            [keys, bins, tf.reshape(tf.cast(rows, tf.int64), [1])],
            _CollisionStatsAnalyzer(cross, target),
            output_dtypes=[tf.string],
            output_shapes=[[]],
            output_asset_default_values=[b"{}"],
        )
    return path


def read_collision_stats(transform_output) -> dict[str, dict]:
    """The collision statistics written by :func:`collision_stats_analyzer`, by cross name.

    ``transform_output`` is a ``tft.TFTransformOutput`` or the directory ``WriteTransformFn`` wrote.
    """
    if not isinstance(transform_output, tft.TFTransformOutput):
        transform_output = tft.TFTransformOutput(str(transform_output))
    pattern = os.path.join(transform_output.transform_savedmodel_dir, "assets", f"{STATS_FILE_PREFIX}*.json")
    reports = {}
    for path in sorted(tf.io.gfile.glob(pattern)):
        with tf.io.gfile.GFile(path) as file:
            report = json.load(file)
        reports[report["cross"]] = report
    return reports
