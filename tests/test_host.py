"""tests/host.py: the real photos a plain clone has, and a missing system tool's skip or fail."""

import pytest
from PIL import Image

import host
from conftest import pytest_configure


def test_a_missing_tool_skips_on_a_users_machine_and_fails_under_ci(monkeypatch):
  monkeypatch.delenv("CI", raising=False)
  with pytest.raises(
      pytest.skip.Exception, match="^nothing-here is not installed: apt-get nothing$"
  ):
    host.program("nothing-here", "apt-get nothing")
  monkeypatch.setenv("CI", "false")
  with pytest.raises(pytest.skip.Exception):
    host.needs(False, "no root")
  monkeypatch.setenv("CI", "true")
  with pytest.raises(pytest.fail.Exception, match="^no root \\(CI=true: CI must run this test\\)$"):
    host.needs(False, "no root")
  host.needs(True, "no root")  # available: the test goes on
  assert host.program("sh", "apt-get install dash").endswith("/sh")


def test_without_samples_the_real_photos_are_scikit_images_public_domain_ones(
    monkeypatch, tmp_path
):
  monkeypatch.delenv(host.SAMPLES_VARIABLE, raising=False)
  assert host.samples() is None
  photos = host.real_photos(tmp_path)
  assert [p.name for p in photos] == ["astronaut.jpg", "coffee.jpg", "chelsea.jpg"]
  sizes = [Image.open(p).size for p in photos]
  assert sizes == [(512, 512), (600, 400), (451, 300)]
  assert all(Image.open(p).format == "JPEG" for p in photos)
  x1, y1, x2, y2 = host.BBOX  # the released bbox fits every photo
  assert all(x2 <= w and y2 <= h for w, h in sizes)
  assert host.bbox_photo(photos) == photos[0]


def test_samples_folder_is_used_and_an_empty_one_stops_the_run(monkeypatch, tmp_path):
  folder = tmp_path / "samples"
  folder.mkdir()
  monkeypatch.setenv(host.SAMPLES_VARIABLE, str(folder))
  with pytest.raises(
      pytest.UsageError, match=f"^FASHIONNET_SAMPLES={folder}: no .jpg files there$"
  ):
    pytest_configure(None)
  for name in ("b.jpg", host.BBOX_SAMPLE, "notes.txt"):
    Image.new("RGB", (300, 300)).save(folder / name, "JPEG")
  pytest_configure(None)
  photos = host.real_photos(tmp_path / "unused")
  assert [p.name for p in photos] == [host.BBOX_SAMPLE, "b.jpg"]
  assert host.bbox_photo(photos).name == host.BBOX_SAMPLE
  assert not (tmp_path / "unused").exists()
