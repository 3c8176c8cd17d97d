"""Streaming parsers of DeepFashion's `list_*.txt` annotation files.

Every file has the same frame: line 1 the number of records, line 2 the
column names, data from line 3, columns separated by runs of spaces, image
names padded with spaces, pixel values zero-padded (`072`), and `\\r\\n` in
some downloads (docs/deepfashion.md). `ListFile` streams that
frame line by line (bytes, so that a Beam worker can seek to a chunk) and
checks the count line at the end; the `parse_*` functions turn one row into
values. Nothing here holds a whole file in memory.

Errors are one line, `file:line: what is wrong`: `DeepFashionFormatError`
for problems of a whole file (count line, files that disagree), and its
subclass `BadExampleError` for a problem confined to one image (a malformed
row, a missing image), which a build may skip when asked to.
"""

from __future__ import annotations

import dataclasses
import os
from typing import BinaryIO, Iterator, NamedTuple

from etils import epath
import numpy as np

from fashionnet_jax.errors import FashionNetError
from fashionnet_jax.schema import NUM_LANDMARKS, SLOTS_BY_CLOTHES_TYPE, UNUSED


class DeepFashionFormatError(FashionNetError, ValueError):
  """An annotation file, zip or image that is not as DeepFashion releases it."""


class BadExampleError(DeepFashionFormatError):
  """A problem confined to one image; skippable with `skip_bad_examples`."""


def where(path, lineno: int | None = None) -> str:
  """`file:line` (or just the file) for error messages."""
  return f"{path}:{lineno}" if lineno is not None else f"{path}"


class Row(NamedTuple):
  """One data line: its 1-based line number and its bytes without the EOL."""

  lineno: int
  text: bytes


@dataclasses.dataclass(frozen=True)
class Position:
  """Where to resume reading a file: byte offset and the line number there."""

  offset: int
  lineno: int


class ListFile:
  """Streams the data rows of one `list_*.txt` and checks its count line.

  `has_header=False` is for the item lists (count, then one id per line).
  Iterating from the start checks that the count on line 1 matches the rows;
  `rows_from(position, n)` reads `n` rows from a saved position (Beam chunks).
  """

  def __init__(self, path: epath.PathLike, *, has_header: bool = True):
    self.path = epath.Path(path)
    self.has_header = has_header
    self.name = os.fspath(self.path)

  def _open(self) -> BinaryIO:
    if not self.path.exists():
      raise DeepFashionFormatError(f"{self.name}: file not found")
    return self.path.open("rb")

  def _count(self, line: bytes) -> int:
    try:
      return int(line.strip())
    except ValueError:
      raise DeepFashionFormatError(
          f"{where(self.name, 1)}: expected the number of records, got" f" {_show(line)}"
      ) from None

  def __iter__(self) -> Iterator[Row]:
    """Yields the rows in order, then checks the count line (line 1)."""
    for row, _ in self.rows_with_positions():
      yield row

  def rows_with_positions(self) -> Iterator[tuple[Row, Position]]:
    """Like iteration, with the Position each row starts at."""
    with self._open() as f:
      first = f.readline()
      if not first:
        raise DeepFashionFormatError(f"{where(self.name, 1)}: empty file")
      count = self._count(first)
      offset, lineno = len(first), 1
      if self.has_header:
        header = f.readline()
        offset, lineno = offset + len(header), 2
        if not header.strip():
          raise DeepFashionFormatError(f"{where(self.name, 2)}: expected the column names")
      rows = 0
      for raw in f:
        lineno += 1
        position = Position(offset, lineno)
        offset += len(raw)
        text = raw.strip()
        if not text:  # Trailing blank lines are not records.
          continue
        rows += 1
        yield Row(lineno, text), position
    if rows != count:
      raise DeepFashionFormatError(
          f"{where(self.name, 1)}: count line says {count} records but the" f" file has {rows}"
      )

  def rows_from(self, position: Position, num_rows: int) -> Iterator[Row]:
    """Reads `num_rows` non-blank rows starting at `position` (no count check)."""
    with self._open() as f:
      f.seek(position.offset)
      lineno, rows = position.lineno - 1, 0
      while rows < num_rows:
        raw = f.readline()
        if not raw:
          raise DeepFashionFormatError(f"{where(self.name, lineno)}: file ended inside a chunk")
        lineno += 1
        text = raw.strip()
        if text:
          rows += 1
          yield Row(lineno, text)


