"""The checks every image decode makes before decoding, in Python and as TF graph ops, side by side.

`predict`, the server (`images.load_image_bytes`) and the SavedModel's
`serving_default` (`export.savedmodel.tf_decode_resize`) read an image file the
same way, in this order, each step with the same one-line refusal:
  1. format from the magic bytes: JPEG or PNG, else NOT_AN_IMAGE;
  2. width x height from the header (JPEG SOF / libjpeg's header read, the PNG
     IHDR), refused over `max_pixels` (`over_limit`) before anything is decoded;
  3. structure (`NOT_DECODABLE`): a JPEG needs an end-of-image marker after its
     last scan, and that scan's entropy-coded bytes may hold only 0xFF00 and
     RST0..7 after a 0xFF; a PNG needs its IEND chunk (and in Python: a right
     CRC on every critical chunk; an ancillary chunk with a bad one is dropped,
     as libpng drops it);
  4. the EXIF orientation (tag 0x0112 of IFD0) from the first APP1 "Exif" block
     (JPEG) or the eXIf chunk before IDAT (PNG) in the file's first MiB; XMP
     orientation is not read.
Then the decode itself (`transforms.decode_crop_resize` / TF's decode ops),
which refuses what libjpeg or libpng call an error.

What no check here finds: JPEG entropy data overwritten with bytes that still
form valid Huffman codes. libjpeg only warns about it (PIL drops the warning,
TensorFlow logs it) and JPEG has no checksum, so such a file decodes to a
damaged picture on both sides alike.
"""

from __future__ import annotations

import dataclasses
import zlib

import numpy as np

from fashionnet_jax.data import transforms
from fashionnet_jax.data.transforms import JPEG_MAGIC, PNG_MAGIC
from fashionnet_jax.errors import one_line

NOT_AN_IMAGE = "not an image (neither JPEG nor PNG)"
NOT_DECODABLE = "not a decodable image"
TRUNCATED = f"{NOT_DECODABLE} (image file is truncated)"
BAD_SCAN = f"{NOT_DECODABLE} (a marker inside the entropy-coded data of the JPEG)"

EXIF_SEARCH = 1 << 20  # bytes of the file searched for the EXIF block
EXIF_BYTES = 1 << 16  # bytes of the TIFF block read (a JPEG APP1 segment holds at most 64 KiB)
_ORIENTATION_TAG = 0x0112
_SHORT = 3  # TIFF field type of the orientation
_EXIF_JPEG, _APP1 = b"Exif\x00\x00", b"\xff\xe1"
_EXIF_PNG, _IDAT = b"eXIf", b"IDAT"
_SOS, _EOI = b"\xff\xda", b"\xff\xd9"
_IEND = b"IEND\xaeB`\x82"  # the IEND chunk's type and its (constant) CRC


def over_limit(max_pixels: int) -> str:
  return f"over the limit of {max_pixels} pixels"


class Refusal(ValueError):
  """An image file refused before or while decoding; the message is one of this module's keys."""


class TooLarge(Refusal):
  """An image whose header declares more pixels than the limit."""


@dataclasses.dataclass(frozen=True)
class Header:
  """What steps 1-4 read from a file, and its bytes to decode."""

  format: str  # "JPEG" or "PNG"
  size: tuple[int, int]  # (width, height) as stored, before the EXIF transpose
  orientation: int  # EXIF orientation 1..8
  data: bytes  # the bytes to decode (a PNG's bad-CRC ancillary chunks dropped)

  @property
  def upright_size(self) -> tuple[int, int]:
    """(width, height) as viewers display it (after the EXIF transpose)."""
    return self.size[::-1] if transforms.EXIF_TRANSPOSES[self.orientation][0] else self.size


