"""``from_feature_columns``: the crosses of ``tf.feature_column.crossed_column`` definitions, as :class:`~beam_cross.Cross`.

A ``crossed_column`` hashes, in the order its keys are given, the raw value of a string key and the
id of a categorical key (``crossing-semantics.md`` §10.1). Each key becomes the core transform with
the same ids:

- a string key: the raw column, crossed as it is;
- ``bucketized_column(numeric_column(k), boundaries)``: :class:`~beam_cross.Bucketize` (a numeric
  column casts its value to float32 whatever its ``dtype``, as ``Bucketize`` does);
- ``categorical_column_with_vocabulary_list`` / ``_with_vocabulary_file``: a
  :class:`~beam_cross.Lookup` with ``style="feature_column"`` (the file is read here, once: the
  crosses carry the tokens, so workers need neither TensorFlow nor the file);
- ``categorical_column_with_identity``: :class:`~beam_cross.Identity`;
- a ``crossed_column`` inside a ``crossed_column``: its leaf keys, in place, as TF flattens it.

The cross keeps TF's name (``"_X_".join`` of the sorted leaf names, ``age_bucketized_X_education``),
its ``hash_bucket_size`` and its ``hash_key``. What cannot give TF's ids is refused with a ValueError
naming the column: a numeric column of another shape than ``(1,)`` or with a ``normalizer_fn``, a
vocabulary file in another format than text, any other kind of key. (``crossed_column`` itself already
refuses hashed and weighted keys.)

Feature columns drop ``''`` and ``-1`` from a dense (single-valued) input before a lookup or identity,
so TF gives such a row no cross id; the core refuses the row instead (a ``FeatureError`` with reason
``no_id``), so a row TF leaves without a cross is a rejected row, never a wrong id.

TensorFlow is needed here only to read the definitions (``tf.feature_column`` pulls no tf_keras).

>>> import tensorflow as tf
>>> fc = tf.feature_column
>>> age = fc.bucketized_column(fc.numeric_column("age"), [18, 25])
>>> (cross,) = from_feature_columns([fc.crossed_column([age, "country"], 1000), age])
>>> cross.name, cross.apply({"age": [17, 18, 30], "country": ["fr", "fr", "us"]}).tolist()
('age_bucketized_X_country', [116, 20, 471])
"""

from __future__ import annotations

from beam_cross.core.spec import Cross
from beam_cross.core.transforms import Bucketize, Identity, Lookup
from beam_cross.tf.startup import start_up_lines_dropped

with start_up_lines_dropped():
    import tensorflow as tf
    from tensorflow.python.feature_column import feature_column_v2 as fcv2
    from tensorflow.python.feature_column.feature_column_v2_types import FeatureColumn

__all__ = ["from_feature_columns"]


def _column_name(column) -> str:
    return getattr(column, "name", None) or repr(column)


def _leaf_keys(column) -> list:
    """A crossed column's keys with nested crossed columns flattened in place (TF's ``_collect_leaf_level_keys``)."""
    keys = []
    for key in column.keys:
        keys.extend(_leaf_keys(key) if isinstance(key, fcv2.CrossedColumn) else [key])
    return keys


def _bucketize(key: fcv2.BucketizedColumn, cross: str) -> Bucketize:
    source = key.source_column
    if not isinstance(source, fcv2.NumericColumn):
        raise ValueError(f"Crossed column `{cross}`: `{key.name}` bucketizes a {type(source).__name__}, not a "
                         f"numeric_column. Received: source_column={source!r}")
    if tuple(source.shape) != (1,):
        raise ValueError(f"Crossed column `{cross}`: `{key.name}` bucketizes a numeric_column of shape {source.shape}; "
                         "beam_cross crosses one value per row of a bucketized feature, shape (1,). "
                         f"Received: shape={source.shape}")
    if source.normalizer_fn is not None:
        raise ValueError(f"Crossed column `{cross}`: `{key.name}` bucketizes a numeric_column with a normalizer_fn, a "
                         "Python function that cannot be carried into a cross; bucketize the raw value (normalize the "
                         f"boundaries instead). Received: normalizer_fn={source.normalizer_fn!r}")
    return Bucketize(source.key, list(key.boundaries))


