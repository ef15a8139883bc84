"""A TFX Trainer ``module_file``: a small Keras model with one embedding per cross, served on raw
tf.Examples.

TFX calls ``run_fn(fn_args)``. The model reads the transformed examples that
``pipelines/tfx_module.py`` wrote, one int64 id feature per cross; each embedding has
``num_buckets_for_transformed_feature(cross)`` rows, the domain ``[0, num_bins - 1]`` that
``beam_cross.tft`` records in the transformed schema. A multivalent cross (a VarLen feature of
ids) gets the mean of its ids' embeddings. ``fn_args.custom_config`` holds ``crosses`` (a list of
``Cross.to_dict()``, as for the Transform), ``label`` and optionally ``embedding_dim`` and
``batch_size``.

The SavedModel written to ``fn_args.serving_model_dir`` has two signatures, both taking a batch of
serialized raw tf.Examples (``examples``, without the label):

- ``serving_default``: ``{"probability": (batch, 1) float32}``;
- ``transform_features``: the crossed ids the model looks up, computed in the serving graph by the
  Transform's own graph: ``{<cross name>: (batch,) int64}`` for a single-valued cross; for a
  multivalent one, ``<cross name>__values`` (all rows' ids, row after row) and
  ``<cross name>__row_lengths`` (ids per row).

tf.Transform's serving layer is a tf_keras (Keras 2) object (importing tensorflow_transform sets
``TF_USE_LEGACY_KERAS=1``), so the model is built with ``tf_keras``.
"""

from __future__ import annotations

import tensorflow as tf
import tensorflow_transform as tft
import tf_keras
from tfx_bsl.public import tfxio

from beam_cross import Cross

VALUES, ROW_LENGTHS = "__values", "__row_lengths"  # the outputs of a multivalent cross in `transform_features`


def _dataset(fn_args, file_pattern, output, label, batch_size):
    return fn_args.data_accessor.tf_dataset_factory(
        file_pattern,
        tfxio.TensorFlowDatasetOptions(batch_size=batch_size, label_key=label),
        output.transformed_metadata.schema,
    ).repeat()


class MeanEmbedding(tf_keras.layers.Layer):
    """The mean embedding of each row's ids, for a multivalent cross (a ``SparseTensor`` of ids);
    a row without ids gets zeros."""

    def __init__(self, num_buckets: int, dim: int, **kwargs):
        super().__init__(**kwargs)
        self.num_buckets, self.dim = num_buckets, dim

    def build(self, input_shape):
        self.embeddings = self.add_weight(name="embeddings", shape=(self.num_buckets, self.dim),
                                          initializer="uniform")

    def call(self, ids):
        return tf.nn.safe_embedding_lookup_sparse(self.embeddings, ids, combiner="mean")

    def get_config(self):
        return {**super().get_config(), "num_buckets": self.num_buckets, "dim": self.dim}


def build_model(output: tft.TFTransformOutput, crosses, embedding_dim: int = 4) -> tf_keras.Model:
    """Crossed ids -> one embedding per cross -> concatenated -> a click probability."""
    spec = output.transformed_feature_spec()
    inputs, embedded = {}, []
    for cross in crosses:
        num_buckets = output.num_buckets_for_transformed_feature(cross.name)
        name = f"embed_{cross.name}"
        if isinstance(spec[cross.name], tf.io.VarLenFeature):  # a multivalent cross: ids per row
            inputs[cross.name] = tf_keras.Input(shape=(None,), dtype=tf.int64, sparse=True, name=cross.name)
            embedded.append(MeanEmbedding(num_buckets, embedding_dim, name=name)(inputs[cross.name]))
            continue
        inputs[cross.name] = tf_keras.Input(shape=tuple(spec[cross.name].shape), dtype=tf.int64, name=cross.name)
        embedding = tf_keras.layers.Embedding(num_buckets, embedding_dim, name=name)
        embedded.append(tf_keras.layers.Flatten()(embedding(inputs[cross.name])))
    hidden = tf_keras.layers.Concatenate()(embedded)
    probability = tf_keras.layers.Dense(1, activation="sigmoid", name="probability")(hidden)
    model = tf_keras.Model(inputs, probability)
    model.compile(optimizer=tf_keras.optimizers.Adam(0.05), loss="binary_crossentropy", metrics=["AUC"])
    return model


def _signatures(model, output: tft.TFTransformOutput, crosses, label):
    model.tft_layer = output.transform_features_layer()  # tracked, so its assets are saved with the model
    raw_spec = {name: spec for name, spec in output.raw_feature_spec().items() if name != label}
    examples = tf.TensorSpec([None], tf.string, name="examples")

    def transform(serialized):
        return model.tft_layer(tf.io.parse_example(serialized, raw_spec))

    @tf.function(input_signature=[examples])
    def serve(serialized):
        transformed = transform(serialized)
        return {"probability": model({c.name: transformed[c.name] for c in crosses})}

    @tf.function(input_signature=[examples])
    def transform_features(serialized):
        transformed, ids = transform(serialized), {}
        for cross in crosses:
            value = transformed[cross.name]
            if isinstance(value, tf.SparseTensor):  # a multivalent cross: its ids, and how many per row
                ragged = tf.RaggedTensor.from_sparse(value)
                ids[f"{cross.name}{VALUES}"], ids[f"{cross.name}{ROW_LENGTHS}"] = ragged.flat_values, ragged.row_lengths()
            else:
                ids[cross.name] = tf.reshape(value, [-1])
        return ids

    return {"serving_default": serve, "transform_features": transform_features}


def run_fn(fn_args):
    """TFX Trainer's entry point."""
    config = dict(fn_args.custom_config or {})
    crosses = [Cross.from_dict(c) for c in config["crosses"]]
    label = config["label"]
    batch_size = int(config.get("batch_size", 64))
    output = tft.TFTransformOutput(fn_args.transform_output)
    train = _dataset(fn_args, fn_args.train_files, output, label, batch_size)
    evaluate = _dataset(fn_args, fn_args.eval_files, output, label, batch_size)
    model = build_model(output, crosses, int(config.get("embedding_dim", 4)))
    model.fit(train, steps_per_epoch=fn_args.train_steps, validation_data=evaluate,
              validation_steps=fn_args.eval_steps, verbose=2)
    model.save(fn_args.serving_model_dir, save_format="tf", signatures=_signatures(model, output, crosses, label))