def declared_size(data: bytes) -> tuple[str, tuple[int, int]]:
  """Steps 1-2 without the limit: (format, (width, height)) from the header. Raises Refusal."""
  if data[:3] == JPEG_MAGIC:
    try:  # PIL's header parse reads the markers up to the first scan, no pixels
      return "JPEG", transforms.open_image(data).size
    except (OSError, ValueError, SyntaxError) as e:
      raise Refusal(f"{NOT_DECODABLE} ({one_line(e)})") from None
  if data[:8] == PNG_MAGIC:
    return "PNG", tuple(int.from_bytes(data[i : i + 4], "big") for i in (16, 20))
  raise Refusal(NOT_AN_IMAGE)


def read_header(data: bytes, max_pixels: int | None = None) -> Header:
  """Steps 1-4 in Python. Raises Refusal (TooLarge over `max_pixels`) with a one-line key."""
  kind, size = declared_size(data)
  if max_pixels is not None and size[0] * size[1] > max_pixels:
    raise TooLarge(f"{size[0]}x{size[1]} pixels, {over_limit(max_pixels)}")
  if kind == "JPEG":
    _check_jpeg(data)
  else:
    data = _check_png(data)
  return Header(kind, size, exif_orientation(data, kind == "JPEG"), data)


def _jpeg_scan(data: bytes) -> tuple[int, int]:
  """(start, end) of the last scan's entropy-coded bytes; start > end where there is none."""
  sos, eoi = data.rfind(_SOS), data.rfind(_EOI)
  length = int.from_bytes(data[sos + 2 : sos + 4], "big") if sos >= 0 else 0
  return (sos + 2 + length, eoi) if sos >= 0 and eoi > sos else (1, 0)


def _check_jpeg(data: bytes):
  start, end = _jpeg_scan(data)
  if start > end:
    raise Refusal(TRUNCATED)
  if _bad_marker(np.frombuffer(data, np.uint8, count=end - start, offset=start), np):
    raise Refusal(BAD_SCAN)


def _bad_marker(scan, ops):
  """Whether a 0xFF in entropy-coded bytes is followed by other than 0x00, RST0..7 or 0xFF fill.

  `ops` is numpy or tensorflow: the one check for both sides.
  """
  follows = scan[1:]
  allowed = (follows == 0) | (follows == 0xFF) | ((follows >= 0xD0) & (follows <= 0xD7))
  bad = (scan[:-1] == 0xFF) & ~allowed
  return bool(np.any(bad)) if ops is np else ops.reduce_any(bad)


def _check_png(data: bytes) -> bytes:
  """The chunks walked with their CRCs: a bad critical one or a missing IEND refused."""
  view, pos, dropped = memoryview(data), 8, []
  while True:
    if pos + 12 > len(data):
      raise Refusal(TRUNCATED)
    length = int.from_bytes(data[pos : pos + 4], "big")
    end = pos + 12 + length
    if end > len(data):
      raise Refusal(TRUNCATED)
    kind = bytes(view[pos + 4 : pos + 8])
    if zlib.crc32(view[pos + 4 : end - 4]) != int.from_bytes(view[end - 4 : end], "big"):
      if not kind[0] & 0x20:  # critical (upper-case first letter): libpng stops too
        raise Refusal(f"{NOT_DECODABLE} (bad CRC in the {kind.decode('latin-1')} chunk)")
      dropped.append((pos, end))
    if kind == b"IEND":
      break
    pos = end
  if _IEND not in data:  # the check TF makes
    raise Refusal(TRUNCATED)
  for start, end in reversed(dropped):
    data = data[:start] + data[end:]
  return data


def _exif_start(data: bytes, jpeg: bool) -> int:
  """Offset of the TIFF block (byte order mark) of the file's EXIF, -1 where it has none."""
  head = data[:EXIF_SEARCH]
  if jpeg:
    at = head.find(_EXIF_JPEG)
    return at + len(_EXIF_JPEG) if at >= 4 and head[at - 4 : at - 2] == _APP1 else -1
  at, idat = head.find(_EXIF_PNG), head.find(_IDAT)
  return at + len(_EXIF_PNG) if at >= 0 and (idat < 0 or at < idat) else -1


