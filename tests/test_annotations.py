"""Parsers of DeepFashion list_*.txt files, on lines in the released formats (docs/deepfashion.md)."""

import io
import zipfile

import numpy as np
from PIL import Image
import pytest

from fashionnet_jax import schema
from fashionnet_jax.data import annotations as anno
from fashionnet_jax.data.annotations import BadExampleError
from fashionnet_jax.data.annotations import DeepFashionFormatError
from fashionnet_jax.data.annotations import ListFile
from fashionnet_jax.data.images import ImageStore

BLOUSE = "img/Sheer_Pleated-Front_Blouse/img_00000001.jpg"


def write(path, text, crlf=False):
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_bytes(text.replace("\n", "\r\n" if crlf else "\n").encode())
  return path


def rows(path, **kw):
  listing = ListFile(path, **kw)
  return listing.name, list(listing)


@pytest.mark.parametrize("crlf", [False, True])
def test_list_file_frame_and_attribute_names_with_spaces(tmp_path, crlf):
  path = write(
      tmp_path / "list_attr_cloth.txt",
      "3\nattribute_name  attribute_type\na-line                       3\n"
      "abstract                     1\nabstract chevron print       1\n\n",
      crlf,
  )
  assert anno.read_names(path) == [("a-line", 3), ("abstract", 1), ("abstract chevron print", 1)]
  _, got = rows(path)
  assert [r.lineno for r in got] == [3, 4, 5]


def test_count_line_disagreeing_names_file_and_line(tmp_path):
  path = write(
      tmp_path / "list_category_img.txt", f"3\nimage_name  category_label\n{BLOUSE}     3\n"
  )
  with pytest.raises(
      DeepFashionFormatError, match=r"list_category_img.txt:1: count line says 3 .* has 1"
  ):
    rows(path)


def test_bad_count_line(tmp_path):
  path = write(tmp_path / "list_bbox.txt", "many\nimage_name x_1\n")
  with pytest.raises(DeepFashionFormatError, match=r"list_bbox.txt:1: expected"):
    rows(path)


def test_item_list_has_no_header(tmp_path):
  path = write(tmp_path / "list_item_inshop.txt", "2\nid_00000001\nid_00000007\n", crlf=True)
  assert anno.read_item_ids(path) == ["id_00000001", "id_00000007"]


def test_bbox_zero_padded_and_normalised():
  row = anno.Row(3, f"{BLOUSE}                        072 079 232 273".encode())
  tokens = anno.split_row("f", row, 5)
  box = anno.parse_bbox("f", row, tokens[1:])
  assert box == (72, 79, 232, 273)
  ymin, xmin, ymax, xmax = anno.normalized_bbox(box, width=300, height=300)
  np.testing.assert_allclose([ymin, xmin, ymax, xmax], [79 / 300, 72 / 300, 273 / 300, 232 / 300])


def test_bbox_inverted_is_a_bad_example():
  row = anno.Row(7, b"img/a.jpg 100 079 050 273")
  with pytest.raises(BadExampleError, match=r"^f:7: bbox has x_1 > x_2"):
    anno.parse_bbox("f", row, anno.split_row("f", row)[1:])


def test_upper_body_fifth_triple_is_left_hem_category_benchmark():
  # The Category benchmark: no variation_type column; 6 triples for upper body.
  line = (
      f"{BLOUSE}                         1  0 146 102  0 173 095  0 094 242"
      "  0 205 255  1 136 229  2 177 232"
  )
  row = anno.Row(3, line.encode())
  marks = anno.parse_landmarks("f", row, anno.split_row("f", row), has_variation_type=False)
  assert marks.clothes_type == schema.UPPER and marks.variation_type is None
  np.testing.assert_array_equal(marks.visibility, [0, 0, 0, 0, 3, 3, 1, 2])
  np.testing.assert_array_equal(marks.xy[6], [136, 229])  # left hem
  np.testing.assert_array_equal(marks.xy[7], [177, 232])  # right hem
  np.testing.assert_array_equal(marks.xy[4:6], 0)
  xy = anno.normalized_landmarks(marks, width=300, height=200)
  np.testing.assert_allclose(xy[0], [146 / 300, 102 / 200])


