"""The TensorFlow / Keras 3 front door: the ``HashedCrossing`` layer, the ``CrossingLayer`` serving layer (a
list of crosses, transforms included), the transforms' TF ops and the TensorFlow engine of ``CrossFeatures``.

It imports TensorFlow or Keras 3 and :mod:`beam_cross.core` only (never tensorflow_transform, which
switches TensorFlow to tf_keras, nor :mod:`beam_cross.beam` or :mod:`beam_cross.job`).
"""