def exif_orientation(data: bytes, jpeg: bool) -> int:
  """EXIF orientation 1..8 (1 without EXIF, or with a malformed or missing tag)."""
  start = _exif_start(data, jpeg)
  if start < 0:
    return 1
  tiff = np.frombuffer(data[start : start + EXIF_BYTES].ljust(EXIF_BYTES, b"\0"), np.uint8)
  return int(_orientation(tiff.astype(np.int64), np))


def _orientation(tiff, ops):
  """The TIFF IFD0 walk, vectorised, the same ops in numpy and TF: the first 0x0112 entry's value.

  `tiff` is int64 [EXIF_BYTES] (zero-padded); `ops` is numpy or tensorflow.
  """
  size = EXIF_BYTES
  if ops is np:
    gather, clip, argmax, any_, const = np.take, np.clip, np.argmax, np.any, np.asarray
  else:
    gather, clip, any_, const = ops.gather, ops.clip_by_value, ops.reduce_any, ops.constant

    def argmax(x):
      return ops.argmax(ops.cast(x, ops.int32))

  def byte(i):
    return gather(tiff, clip(i, 0, size - 1))

  little = (byte(0) == 0x49) & (byte(1) == 0x49) & (byte(2) == 42) & (byte(3) == 0)
  big = (byte(0) == 0x4D) & (byte(1) == 0x4D) & (byte(2) == 0) & (byte(3) == 42)

  def u16(i):
    return ops.where(little, byte(i) + byte(i + 1) * 256, byte(i) * 256 + byte(i + 1))

  def u32(i):
    return ops.where(little, u16(i) + u16(i + 2) * 65536, u16(i) * 65536 + u16(i + 2))

  ifd = u32(4)
  index = const(np.arange((size - 2) // 12, dtype=np.int64))
  entry = ifd + 2 + 12 * index
  hit = (index < u16(ifd)) & (entry + 12 <= size) & (u16(entry) == _ORIENTATION_TAG)
  at = gather(entry, argmax(hit))
  value = u16(at + 8)
  found = (little | big) & any_(hit) & (u16(at + 2) == _SHORT) & (value >= 1) & (value <= 8)
  return ops.where(found, value, 1)


# ---------------------------------------------------------------- TF graph twins


def tf_format(data):
  """(is_jpeg, is_png) bool scalars of a string scalar."""
  import tensorflow as tf

  return (
      tf.strings.substr(data, 0, 3) == JPEG_MAGIC,
      tf.strings.substr(data, 0, 8) == PNG_MAGIC,
  )


def tf_size(data, is_jpeg):
  """(height, width) int64 from the header: libjpeg's header read, or the PNG IHDR."""
  import tensorflow as tf

  def jpeg():
    return tf.cast(tf.image.extract_jpeg_shape(data)[:2], tf.int64)

  def png():
    ihdr = tf.strings.substr(data, tf.minimum(16, tf.strings.length(data)), 8)
    raw = tf.cast(tf.io.decode_raw(ihdr, tf.uint8, fixed_length=8), tf.int64)
    width = ((raw[0] * 256 + raw[1]) * 256 + raw[2]) * 256 + raw[3]
    height = ((raw[4] * 256 + raw[5]) * 256 + raw[6]) * 256 + raw[7]
    return tf.stack([height, width])

  shape = tf.cond(is_jpeg, jpeg, png)
  return shape[0], shape[1]


def _tf_rfind(data, sep: bytes):
  """Offset of the last `sep` in a string scalar, -1 without one."""
  import tensorflow as tf

  parts = tf.strings.split(data, sep)
  return tf.where(
      tf.size(parts) > 1,
      tf.strings.length(data) - tf.strings.length(parts[-1]) - len(sep),
      -1,
  )


def _tf_find(data, sep: bytes):
  """Offset of the first `sep` in a string scalar, -1 without one."""
  import tensorflow as tf

  parts = tf.strings.split(data, sep, maxsplit=1)
  return tf.where(tf.size(parts) > 1, tf.strings.length(parts[0]), -1)


def tf_structure_checks(data, is_jpeg):
  """Step 3 in TF: [(ok, refusal)], bool scalars in the order `read_header` checks them."""
  import tensorflow as tf

  def jpeg_scan():
    sos, eoi = _tf_rfind(data, _SOS), _tf_rfind(data, _EOI)
    length = tf.io.decode_raw(
        tf.strings.substr(data, tf.maximum(sos, 0) + 2, 2), tf.uint8, fixed_length=2
    )
    start = sos + 2 + tf.cast(length[0], tf.int32) * 256 + tf.cast(length[1], tf.int32)
    present = (sos >= 0) & (eoi > sos)
    return tf.where(present, start, 1), tf.where(present, eoi, 0)

  # The scan is found once (two passes over the file), then read by both JPEG checks.
  start, end = tf.cond(is_jpeg, jpeg_scan, lambda: (tf.constant(1), tf.constant(0)))

  def jpeg_bad_scan():
    length = tf.maximum(end - start, 0)
    scan = tf.io.decode_raw(tf.strings.substr(data, tf.minimum(start, end), length), tf.uint8)
    return _bad_marker(scan, tf)

  truncated = tf.cond(is_jpeg, lambda: start > end, lambda: _tf_find(data, _IEND) < 0)
  bad_scan = tf.cond(is_jpeg, jpeg_bad_scan, lambda: tf.constant(False))
  return [(~truncated, TRUNCATED), (~bad_scan, BAD_SCAN)]


def tf_exif_orientation(data, is_jpeg):
  """Step 4 in TF: the EXIF orientation 1..8 of a string scalar, as `exif_orientation`."""
  import tensorflow as tf

  head = tf.strings.substr(data, 0, EXIF_SEARCH)

  def jpeg():
    at = _tf_find(head, _EXIF_JPEG)
    app1 = tf.strings.substr(head, tf.maximum(at - 4, 0), 2) == _APP1
    return tf.where((at >= 4) & app1, at + len(_EXIF_JPEG), -1)

  def png():
    at, idat = _tf_find(head, _EXIF_PNG), _tf_find(head, _IDAT)
    return tf.where((at >= 0) & ((idat < 0) | (at < idat)), at + len(_EXIF_PNG), -1)

  start = tf.cond(is_jpeg, jpeg, png)
  tiff = tf.io.decode_raw(
      tf.strings.substr(data, tf.maximum(start, 0), EXIF_BYTES), tf.uint8, fixed_length=EXIF_BYTES
  )
  value = _orientation(tf.cast(tiff, tf.int64), tf)
  return tf.cast(tf.where(start >= 0, value, 1), tf.int32)


def tf_transpose(image, orientation):
  """[H, W, C] as stored -> upright, by EXIF orientation 1..8 (int32 scalar)."""
  import tensorflow as tf

  def branch(swap, reverse_x, reverse_y):
    def turn():
      out = tf.transpose(image, [1, 0, 2]) if swap else image
      axes = [axis for axis, reverse in ((1, reverse_x), (0, reverse_y)) if reverse]
      return tf.reverse(out, axes) if axes else out

    return turn

  branches = [branch(*transforms.EXIF_TRANSPOSES[o]) for o in range(1, 9)]
  return tf.switch_case(orientation - 1, branches)


def tf_content_box(orientation, decoded, exact):
  """`transforms.content_box` in TF: decoded, exact are float32 [2] (width, height)."""
  import tensorflow as tf

  table = tf.constant([transforms.EXIF_TRANSPOSES[o] for o in range(1, 9)])
  swap, reverse_x, reverse_y = tf.unstack(tf.gather(table, orientation - 1))
  decoded = tf.where(swap, decoded[::-1], decoded)
  exact = tf.where(swap, exact[::-1], exact)
  offset = tf.where(tf.stack([reverse_x, reverse_y]), decoded - exact, 0.0)
  return offset, exact