def _show(text: bytes, limit: int = 60) -> str:
  """A row shortened for an error message."""
  s = text.strip().decode("utf-8", "replace")
  return repr(s if len(s) <= limit else s[:limit] + "...")


def image_name(path: str, row: Row) -> str:
  """The first column (the image name), checked to be a safe relative path."""
  name = row.text.split(None, 1)[0].decode("utf-8", "replace")
  parts = name.replace("\\", "/").split("/")
  if name.startswith(("/", "\\")) or ".." in parts or ":" in parts[0]:
    raise BadExampleError(
        f"{where(path, row.lineno)}: image name {name!r} escapes the image" " folder"
    )
  return name


def split_row(path: str, row: Row, num_columns: int | None = None, what: str = "") -> list[str]:
  """Splits a row on runs of whitespace; checks the column count if given."""
  try:
    tokens = row.text.decode("ascii").split()
  except UnicodeDecodeError:
    raise BadExampleError(
        f"{where(path, row.lineno)}: non-ASCII bytes in {_show(row.text)}"
    ) from None
  if num_columns is not None and len(tokens) != num_columns:
    raise BadExampleError(
        f"{where(path, row.lineno)}: expected {num_columns} columns"
        f" ({what}), got {len(tokens)}: {_show(row.text)}"
    )
  return tokens


def to_int(
    path: str, row: Row, token: str, what: str, allowed: tuple[int, ...] | None = None
) -> int:
  """Parses a (possibly zero-padded) integer column."""
  try:
    value = int(token)
  except ValueError:
    raise BadExampleError(
        f"{where(path, row.lineno)}: {what} is not an integer: {token!r}"
    ) from None
  if allowed is not None and value not in allowed:
    raise BadExampleError(
        f"{where(path, row.lineno)}: {what} must be one of {allowed}, got" f" {value}"
    )
  return value


# ----------------------------------------------------------------- name lists


def read_names(path: epath.PathLike) -> list[tuple[str, int]]:
  """`name  type` rows (categories, attributes): names may hold spaces."""
  listing = ListFile(path)
  out = []
  for row in listing:
    parts = row.text.decode("utf-8", "replace").rsplit(None, 1)
    if len(parts) != 2:
      raise DeepFashionFormatError(
          f"{where(listing.name, row.lineno)}: expected `name type`, got" f" {_show(row.text)}"
      )
    try:
      out.append((parts[0].strip(), int(parts[1])))
    except ValueError:
      raise DeepFashionFormatError(
          f"{where(listing.name, row.lineno)}: type is not an integer:" f" {parts[1]!r}"
      ) from None
  return out


def read_item_ids(path: epath.PathLike) -> list[str]:
  """`list_item_*.txt`: the count, then one item id per line."""
  listing = ListFile(path, has_header=False)
  ids = [split_row(listing.name, row, 1, "item_id")[0] for row in listing]
  return ids


# ------------------------------------------------------------ per-row parsers


_INVALID = 2
_ATTRIBUTE_CODES = np.full(256, _INVALID, np.int8)  # byte → label
_ATTRIBUTE_CODES[[0, ord("0"), ord("1")]] = [-1, 0, 1]


def parse_attributes(path: str, row: Row, num_attributes: int) -> np.ndarray:
  """`image_name` then `num_attributes` values in {1, -1, 0} → int8 array.

  The real file is 289,222 rows × 1000 values: tokens are mapped to bytes
  and decoded with numpy rather than built as 1000 Python ints per row.
  """
  parts = row.text.split(None, 1)
  rest = parts[1] if len(parts) == 2 else b""
  # One byte per valid token: "-1" becomes NUL (never in a text file).
  tokens = rest.replace(b"-1", b"\0").split() if b"\0" not in rest else []
  if len(tokens) != num_attributes:
    raise BadExampleError(
        f"{where(path, row.lineno)}: expected {num_attributes} attribute"
        f" labels, got {len(rest.split())}"
    )
  joined = b"".join(tokens)
  values = _ATTRIBUTE_CODES[np.frombuffer(joined, dtype=np.uint8)]
  if len(joined) != num_attributes or (values == _INVALID).any():
    bad = next(t for t in rest.split() if t not in (b"1", b"-1", b"0"))
    raise BadExampleError(
        f"{where(path, row.lineno)}: attribute labels must be 1, -1 or 0, got"
        f" {bad.decode('utf-8', 'replace')!r}"
    )
  return values