@pytest.mark.parametrize("padded", [False, True])
def test_lower_body_slots_with_and_without_padding(padded):
  triples = "0 010 020  1 030 040  0 050 060  2 070 080"
  if padded:  # FLD pads to 8; padding's visibility digit is not a landmark.
    triples += "  0 000 000  1 000 000  0 000 000  0 000 000"
  row = anno.Row(9, f"img/img_00000001.jpg  2  3  {triples}".encode())
  marks = anno.parse_landmarks("f", row, anno.split_row("f", row), has_variation_type=True)
  assert (marks.clothes_type, marks.variation_type) == (schema.LOWER, 3)
  np.testing.assert_array_equal(marks.visibility, [3, 3, 3, 3, 0, 1, 0, 2])
  np.testing.assert_array_equal(marks.xy[4], [10, 20])
  np.testing.assert_array_equal(marks.xy[7], [70, 80])
  np.testing.assert_array_equal(marks.xy[:4], 0)


def test_full_body_uses_all_slots():
  triples = "  ".join(f"0 {10 * k:03d} {10 * k + 1:03d}" for k in range(8))
  row = anno.Row(4, f"img/a/comsumer_01.jpg 3 1 {triples}".encode())
  marks = anno.parse_landmarks("f", row, anno.split_row("f", row), has_variation_type=True)
  np.testing.assert_array_equal(marks.visibility, 0)
  np.testing.assert_array_equal(marks.xy[:, 0], np.arange(8) * 10)


@pytest.mark.parametrize(
    "line,match",
    [
        ("img/a.jpg 1 0 1 2 0 3 4", r"f:5: clothes_type 1 needs 6 \(or 8 padded\)"),
        ("img/a.jpg 4 0 1 2", r"f:5: clothes_type must be one of"),
        ("img/a.jpg 2 0 1 2 0 3 4 0 5 6 7 7 8", r"f:5: visibility of landmark 4"),
        ("img/a.jpg 2 0 1 2 0 3 4 0 5 6 1 x 8", r"f:5: x of landmark 4 is not an"),
    ],
)
def test_malformed_landmark_rows(line, match):
  row = anno.Row(5, line.encode())
  with pytest.raises(BadExampleError, match=match):
    anno.parse_landmarks("f", row, anno.split_row("f", row), has_variation_type=False)


def test_attribute_labels_stream_as_int8():
  values = np.array([1, -1, 0] * 333 + [-1], np.int8)
  line = BLOUSE + "   " + " ".join(f"{v:2d}" for v in values)
  got = anno.parse_attributes("f", anno.Row(3, line.encode()), 1000)
  assert got.dtype == np.int8
  np.testing.assert_array_equal(got, values)


@pytest.mark.parametrize(
    "tail,match",
    [
        (" 1 -1", r"f:8: expected 1000 attribute labels, got 2"),
        (" 1" * 999 + " 2", r"f:8: attribute labels must be 1, -1 or 0, got '2'"),
        (" 1" * 999 + " -11", r"got '-11'"),
    ],
)
def test_bad_attribute_rows(tail, match):
  with pytest.raises(BadExampleError, match=match):
    anno.parse_attributes("f", anno.Row(8, (BLOUSE + tail).encode()), 1000)


def test_wrong_column_count_names_file_line_and_columns():
  row = anno.Row(12, b"img/a.jpg 072 079 232")
  with pytest.raises(BadExampleError, match=r"^list_bbox.txt:12: expected 5"):
    anno.split_row("list_bbox.txt", row, 5, "image_name x_1 y_1 x_2 y_2")


