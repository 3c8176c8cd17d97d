r"""Train input pipeline throughput: grain (ours) vs the same work in tf.data.

  python -m fashionnet_jax.benchmarks.input_pipeline [--images N] [--seconds S]

Builds (or reuses) synthetic DeepFashion `category_attribute` under --cache_dir
with the TFDS builder, then runs, each on one thread, (1) our grain train
pipeline at --image_size (decode, bbox crop with jitter, resize, flip with
landmark swap, colour jitter, normalise, batch) and (2) tf.data doing the same
(decode_and_crop_jpeg, resize, the same colour jitter unless --color_jitter 0,
flip with landmark swap, normalise, batch) on the same JPEG bytes, in memory. "Per core" = images / CPU seconds of this process (all threads counted).
The last line is one JSON object.
"""

import argparse
import io
import json
import os
import resource
import sys
import time

import numpy as np


def _cpu_seconds():
  usage = resource.getrusage(resource.RUSAGE_SELF)
  return usage.ru_utime + usage.ru_stime


def _measure(iterator, batch_size, seconds):
  """(images/s wall, images per CPU second) after one warm-up batch."""
  next(iterator)
  images, wall, cpu = 0, time.perf_counter(), _cpu_seconds()
  while time.perf_counter() - wall < seconds:
    next(iterator)
    images += batch_size
  wall, cpu = time.perf_counter() - wall, _cpu_seconds() - cpu
  return images / wall, images / cpu


def _fallback_source(n):
  """300×300 JPEGs with a garment box, if the synthetic generator is unavailable."""
  from PIL import Image, ImageDraw

  rng = np.random.default_rng(0)
  records = []
  for i in range(n):
    image = Image.fromarray(rng.integers(0, 255, (300, 300, 3), np.uint8)).resize((300, 300))
    ImageDraw.Draw(image).rectangle([60, 40, 240, 280], fill=(90, 40, 40))
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=90)
    records.append(
        {
            "image": buf.getvalue(),
            "bbox": np.array([0.13, 0.2, 0.93, 0.8], np.float32),
            "landmarks": rng.uniform(0.2, 0.8, (8, 2)).astype(np.float32),
            "landmark_visibility": np.zeros((8,), np.int64),
            "clothes_type": np.int64(2),
            "category": np.int64(i % 50),
            "attributes": np.zeros((1000,), np.int8),
        }
    )
  return records


def synthetic_source(images, cache_dir):
  """TFDS data source of synthetic DeepFashion (built once), and a description."""
  data_dir = os.path.join(cache_dir, f"tfds_{images}")
  try:
    import tensorflow_datasets as tfds
    from fashionnet_jax import synthetic
    from fashionnet_jax.data import tfds_build
  except ImportError as e:
    print(f"synthetic DeepFashion unavailable ({e}); using in-memory 300x300 JPEGs")
    return _fallback_source(images), "in-memory 300x300 JPEGs"
  if not os.path.isdir(os.path.join(data_dir, "deepfashion", "category_attribute")):
    manual_dir = os.path.join(cache_dir, f"manual_{images}")
    print(f"writing {images} synthetic images to {manual_dir} and building them ...")
    synthetic.generate(manual_dir, images=images, seed=0, benchmarks=["category_attribute"])
    tfds_build.build("category_attribute", manual_dir=manual_dir, data_dir=data_dir)
  source = tfds.data_source(
      "deepfashion/category_attribute",
      split="train",
      data_dir=data_dir,
      download=False,
      decoders={"image": tfds.decode.SkipDecoding()},
  )
  return source, f"synthetic DeepFashion via TFDS ArrayRecord ({data_dir})"


def grain_rate(source, image_size, batch_size, seconds, color_jitter, normalize_on_device):
  import ml_collections
  from fashionnet_jax.data import pipeline

  config = ml_collections.ConfigDict(
      dict(
          seed=0,
          image_size=image_size,
          batch_size=batch_size,
          dataset=dict(name="deepfashion/category_attribute", train_split="train"),
          input=dict(
              crop_margin=0.1,
              crop_jitter=0.1,
              flip=True,
              color_jitter=color_jitter,
              shuffle=True,
              sampler="random",
              worker_count=0,
              read_threads=1,
              prefetch_buffer_size=2,
              normalize_on_device=normalize_on_device,
          ),
          model=dict(num_attributes=len(source[0].get("attributes", [0] * 1000))),
      )
  )
  iterator = pipeline.create_train_iterator(config, process_index=0, process_count=1, source=source)
  return _measure(iterator, batch_size, seconds)