def parse_bbox(path: str, row: Row, tokens: list[str]) -> tuple[int, ...]:
  """`x_1 y_1 x_2 y_2` (pixels, upper-left and lower-right)."""
  box = tuple(to_int(path, row, t, n) for t, n in zip(tokens, ("x_1", "y_1", "x_2", "y_2")))
  if box[0] > box[2] or box[1] > box[3]:
    raise BadExampleError(f"{where(path, row.lineno)}: bbox has x_1 > x_2 or y_1 > y_2: {box}")
  return box


@dataclasses.dataclass(frozen=True)
class Landmarks:
  """One landmark row mapped to the 8 slots (pixel coordinates)."""

  clothes_type: int  # 1 upper, 2 lower, 3 full.
  variation_type: int | None  # None in the Category benchmark.
  xy: np.ndarray  # float32 [8, 2], pixels; 0 in unused slots.
  visibility: np.ndarray  # int8 [8]; 3 in unused slots.


def parse_landmarks(
    path: str, row: Row, tokens: list[str], *, has_variation_type: bool
) -> Landmarks:
  """`image_name clothes_type [variation_type] (vis x y)*` → 8 slots.

  Rows hold the type's 6/4/8 triples, or are padded to 8 with `0 000 000`:
  padding is not a landmark, whatever its visibility digit says.
  """
  head = 3 if has_variation_type else 2
  if len(tokens) < head:
    raise BadExampleError(f"{where(path, row.lineno)}: landmark row too short: {_show(row.text)}")
  clothes_type = to_int(path, row, tokens[1], "clothes_type", (1, 2, 3))
  variation_type = to_int(path, row, tokens[2], "variation_type") if has_variation_type else None
  values = tokens[head:]
  slots = SLOTS_BY_CLOTHES_TYPE[clothes_type]
  if len(values) % 3 or len(values) // 3 not in (len(slots), NUM_LANDMARKS):
    raise BadExampleError(
        f"{where(path, row.lineno)}: clothes_type {clothes_type} needs"
        f" {len(slots)} (or 8 padded) `vis x y` triples after"
        f" {head} columns, got {len(values)} values"
    )
  xy = np.zeros((NUM_LANDMARKS, 2), np.float32)
  visibility = np.full((NUM_LANDMARKS,), UNUSED, np.int8)
  for i, slot in enumerate(slots):
    vis, x, y = values[3 * i : 3 * i + 3]
    visibility[slot] = to_int(path, row, vis, f"visibility of landmark {i+1}", (0, 1, 2))
    xy[slot] = (
        to_int(path, row, x, f"x of landmark {i+1}"),
        to_int(path, row, y, f"y of landmark {i+1}"),
    )
  return Landmarks(clothes_type, variation_type, xy, visibility)


def normalized_landmarks(landmarks: Landmarks, width: int, height: int) -> np.ndarray:
  """(x, y) divided by the image width and height; unused slots stay 0."""
  return (landmarks.xy / np.array([width, height], np.float32)).astype(np.float32)


def normalized_bbox(
    box: tuple[int, ...], width: int, height: int
) -> tuple[float, float, float, float]:
  """Pixel `x_1 y_1 x_2 y_2` → (ymin, xmin, ymax, xmax) in [0, 1].

  Clipped to the image: a few released boxes end a pixel past the border.
  """
  x1, y1, x2, y2 = box
  clip = lambda v: float(min(max(v, 0.0), 1.0))  # pylint: disable=unnecessary-lambda-assignment
  return (clip(y1 / height), clip(x1 / width), clip(y2 / height), clip(x2 / width))