def test_image_name_escaping_folder():
  with pytest.raises(BadExampleError, match=r"f:3: image name '../x.jpg'"):
    anno.image_name("f", anno.Row(3, b"../x.jpg 1"))


def test_resume_from_position_reads_the_same_rows(tmp_path):
  body = "".join(f"img/comsumer_{i:02d}.jpg   {i:03d}\n" for i in range(7))
  path = write(tmp_path / "l.txt", f"7\nimage_name  x\n{body}", crlf=True)
  listing = ListFile(path)
  pairs = list(listing.rows_with_positions())
  again = list(listing.rows_from(pairs[3][1], 3))
  assert again == [r for r, _ in pairs[3:6]]


# ---------------------------------------------------------------- images


def _jpeg(w=20, h=10):
  buf = io.BytesIO()
  Image.new("RGB", (w, h), (200, 30, 30)).save(buf, format="JPEG")
  return buf.getvalue()


def test_image_store_zip_random_access_and_folder(tmp_path):
  (tmp_path / "z").mkdir()
  with zipfile.ZipFile(tmp_path / "z/img.zip", "w") as z:
    z.writestr("img/A/img_00000001.jpg", _jpeg(20, 10))
  data, w, h = ImageStore(tmp_path / "z").read("img/A/img_00000001.jpg", "f:3")
  assert (w, h) == (20, 10) and data == _jpeg(20, 10)
  folder = tmp_path / "d/img/B"
  folder.mkdir(parents=True)
  (folder / "x.jpg").write_bytes(_jpeg(7, 9))
  assert ImageStore(tmp_path / "d").read("img/B/x.jpg", "f:3")[1:] == (7, 9)


def test_missing_and_undecodable_images(tmp_path):
  (tmp_path / "z").mkdir()
  with zipfile.ZipFile(tmp_path / "z/img.zip", "w") as z:
    z.writestr("img/bad.jpg", _jpeg()[:60])
  store = ImageStore(tmp_path / "z")
  with pytest.raises(
      BadExampleError, match=r"^bbox.txt:4: image img/no.jpg not" r" found in .*img.zip"
  ):
    store.read("img/no.jpg", "bbox.txt:4")
  with pytest.raises(
      BadExampleError, match=r"^bbox.txt:5: image img/bad.jpg" r" in .*img.zip cannot be decoded"
  ):
    store.read("img/bad.jpg", "bbox.txt:5")


def test_zip_member_escaping_folder(tmp_path):
  (tmp_path / "z").mkdir()
  with zipfile.ZipFile(tmp_path / "z/img.zip", "w") as z:
    z.writestr("img/ok.jpg", _jpeg())
    z.writestr("../evil.jpg", _jpeg())
  with pytest.raises(DeepFashionFormatError, match=r"img.zip: member '../evil.jpg' escapes"):
    ImageStore(tmp_path / "z").read("img/ok.jpg", "f:3")


def test_encrypted_zip_is_refused(tmp_path):
  (tmp_path / "z").mkdir()
  with zipfile.ZipFile(tmp_path / "z/img.zip", "w") as z:
    z.writestr("img/ok.jpg", _jpeg())
  # zipfile cannot write encrypted members: set the encryption flag bit
  # (general purpose bit 0) in the local and central headers.
  raw = bytearray((tmp_path / "z/img.zip").read_bytes())
  for sig, at in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
    i = raw.index(sig)
    raw[i + at] |= 1
  (tmp_path / "z/img.zip").write_bytes(bytes(raw))
  with pytest.raises(
      DeepFashionFormatError, match=r"img.zip: member 'img/ok.jpg' is encrypted; unzip"
  ):
    ImageStore(tmp_path / "z").read("img/ok.jpg", "f:3")


def test_no_images_at_all(tmp_path):
  with pytest.raises(DeepFashionFormatError, match=r"neither img/ nor img.zip"):
    ImageStore(tmp_path)