def _vocabulary_file(key: fcv2.VocabularyFileCategoricalColumn, cross: str) -> list:
    """The tokens of a vocabulary file as TF's text-file table reads them: one per line (a trailing
    ``\\r`` dropped), the first ``vocabulary_size`` lines."""
    if key.file_format not in (None, "text"):
        raise ValueError(f"Crossed column `{cross}`: the vocabulary file of `{key.name}` is in format "
                         f"{key.file_format!r}; beam_cross reads text vocabularies only. "
                         f"Received: file_format={key.file_format!r}")
    with tf.io.gfile.GFile(key.vocabulary_file, "rb") as handle:
        lines = handle.read().split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    lines = [line[:-1] if line.endswith(b"\r") else line for line in lines]
    if key.vocabulary_size is not None:
        if key.vocabulary_size > len(lines):
            raise ValueError(f"Crossed column `{cross}`: `{key.name}` has vocabulary_size={key.vocabulary_size}, but "
                             f"its file has {len(lines)} lines. Received: vocabulary_file={key.vocabulary_file!r}")
        lines = lines[: key.vocabulary_size]
    if key.dtype == tf.string:
        return [line.decode("utf-8") for line in lines]
    try:
        return [int(line) for line in lines]
    except ValueError:
        raise ValueError(f"Crossed column `{cross}`: the vocabulary file of `{key.name}` (dtype {key.dtype.name}) holds a "
                         f"line that is not an integer. Received: vocabulary_file={key.vocabulary_file!r}") from None


def _lookup(key, tokens, cross: str) -> Lookup:
    if not key.dtype.is_integer and key.dtype != tf.string:
        raise ValueError(f"Crossed column `{cross}`: `{key.name}` has dtype {key.dtype.name}; lookups take strings or "
                         f"integers. Received: dtype={key.dtype.name}")
    buckets = key.num_oov_buckets
    default = None if buckets or key.default_value is None else key.default_value
    try:
        return Lookup(key.key, list(tokens), num_oov_indices=buckets, style="feature_column", default_value=default)
    except (TypeError, ValueError) as error:
        raise ValueError(f"Crossed column `{cross}`: the vocabulary of `{key.name}` cannot be used: {error}") from None


def _feature(key, cross: str):
    """The raw column name or core transform that gives the ids TF crosses for one leaf key."""
    if isinstance(key, str):
        return key
    if isinstance(key, fcv2.BucketizedColumn):
        return _bucketize(key, cross)
    if isinstance(key, fcv2.VocabularyListCategoricalColumn):
        return _lookup(key, key.vocabulary_list, cross)
    if isinstance(key, fcv2.VocabularyFileCategoricalColumn):
        return _lookup(key, _vocabulary_file(key, cross), cross)
    if isinstance(key, fcv2.IdentityCategoricalColumn):
        return Identity(key.key, key.number_buckets, default_value=key.default_value)
    raise ValueError(
        f"Crossed column `{cross}`: its key `{_column_name(key)}` is a {type(key).__name__}, which beam_cross does not "
        "reproduce; a key must be a raw feature name, a bucketized_column of a numeric_column, or a "
        "categorical_column_with_vocabulary_list / _with_vocabulary_file / _with_identity. "
        f"Received: {key!r}"
    )


def _cross(column: fcv2.CrossedColumn) -> Cross:
    features = [_feature(key, column.name) for key in _leaf_keys(column)]
    names = [f if isinstance(f, str) else f.name for f in features]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"Crossed column `{column.name}` crosses the raw feature(s) {repeated} more than once; a beam_cross "
                         f"cross takes each raw column once. Received: keys={names}")
    return Cross(features, column.hash_bucket_size, name=column.name, hash_key=column.hash_key)


def from_feature_columns(columns) -> list[Cross]:
    """The :class:`~beam_cross.Cross` of every ``tf.feature_column.crossed_column`` in ``columns``, in order.

    Each cross gives the ids of the crossed column's ``get_sparse_tensors(...).id_tensor``, under the
    crossed column's name. Other columns (the model's bucketized, embedding or indicator columns) are
    skipped; a list without any crossed column is a ValueError.

    Args:
        columns: a feature column or a list of them (what a model's ``feature_columns`` holds).

    Returns:
        A list of ``Cross``: ``to_dict()`` gives a spec file for the command's ``--config``.
    """
    if isinstance(columns, FeatureColumn):
        columns = [columns]
    try:
        given = list(columns)
    except TypeError:
        raise TypeError(f"`columns` must be a feature column or a list of them. Received: columns={columns!r}") from None
    for column in given:
        if not isinstance(column, FeatureColumn):
            raise TypeError(f"`columns` must hold tf.feature_column columns. Received: {column!r}")
    crosses = [_cross(c) for c in given if isinstance(c, fcv2.CrossedColumn)]
    if not crosses:
        raise ValueError("`columns` holds no crossed_column; beam_cross imports the crosses of a feature column set. "
                         f"Received: columns={[_column_name(c) for c in given]}")
    return crosses
