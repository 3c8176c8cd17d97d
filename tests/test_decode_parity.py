"""One decode: `images.load_image_bytes` (PIL) and the SavedModel's `tf_decode_resize` (TF ops).

Every file is made here with PIL/numpy. For each: both sides give uint8
pixels within one grey level, or both refuse; where the refusal is one of
`inference.decode`'s checks, with the same one-line key (TF's assertion
carries it). The TF side runs as a graph (tf.function), as in the SavedModel.
"""

import io
import re
import struct
import zlib

import numpy as np
import pytest
from PIL import Image, ImageOps

from fashionnet_jax.data import transforms
from fashionnet_jax.inference import decode
from fashionnet_jax.inference.images import ImageError, ImageTooLargeError, load_image_bytes

SIZE = 48
LIMIT = 10_000_000


@pytest.fixture(scope="module")
def tf_decode():
  import tensorflow as tf

  from fashionnet_jax.export.savedmodel import tf_decode_resize

  fn = tf.function(
      lambda data: tf_decode_resize(data, SIZE, LIMIT),
      input_signature=[tf.TensorSpec([], tf.string)],
  )
  return lambda data: fn(tf.constant(data)).numpy()


def _photo(height=61, width=93):
  """A picture with no symmetry: each turn or flip of it is a different array."""
  y, x = np.mgrid[0:height, 0:width]
  return np.stack([x * 255 // width, y * 255 // height, (x * 7 + y * 3) % 256], -1).astype(np.uint8)


def _encode(img, fmt, **kw) -> bytes:
  out = io.BytesIO()
  img.save(out, fmt, **kw)
  return out.getvalue()


def _chunk(kind: bytes, body: bytes) -> bytes:
  return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _png_with(data: bytes, kind: bytes, body: bytes) -> bytes:
  """`data` (a PNG) with one more chunk right after IHDR."""
  return data[:33] + _chunk(kind, body) + data[33:]


def _tiff_orientation(orientation: int, little: bool) -> bytes:
  """A TIFF block with IFD0 = [an unrelated tag, Orientation]."""
  order = "<" if little else ">"
  head = (b"II*\0" if little else b"MM\0*") + struct.pack(order + "I", 8)
  entries = struct.pack(order + "HHI4s", 0x010F, 2, 4, b"abc\0")  # Make
  entries += struct.pack(order + "HHIH2s", 0x0112, 3, 1, orientation, b"\0\0")
  return head + struct.pack(order + "H", 2) + entries + b"\0\0\0\0"


def _both(data, tf_decode, max_pixels=LIMIT):
  """(PIL pixels or refusal, TF pixels or refusal); a refusal is its message."""
  import tensorflow as tf

  try:
    pil = load_image_bytes(data, "f", SIZE, max_pixels=max_pixels).image.astype(int)
  except ImageError as e:
    pil = str(e)
  try:
    graph = tf_decode(data).astype(int)
  except tf.errors.InvalidArgumentError as e:
    graph = str(e)
  return pil, graph


def _same_pixels(data, tf_decode):
  pil, graph = _both(data, tf_decode)
  assert not isinstance(pil, str), pil
  assert not isinstance(graph, str), graph
  assert np.abs(pil - graph).max() <= 1
  return pil


def _same_refusal(data, tf_decode, key, max_pixels=LIMIT):
  pil, graph = _both(data, tf_decode, max_pixels)
  assert isinstance(pil, str) and isinstance(graph, str), (pil, graph)
  assert pil.startswith("f: ") and key in pil and "\n" not in pil, pil
  assert re.search(re.escape(f"[{key}]"), graph), graph


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_exif_orientations_turn_the_same_way_on_both_sides(orientation, fmt, tf_decode):
  photo = Image.fromarray(_photo())
  if fmt == "JPEG":
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = _encode(photo, "JPEG", quality=95, exif=exif)
  else:  # an eXIf chunk before IDAT, big-endian TIFF
    data = _png_with(_encode(photo, "PNG"), b"eXIf", _tiff_orientation(orientation, False))
  pil = _same_pixels(data, tf_decode)
  upright = ImageOps.exif_transpose(Image.open(io.BytesIO(data)).convert("RGB"))
  loaded = load_image_bytes(data, "f", SIZE)
  assert loaded.size == upright.size
  reference = np.asarray(upright.resize((SIZE, SIZE), Image.BILINEAR), int)
  assert np.abs(pil - reference).mean() < 2  # upright as PIL's exif_transpose turns it


@pytest.mark.parametrize("orientation", [1, 2, 6, 7])
def test_rotated_jpeg_decodes_at_draft_scale(orientation):
  """A large rotated photo: decoded at 1/8 (draft), turned, and the same picture as at full size."""
  photo = np.asarray(Image.fromarray(_photo()).resize((1000, 700), Image.BILINEAR))
  exif = Image.Exif()
  exif[0x0112] = orientation
  data = _encode(Image.fromarray(photo), "JPEG", quality=95, exif=exif)
  fast = load_image_bytes(data, "f", 64).image.astype(int)
  upright = ImageOps.exif_transpose(Image.open(io.BytesIO(data)).convert("RGB"))
  full = transforms.decode_crop_resize(np.asarray(upright), (0, 0, 1, 1), 64).astype(int)
  assert np.abs(fast - full).mean() < 3  # same geometry: no half-block shift
  img = transforms.open_image(data)
  assert img.draft("RGB", (125, 87)) is not None  # what decode_crop_resize asks for: 1/8


@pytest.mark.parametrize("orientation", [1, 3, 6, 8])
def test_both_sides_agree_at_the_full_size_input_on_a_large_photo(orientation):
  """The full-size configs' 224 px input: a 1000x700 photo decodes at 1/2 scale there (1/8
  at the tests' 48 px), rotated or not, and TF gives PIL's pixels within one grey level."""
  import tensorflow as tf

  from fashionnet_jax.export.savedmodel import tf_decode_resize

  photo = np.asarray(Image.fromarray(_photo()).resize((1000, 700), Image.BILINEAR))
  exif = Image.Exif()
  exif[0x0112] = orientation
  data = _encode(Image.fromarray(photo), "JPEG", quality=95, exif=exif)
  pil = load_image_bytes(data, "f", 224, max_pixels=LIMIT).image.astype(int)
  graph = tf_decode_resize(tf.constant(data), 224, LIMIT).numpy().astype(int)
  assert pil.shape == graph.shape == (224, 224, 3)
  assert np.abs(pil - graph).max() <= 1
  # What decode_crop_resize asks of a 1000x700 JPEG for 224 px: 1/2 scale (500 wide).
  assert transforms.open_image(data).draft("RGB", (320, 224))[1][2] == 500


def _greyscale_photo(bits):
  grey = _photo()[..., 0].astype(np.uint32)
  return (grey * 257 + 99).astype(np.uint16) if bits == 16 else grey.astype(np.uint8)


def test_modes_give_the_same_pixels(tf_decode):
  photo = _photo()
  alpha = np.concatenate([photo, photo[..., :1]], -1)
  palette = Image.fromarray(photo).quantize(16)
  cases = {
      "grey PNG": _encode(Image.fromarray(_greyscale_photo(8)), "PNG"),
      "1-bit PNG": _encode(Image.fromarray(_greyscale_photo(8) > 90), "PNG"),
      "grey JPEG": _encode(Image.fromarray(_greyscale_photo(8)), "JPEG"),
      "grey+alpha PNG": _encode(Image.fromarray(alpha[..., 1::2].copy(), "LA"), "PNG"),
      "RGBA PNG": _encode(Image.fromarray(alpha), "PNG"),
      "palette+transparency PNG": _encode(palette, "PNG", transparency=3),
      "CMYK JPEG": _encode(Image.fromarray(photo).convert("CMYK"), "JPEG", quality=95),
      "ancillary chunk with a bad CRC": _png_with(
          _encode(Image.fromarray(photo), "PNG"), b"tEXt", b"k\0v"
      ).replace(zlib.crc32(b"tEXtk\0v").to_bytes(4, "big"), b"\0\0\0\0"),
  }
  for name, data in cases.items():
    pil = _same_pixels(data, tf_decode)
    assert pil.std() > 20, name  # a picture, not a flat field


def test_16_bit_greyscale_keeps_its_picture(tf_decode):
  """PIL's own I;16 -> RGB clips to white; both sides now keep the high byte, as libpng does."""
  grey = _greyscale_photo(16)
  data = _encode(Image.fromarray(grey), "PNG")
  assert Image.open(io.BytesIO(data)).mode == "I;16"
  pil = _same_pixels(data, tf_decode)
  expected = np.asarray(Image.fromarray((grey >> 8).astype(np.uint8)).resize((SIZE, SIZE)), int)
  np.testing.assert_allclose(pil, np.repeat(expected[..., None], 3, -1), atol=1)


def test_greyscale_training_decode_is_unchanged():
  """A grey JPEG now resized as one channel: the pixels of the old convert("RGB")-then-resize."""
  data = _encode(Image.fromarray(_greyscale_photo(8)).resize((400, 300)), "JPEG")
  crop = (0.1, 0.05, 0.8, 0.9)
  for size in (32, 100):
    img = Image.open(io.BytesIO(data))
    width, height = img.size
    shrink = min((crop[2] - crop[0]) * width, (crop[3] - crop[1]) * height) / size
    scale = 1.0
    if shrink >= 2:
      scale = width / img.draft("RGB", (int(width / shrink), int(height / shrink)))[1][2]
    box = tuple(c * (width if i % 2 == 0 else height) / scale for i, c in enumerate(crop))
    old = np.asarray(img.convert("RGB").resize((size, size), Image.BILINEAR, box=box))
    np.testing.assert_array_equal(transforms.decode_crop_resize(data, crop, size), old)


def _jpeg():
  return _encode(Image.fromarray(_photo()), "JPEG", quality=90)


def _scan_start(data):
  sos = data.rfind(b"\xff\xda")
  return sos + 2 + int.from_bytes(data[sos + 2 : sos + 4], "big")


def test_broken_files_are_refused_alike(tf_decode):
  jpeg, png = _jpeg(), _encode(Image.fromarray(_photo()), "PNG")
  middle = (_scan_start(jpeg) + len(jpeg)) // 2
  marker = jpeg[:middle] + b"\xff\xc4\x12\x34" + jpeg[middle + 4 :]  # a marker inside the scan
  cases = {
      decode.NOT_AN_IMAGE: [b"GIF89a" + bytes(40), b"this is not a picture\n"],
      decode.TRUNCATED: [jpeg[: len(jpeg) // 2], png[: len(png) // 2], png[:-12]],
      decode.BAD_SCAN: [marker],
  }
  for key, files in cases.items():
    for data in files:
      _same_refusal(data, tf_decode, key)


def test_damage_only_a_decoder_sees_is_refused_by_both(tf_decode):
  """A bad IDAT CRC or a broken zlib stream: libpng's own error in TF, ours in PIL's side."""
  png = _encode(Image.fromarray(_photo()), "PNG")
  idat = png.index(b"IDAT")
  length = int.from_bytes(png[idat - 4 : idat], "big")
  crc = idat + 4 + length
  bad_crc = png[:crc] + bytes([png[crc] ^ 1]) + png[crc + 1 :]
  body = bytearray(png[idat + 4 : crc])
  body[length // 2] ^= 0x55
  bad_data = png[: idat - 4] + _chunk(b"IDAT", bytes(body)) + png[crc + 4 :]
  for data, pil_key in ((bad_crc, "bad CRC in the IDAT chunk"), (bad_data, decode.NOT_DECODABLE)):
    pil, graph = _both(data, tf_decode)
    assert isinstance(pil, str) and pil_key in pil, pil
    assert isinstance(graph, str) and "Invalid PNG data" in graph, graph


def test_corrupt_entropy_data_that_parses_is_not_detected(tf_decode):
  """Overwritten scan bytes with no marker in them: libjpeg only warns, so both decode (alike)."""
  jpeg = _jpeg()
  middle = (_scan_start(jpeg) + len(jpeg)) // 2
  damaged = jpeg[:middle] + bytes([0x5A] * 24) + jpeg[middle + 24 :]
  pil = _same_pixels(damaged, tf_decode)
  assert np.abs(pil - load_image_bytes(jpeg, "f", SIZE).image.astype(int)).max() > 20


def test_the_pixel_limit_is_ours_and_read_from_the_header(tf_decode, monkeypatch):
  bomb = _encode(Image.new("1", (4000, 3000)), "PNG")  # 12 M pixels in a few KB
  _same_refusal(bomb, tf_decode, decode.over_limit(LIMIT))
  with pytest.raises(ImageTooLargeError, match=r"f: 4000x3000 pixels, over the limit of 10000000"):
    load_image_bytes(bomb, "f", SIZE, max_pixels=LIMIT)
  jpeg = _encode(Image.new("RGB", (4000, 3000)), "JPEG")
  with pytest.raises(ImageTooLargeError, match="over the limit of 10000000 pixels"):
    load_image_bytes(jpeg, "f", SIZE, max_pixels=LIMIT)
  # PIL's own limit (a DecompressionBombError at twice it) no longer applies: ours does.
  monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1_000_000)
  assert load_image_bytes(bomb, "f", SIZE, max_pixels=20_000_000).size == (4000, 3000)
  assert load_image_bytes(jpeg, "f", SIZE, max_pixels=None).size == (4000, 3000)
  with pytest.raises(ImageTooLargeError):
    load_image_bytes(bomb, "f", SIZE, max_pixels=11_999_999)


def test_orientation_parser_reads_only_a_well_formed_tag():
  png = _encode(Image.fromarray(_photo()), "PNG")
  for little in (True, False):
    assert (
        decode.exif_orientation(_png_with(png, b"eXIf", _tiff_orientation(6, little)), False) == 6
    )
  for tiff in (
      _tiff_orientation(9, True),  # out of range
      _tiff_orientation(6, True).replace(b"\x12\x01\x03\x00", b"\x12\x01\x04\x00"),  # not SHORT
      b"XX*\0" + _tiff_orientation(6, True)[4:],  # no byte order
      _tiff_orientation(6, True)[:12],  # cut short
  ):
    assert decode.exif_orientation(_png_with(png, b"eXIf", tiff), False) == 1
  after_idat = png[:-12] + _chunk(b"eXIf", _tiff_orientation(6, True)) + png[-12:]
  assert decode.exif_orientation(after_idat, False) == 1  # only an eXIf before IDAT counts
