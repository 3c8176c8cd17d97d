"""Reads DeepFashion images from `Img/img.zip` or the extracted `Img/img/`.

Annotation files name images `img/<...>.jpg`, relative to `Img/`. The zip is
read by random access through its central directory (one member at a time,
never extracted); every member name is checked once when the zip is opened,
so a member that would escape its folder (`..`, absolute path) or an
encrypted zip (DeepFashion ships some behind a password) is a clear error
naming the zip and the member. Images are decoded once to check them and to
read their size; the bytes are returned as released (no re-encoding).
"""

from __future__ import annotations

import io
import os
import threading
import zipfile

from etils import epath
from PIL import Image

from fashionnet_jax.data.annotations import BadExampleError
from fashionnet_jax.data.annotations import DeepFashionFormatError

ZIP_NAME = "img.zip"
FOLDER_NAME = "img"


def _escapes(member: str) -> bool:
  parts = member.replace("\\", "/").split("/")
  return member.startswith(("/", "\\")) or ".." in parts or ":" in parts[0]


class ImageStore:
  """Image bytes and size by annotation name, from a benchmark's `Img/`.

  The extracted folder wins over the zip when both exist (it is what a user
  who unzipped a password-protected archive has). Picklable for Beam: the
  zip handle is reopened lazily in each process.
  """

  def __init__(self, img_dir: epath.PathLike):
    self.img_dir = epath.Path(img_dir)
    self.zip_path = self.img_dir / ZIP_NAME
    self.use_folder = (self.img_dir / FOLDER_NAME).is_dir()
    if not self.use_folder and not self.zip_path.exists():
      raise DeepFashionFormatError(
          f"{self.img_dir}: neither {FOLDER_NAME}/ nor {ZIP_NAME} found (put"
          " the released Img/img.zip there, or its extracted img/ folder)"
      )
    self._zip = None
    self._lock = threading.Lock()

  def __getstate__(self):
    state = dict(self.__dict__)
    state["_zip"], state["_lock"] = None, None
    return state

  def __setstate__(self, state):
    self.__dict__.update(state)
    self._lock = threading.Lock()

  def source(self) -> str:
    """The folder or zip images are read from (for messages)."""
    return os.fspath(self.img_dir / FOLDER_NAME if self.use_folder else self.zip_path)

  def _open_zip(self) -> zipfile.ZipFile:
    if self._zip is None:
      try:
        archive = zipfile.ZipFile(self.zip_path.open("rb"))
      except zipfile.BadZipFile as e:
        raise DeepFashionFormatError(f"{self.zip_path}: not a zip file ({e})") from None
      for info in archive.infolist():
        if _escapes(info.filename):
          raise DeepFashionFormatError(
              f"{self.zip_path}: member {info.filename!r} escapes the archive"
              " folder (absolute path or '..')"
          )
        if info.flag_bits & 0x1:
          raise DeepFashionFormatError(
              f"{self.zip_path}: member {info.filename!r} is encrypted; unzip"
              " it with the password from the DeepFashion agreement form into"
              f" {self.img_dir / FOLDER_NAME}/ (or use an unencrypted zip)"
          )
      self._zip = archive
    return self._zip

  def read_bytes(self, name: str, where: str) -> bytes:
    """The released bytes of `name`; `where` (file:line) names the row."""
    if _escapes(name):
      raise BadExampleError(f"{where}: image name {name!r} escapes the image" " folder")
    if self.use_folder:
      path = self.img_dir / name
      if not path.is_file():
        raise BadExampleError(f"{where}: image {name} not found in" f" {self.img_dir}")
      return path.read_bytes()
    with self._lock:
      archive = self._open_zip()
      try:
        return archive.read(name)
      except KeyError:
        raise BadExampleError(f"{where}: image {name} not found in {self.zip_path}") from None
      except (zipfile.BadZipFile, OSError) as e:
        raise BadExampleError(f"{where}: cannot read {name} from {self.zip_path}: {e}") from None

  def read(self, name: str, where: str) -> tuple[bytes, int, int]:
    """(bytes, width, height) of a checked, fully decodable image."""
    data = self.read_bytes(name, where)
    try:
      with Image.open(io.BytesIO(data)) as image:
        image.load()  # Full decode: catches truncated files, not just headers.
        width, height = image.size
    except Exception as e:  # pylint: disable=broad-except  # PIL raises many.
      raise BadExampleError(
          f"{where}: image {name} in {self.source()} cannot be decoded:" f" {type(e).__name__}: {e}"
      ) from None
    if not width or not height:
      raise BadExampleError(f"{where}: image {name} has an empty size")
    return data, width, height