def tfdata_rate(source, image_size, batch_size, seconds, color_jitter):
  """tf.data on one thread: decode_and_crop_jpeg, resize, colour jitter (the same
  linear brightness / contrast / saturation as ours), flip + landmark swap, normalise."""
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  import tensorflow as tf

  tf.config.threading.set_inter_op_parallelism_threads(1)
  tf.config.threading.set_intra_op_parallelism_threads(1)
  records = [source[i] for i in range(len(source))]
  mean = tf.constant([0.485, 0.456, 0.406]) * 255.0
  std = tf.constant([0.229, 0.224, 0.225]) * 255.0
  swap = tf.constant([1, 0, 3, 2, 5, 4, 7, 6])

  def preprocess(jpeg, bbox, landmarks, visibility, seed):
    shape = tf.cast(tf.io.extract_jpeg_shape(jpeg)[:2], tf.float32)
    margin = tf.random.stateless_uniform([4], seed, 0.0, 0.2)
    h, w = bbox[2] - bbox[0], bbox[3] - bbox[1]
    lo = tf.maximum(bbox[:2] - margin[:2] * [h, w], 0.0)
    hi = tf.minimum(bbox[2:] + margin[2:] * [h, w], 1.0)
    offset = tf.cast(lo * shape, tf.int32)
    size = tf.maximum(tf.cast((hi - lo) * shape, tf.int32), 1)
    image = tf.io.decode_and_crop_jpeg(jpeg, tf.concat([offset, size], 0), channels=3)
    image = tf.image.resize(image, [image_size, image_size])
    if color_jitter > 0:
      b, c, s = tf.unstack(
          tf.random.stateless_uniform([3], seed + 2, 1.0 - color_jitter, 1.0 + color_jitter)
      )
      image = image * b
      luma = tf.image.rgb_to_grayscale(image)
      image = (image - tf.reduce_mean(luma)) * c + tf.reduce_mean(luma)
      luma = tf.image.rgb_to_grayscale(image)
      image = tf.clip_by_value(luma + (image - luma) * s, 0.0, 255.0)
    xy = (landmarks - tf.reverse(lo, [0])) / tf.reverse(hi - lo, [0])
    flip = tf.random.stateless_uniform([], seed + 1) < 0.5
    image = tf.cond(flip, lambda: tf.image.flip_left_right(image), lambda: image)
    xy = tf.cond(flip, lambda: tf.gather(xy * [-1.0, 1.0] + [1.0, 0.0], swap), lambda: xy)
    visibility = tf.cond(flip, lambda: tf.gather(visibility, swap), lambda: visibility)
    return (image - mean) / std, xy, visibility

  ds = tf.data.Dataset.from_tensor_slices(
      (
          [r["image"] for r in records],
          np.stack([r["bbox"] for r in records]),
          np.stack([r["landmarks"] for r in records]),
          np.stack([r["landmark_visibility"] for r in records]).astype(np.int32),
      )
  )
  ds = ds.repeat().shuffle(256, seed=0).enumerate()
  ds = ds.map(lambda i, x: preprocess(*x, tf.stack([i, i])), num_parallel_calls=1)
  ds = ds.batch(batch_size, drop_remainder=True).prefetch(1)
  options = tf.data.Options()
  options.threading.private_threadpool_size = 1
  options.deterministic = True
  return _measure(iter(ds.with_options(options)), batch_size, seconds)


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--images", type=int, default=256, help="synthetic images to build")
  parser.add_argument("--seconds", type=float, default=10.0, help="measuring time per pipeline")
  parser.add_argument("--image_size", type=int, default=224)
  parser.add_argument("--batch_size", type=int, default=32)
  parser.add_argument("--color_jitter", type=float, default=0.2)
  parser.add_argument(
      "--cache_dir",
      default=os.path.join(
          os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")),
          "fashionnet_jax",
          "benchmark_input_pipeline",
      ),
  )
  args = parser.parse_args(argv)
  if args.images < args.batch_size:
    parser.error(f"--images {args.images} must be at least --batch_size {args.batch_size}")
  source, what = synthetic_source(args.images, args.cache_dir)
  print(
      f"data: {what}, {len(source)} images; {args.image_size}x{args.image_size}, "
      f"batch {args.batch_size}, one thread each, {args.seconds:.0f} s each"
  )
  # As configs/default.py runs it: uint8 batches, normalised inside the train step.
  ours_wall, ours = grain_rate(
      source,
      args.image_size,
      args.batch_size,
      args.seconds,
      args.color_jitter,
      normalize_on_device=True,
  )
  print(
      f"grain (train pipeline, uint8 out, normalised on device): {ours_wall:7.1f} images/s "
      f"wall, {ours:7.1f} images/s per core"
  )
  # Exactly tf.data's work: float32 ImageNet-normalised on the host.
  host_wall, host = grain_rate(
      source,
      args.image_size,
      args.batch_size,
      args.seconds,
      args.color_jitter,
      normalize_on_device=False,
  )
  print(
      f"grain (normalised on the host, as tf.data): {host_wall:7.1f} images/s wall, "
      f"{host:7.1f} images/s per core"
  )
  tf_wall, theirs = tfdata_rate(
      source, args.image_size, args.batch_size, args.seconds, args.color_jitter
  )
  print(f"tf.data (same work): {tf_wall:7.1f} images/s wall, {theirs:7.1f} images/s per core")
  print(
      f"ratio grain / tf.data (per core, same work): {host / theirs:.2f}; "
      f"as configured: {ours / theirs:.2f}"
  )
  print(
      json.dumps(
          {
              "images_per_s_per_core": round(ours, 1),
              "host_normalised_images_per_s_per_core": round(host, 1),
              "tfdata_images_per_s_per_core": round(theirs, 1),
              "ratio_vs_tfdata": round(host / theirs, 3),
              "ratio_vs_tfdata_as_configured": round(ours / theirs, 3),
              "images_per_s_wall": round(ours_wall, 1),
              "tfdata_images_per_s_wall": round(tf_wall, 1),
              "image_size": args.image_size,
              "color_jitter": args.color_jitter,
              "data": what,
          }
      )
  )


if __name__ == "__main__":
  sys.exit(main())
