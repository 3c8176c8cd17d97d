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

from fashionnet_jax.inference import decode
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


def tf_decode_resize(image_bytes, size: int, max_pixels: int | None = None):
  """One image file's bytes -> uint8 [size, size, 3], as `load_image` reads a whole image.

  The checks of `inference.decode` first, as assertions whose message is the
  Python side's one line (format, `max_pixels` from the header, structure),
  then the EXIF orientation read from the bytes. PIL decodes a JPEG at 1/2, 1/4
  or 1/8 scale (libjpeg DCT scaling, `Image.draft`) when that keeps at least
  `size` pixels per side; `decode_jpeg(ratio=...)` is the same libjpeg call
  (with PIL's accurate integer IDCT). The image is turned upright, then resized
  by a triangle filter widened when it shrinks (PIL's BILINEAR) over the box
  that `transforms.content_box` gives (W / ratio x H / ratio, where PIL resizes
  from). On the real samples at 32, 64 and 224 px: within 1 level of
  `load_image`'s pixels.
  """
  import tensorflow as tf

  is_jpeg, is_png = decode.tf_format(image_bytes)
  done = [tf.debugging.Assert(is_jpeg | is_png, [decode.NOT_AN_IMAGE])]
  if max_pixels is not None:  # from the header, after the format check passed
    with tf.control_dependencies(done):
      height, width = decode.tf_size(image_bytes, is_jpeg)
      done = [tf.debugging.Assert(height * width <= max_pixels, [decode.over_limit(max_pixels)])]
  with tf.control_dependencies(done):
    structure = decode.tf_structure_checks(image_bytes, is_jpeg)
  for ok, refusal in structure:  # in `read_header`'s order: the first failing one is reported
    with tf.control_dependencies(done):
      done = [tf.debugging.Assert(ok, [refusal])]
  with tf.control_dependencies(done):
    image_bytes = tf.identity(image_bytes)
    orientation = decode.tf_exif_orientation(image_bytes, is_jpeg)

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
    return decoded, tf.stack([width / ratio, height / ratio])

  def png():
    decoded = tf.io.decode_png(image_bytes, channels=3)  # 16-bit: the high byte, as PIL's side
    return decoded, tf.cast(tf.shape(decoded)[1::-1], tf.float32)

  image, exact = tf.cond(is_jpeg, jpeg, png)
  image.set_shape([None, None, 3])
  decoded = tf.cast(tf.shape(image)[1::-1], tf.float32)
  offset, extent = decode.tf_content_box(orientation, decoded, exact)
  image = decode.tf_transpose(image, orientation)
  scale = tf.cast(size, tf.float32) / extent
  resized = tf.raw_ops.ScaleAndTranslate(
      images=image[None],  # uint8 in: no float copy of the full-size image
      size=[size, size],
      scale=scale[::-1],  # (y, x)
      translation=(-offset * scale)[::-1],
      kernel_type="triangle",
      antialias=True,
  )[0]
  return tf.cast(tf.clip_by_value(tf.round(resized), 0, 255), tf.uint8)


def export_savedmodel(predictor, out: str, max_pixels: int = 50_000_000) -> dict:
  """Writes the SavedModel to `out`; returns its signatures' names and input specs.

  `serving_default` refuses an image whose header declares more than
  `max_pixels` (the server's default) before decoding it. An empty batch returns
  empty outputs: JAX's symbolic batch size is at least 1, so a batch of none
  runs one zero image whose outputs are then sliced away.
  """
  import tensorflow as tf
  from orbax.export import ExportManager, JaxModule, ServingConfig

  size = predictor.image_size
  apply = serving_fn(predictor)

  def forward(p, inputs):
    return {**apply(p["params"], inputs["images"]), "count": inputs["count"]}

  module = JaxModule(
      {"params": predictor.params},
      forward,
      trainable=False,
      input_polymorphic_shape={"images": f"(b, {size}, {size}, 3)", "count": None},
  )

  def batch(images):
    count = tf.shape(images)[0]
    padded = tf.cond(count > 0, lambda: images, lambda: tf.zeros([1, size, size, 3], tf.uint8))
    return {"images": padded, "count": count}

  def unbatch(outputs):
    return {key: outputs[key][: outputs["count"]] for key in OUTPUTS}

  def from_bytes(image_bytes):
    images = tf.map_fn(
        lambda b: tf_decode_resize(b, size, max_pixels),
        image_bytes,
        fn_output_signature=tf.TensorSpec([size, size, 3], tf.uint8),
    )
    return batch(images)

  configs = [
      ServingConfig(
          "serving_default",
          input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")],
          tf_preprocessor=from_bytes,
          tf_postprocessor=unbatch,
      ),
      ServingConfig(
          "predict_images",
          input_signature=[tf.TensorSpec([None, size, size, 3], tf.uint8, name="images")],
          tf_preprocessor=batch,
          tf_postprocessor=unbatch,
      ),
  ]
  ExportManager(module, configs).save(out)
  return {
      "signatures": {
          "serving_default": "image_bytes: string [B]",
          "predict_images": f"images: uint8 [B, {size}, {size}, 3]",
      },
      "outputs": list(OUTPUTS),
      "max_pixels": max_pixels,
      "step": int(predictor.step),
  }
