"""A trained FashionNet as a TF SavedModel that TF Serving can load (orbax-export, jax2tf inside).

`export_savedmodel(predictor, out)` writes two serving signatures:
  serving_default  image_bytes: string [B] (JPEG or PNG files as they are) ->
                   decoded and resized in TF as `inference.images.load_image`
                   does for a whole image (JPEG DCT scaling included), then the model
  predict_images   images: uint8 [B, S, S, 3], already cropped and resized
Both return the network's outputs (landmarks in [0, 1] of the input, visibility,
category and attribute logits, the embedding) and category / attribute
probabilities. The forward pass is the Predictor's eval-mode function, lowered
once to StableHLO (jax2tf native serialization) with a symbolic batch size;
parameters are SavedModel variables, the small non-parameter state is baked in.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from fashionnet_jax.models.functional import make_predict_fn

OUTPUTS = (
    "landmarks",
    "visibility_logits",
    "category_logits",
    "attribute_logits",
    "embedding",
    "category_probabilities",
    "attribute_probabilities",
)


def serving_fn(predictor):
  """apply_fn(params, images uint8 [B, S, S, 3]) -> outputs, with model_state closed over."""
  forward = make_predict_fn(predictor.graphdef)
  model_state = predictor.model_state

  def apply(params, images):
    out = dict(forward(params, model_state, images))
    out["category_probabilities"] = jax.nn.softmax(out["category_logits"].astype(jnp.float32))
    out["attribute_probabilities"] = jax.nn.sigmoid(out["attribute_logits"].astype(jnp.float32))
    return {k: out[k].astype(jnp.float32) for k in OUTPUTS}

  return apply


def tf_decode_resize(image_bytes, size: int):
  """One image file's bytes -> uint8 [size, size, 3], as `load_image` reads a whole image.

  PIL decodes a JPEG at 1/2, 1/4 or 1/8 scale (libjpeg DCT scaling, `Image.draft`)
  when that keeps at least `size` pixels per side; `decode_jpeg(ratio=...)` is
  the same libjpeg call (with PIL's accurate integer IDCT). The resize is a
  triangle filter widened when it shrinks (PIL's BILINEAR) over the box
  W / ratio, H / ratio that PIL resizes from. On the real samples at 32, 64
  and 224 px: within 1 level of `load_image`'s pixels.
  """
  import tensorflow as tf

  def jpeg():
    shape = tf.cast(tf.image.extract_jpeg_shape(image_bytes), tf.float32)
    height, width = shape[0], shape[1]
    shrink = tf.minimum(width, height) / size
    # PIL: scale = min(W // int(W / shrink), H // int(H / shrink)), then the largest of 8, 4, 2, 1
    # not above it.
    scale = tf.minimum(
        tf.math.floordiv(width, tf.floor(width / shrink)),
        tf.math.floordiv(height, tf.floor(height / shrink)),
    )
    scale = tf.where(shrink >= 2, scale, 1.0)
    branch = (
        tf.cast(scale >= 2, tf.int32)
        + tf.cast(scale >= 4, tf.int32)
        + tf.cast(scale >= 8, tf.int32)
    )
    decoded = tf.switch_case(
        branch,
        [
            lambda r=r: tf.io.decode_jpeg(
                image_bytes, channels=3, ratio=r, dct_method="INTEGER_ACCURATE"
            )
            for r in (1, 2, 4, 8)
        ],
    )
    ratio = tf.gather([1.0, 2.0, 4.0, 8.0], branch)
    # libjpeg rounds the scaled size up; PIL resizes from the exact W / ratio box.
    return decoded, tf.stack([height / ratio, width / ratio])

  def other():
    decoded = tf.io.decode_image(image_bytes, channels=3, expand_animations=False)
    return decoded, tf.cast(tf.shape(decoded)[:2], tf.float32)

  image, extent = tf.cond(tf.io.is_jpeg(image_bytes), jpeg, other)
  image.set_shape([None, None, 3])
  resized = tf.raw_ops.ScaleAndTranslate(
      images=tf.cast(image, tf.float32)[None],
      size=[size, size],
      scale=tf.cast(size, tf.float32) / extent,
      translation=tf.zeros([2]),
      kernel_type="triangle",
      antialias=True,
  )[0]
  return tf.cast(tf.clip_by_value(tf.round(resized), 0, 255), tf.uint8)


def export_savedmodel(predictor, out: str) -> dict:
  """Writes the SavedModel to `out`; returns its signatures' names and input specs."""
  import tensorflow as tf
  from orbax.export import ExportManager, JaxModule, ServingConfig

  size = predictor.image_size
  module = JaxModule(
      {"params": predictor.params},
      lambda p, images: serving_fn(predictor)(p["params"], images),
      trainable=False,
      input_polymorphic_shape=f"(b, {size}, {size}, 3)",
  )

  def from_bytes(image_bytes):
    images = tf.map_fn(
        lambda b: tf_decode_resize(b, size),
        image_bytes,
        fn_output_signature=tf.TensorSpec([size, size, 3], tf.uint8),
    )
    return images

  configs = [
      ServingConfig(
          "serving_default",
          input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")],
          tf_preprocessor=from_bytes,
      ),
      ServingConfig(
          "predict_images",
          input_signature=[tf.TensorSpec([None, size, size, 3], tf.uint8, name="images")],
      ),
  ]
  ExportManager(module, configs).save(out)
  return {
      "signatures": {
          "serving_default": "image_bytes: string [B]",
          "predict_images": f"images: uint8 [B, {size}, {size}, 3]",
      },
      "outputs": list(OUTPUTS),
      "step": int(predictor.step),
  }
