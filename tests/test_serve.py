"""`python -m fashionnet_jax.serve`: the JSON API, the micro-batcher, bad input, and the page in chromium.

One Service (tiny trained run, batch buckets 1, 2, 4) and one uvicorn server per module.
"""

import concurrent.futures
import io
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import host
import serving

import fastapi  # noqa: F401,E402  (pip install -e '.[serve]', as the README's test command does)

MAX_PIXELS = 1_000_000
MAX_BODY = 2**20


@pytest.fixture(scope="module")
def photo(real_photos):
  """One real photo, the one host.BBOX is released for when the DeepFashion samples are here."""
  return host.bbox_photo(real_photos)


@pytest.fixture(scope="module")
def gallery(run_dir, real_photos, tmp_path_factory):
  """The real photos and five synthetic photos, as a folder to index."""
  out = tmp_path_factory.mktemp("gallery")
  for path in real_photos:
    shutil.copy(path, out / path.name)
  return serving.synthetic_photos(run_dir, out, 5)


@pytest.fixture(scope="module")
def service(run_dir, gallery, tmp_path_factory):
  service = serving.indexed_service(
      run_dir,
      gallery,
      tmp_path_factory.mktemp("index"),
      max_batch=4,
      max_wait_ms=20,
      max_pixels=MAX_PIXELS,
  )
  yield service
  service.close()


@pytest.fixture(scope="module")
def client(service):
  from fastapi.testclient import TestClient
  from fashionnet_jax.serve.app import create_app

  return TestClient(create_app(service, max_body_bytes=MAX_BODY))


@pytest.fixture(scope="module")
def server(service):
  from fashionnet_jax.serve.app import create_app
  from fashionnet_jax.serve.server import BackgroundServer

  with BackgroundServer(create_app(service, max_body_bytes=MAX_BODY)) as running:
    yield running


def upload(client, path, data=None, route="/v1/predict", **fields):
  data = Path(path).read_bytes() if data is None else data
  return client.post(
      route,
      files={"image": (Path(path).name, data, "image/jpeg")},
      data={k: str(v) for k, v in fields.items()},
  )


def test_predict_is_the_predict_commands_record(client, service, photo):
  from fashionnet_jax.inference import describe

  response = upload(client, photo, bbox=",".join(map(str, host.BBOX)), top_k=3)
  assert response.status_code == 200, response.text
  record = response.json()
  [(_, expected, error)] = describe.predict_files(
      service.predictor, [str(photo)], [host.BBOX], top_k=3
  )
  assert error is None
  assert record["image"] == photo.name and record["bbox"] == list(host.BBOX)
  expected["image"] = photo.name
  _assert_same_prediction(record, expected)
  assert {k: v for k, v in record.items() if k not in ("category", "attributes", "landmarks")} == {
      k: v for k, v in expected.items() if k not in ("category", "attributes", "landmarks")
  }


def _assert_same_prediction(record, expected, same_names=("category",)):
  """A served record against `predict`'s for the same image: batch-of-1 vs batch-of-N
  forward passes, so float rounding only (the ranked names of `same_names` equal)."""
  for key in same_names:
    assert [c["name"] for c in record[key]] == [c["name"] for c in expected[key]]
  for key in ("category", "attributes"):
    np.testing.assert_allclose(
        [c["probability"] for c in record[key]],
        [c["probability"] for c in expected[key]],
        atol=1e-4,
    )
  np.testing.assert_allclose(
      [[m["x"], m["y"]] for m in record["landmarks"]],
      [[m["x"], m["y"]] for m in expected["landmarks"]],
      atol=0.05,
  )


def test_retrieve_finds_the_query_itself_and_serves_thumbnails_by_number(client, photo):
  response = upload(client, photo, route="/v1/retrieve", k=3)
  assert response.status_code == 200, response.text
  results = response.json()["results"]
  assert [r["rank"] for r in results] == [1, 2, 3]
  assert results[0]["path"] == photo.name and results[0]["score"] == pytest.approx(1, abs=1e-3)
  thumb = client.get(results[0]["thumbnail"])
  assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
  assert max(Image.open(io.BytesIO(thumb.content)).size) <= 192
  for bad in ("999", "-1", "..%2F..%2Fetc%2Fpasswd", "1e3", "%2Fetc%2Fpasswd"):
    response = client.get(f"/v1/gallery/{bad}/thumbnail")
    assert response.status_code == 404 and set(response.json()) == {"error"}


def _bomb() -> bytes:
  """A 2000x2000 PNG (4 MP, over the test's 1 MP limit) that compresses to a few KB."""
  out = io.BytesIO()
  Image.new("1", (2000, 2000)).save(out, "PNG")
  return out.getvalue()


def test_bad_input_gets_a_one_line_json_4xx_and_the_server_stays_up(client, service, photo):
  good = photo.read_bytes()
  cases = [  # (what, response, status)
      ("0 bytes", upload(client, "a.jpg", b""), 400),
      ("not an image", upload(client, "a.jpg", b"this is not a picture\n"), 400),
      ("truncated JPEG", upload(client, "a.jpg", good[: len(good) // 2]), 400),
      ("no image field", client.post("/v1/predict", data={"bbox": "1,2,3,4"}), 400),
      (
          "not multipart",
          client.post("/v1/predict", content=b"{}", headers={"content-type": "application/json"}),
          400,
      ),
      ("pixel bomb", upload(client, "bomb.png", _bomb()), 413),
      ("body over the limit", upload(client, "big.jpg", good + b"\0" * MAX_BODY), 413),
      (
          "chunked body over the limit",
          client.post(
              "/v1/predict",
              content=iter([b"x" * 65536] * (MAX_BODY // 65536 + 2)),
              headers={"content-type": "multipart/form-data; boundary=x"},
          ),
          413,
      ),
      ("bbox syntax", upload(client, photo, good, bbox="1,2,3"), 422),
      ("bbox upside down", upload(client, photo, good, bbox="50,50,10,10"), 422),
      ("bbox outside", upload(client, photo, good, bbox="5000,5000,5100,5100"), 422),
      ("top_k 0", upload(client, photo, good, top_k=0), 422),
      ("k 0", upload(client, photo, good, route="/v1/retrieve", k=0), 422),
      ("k over the gallery", upload(client, photo, good, route="/v1/retrieve", k=10**6), 422),
      ("k not a number", upload(client, photo, good, route="/v1/retrieve", k="ten"), 422),
  ]
  for what, response, status in cases:
    assert response.status_code == status, (what, response.text)
    body = response.json()
    assert set(body) == {"error"} and body["error"] and "\n" not in body["error"], what
  assert "2000x2000" in cases[5][1].json()["error"]
  assert client.get("/healthz").json()["status"] == "ok"
  assert upload(client, photo).status_code == 200


def test_a_full_queue_answers_503(client, service, monkeypatch):
  from fashionnet_jax.serve.batcher import Overloaded

  def full(loaded):
    raise Overloaded("server busy: 128 requests already queued")

  monkeypatch.setattr(service, "submit", full)
  response = upload(client, "a.png", _small_png())
  assert response.status_code == 503 and "busy" in response.json()["error"]


def _small_png() -> bytes:
  out = io.BytesIO()
  Image.new("RGB", (40, 60), (200, 30, 30)).save(out, "PNG")
  return out.getvalue()


def test_batcher_pads_to_buckets_and_bounds_its_queue():
  from fashionnet_jax.serve.batcher import MicroBatcher, Overloaded, buckets

  assert buckets(1) == [1] and buckets(4) == [1, 2, 4] and buckets(5) == [1, 2, 4, 8]
  release, shapes = threading.Event(), []

  def predict(batch):
    shapes.append(batch.shape[0])
    release.wait(10)
    return {"sum": batch.reshape(len(batch), -1).sum(axis=1)}

  batcher = MicroBatcher(predict, (2, 2, 3), max_batch=4, max_wait_ms=50, queue_size=2).start()
  first = batcher.submit(np.full((2, 2, 3), 1))
  deadline = time.monotonic() + 5
  while not shapes and time.monotonic() < deadline:  # the worker holds the first batch
    time.sleep(0.005)
  queued = [batcher.submit(np.full((2, 2, 3), v)) for v in (2, 3)]
  with pytest.raises(Overloaded):
    batcher.submit(np.zeros((2, 2, 3)))
  release.set()
  assert first.result(5)["sum"] == 12
  assert [f.result(5)["sum"] for f in queued] == [24, 36]
  batcher.close()
  assert shapes == [1, 2]  # the two queued requests shared one batch


def test_concurrent_requests_are_batched_without_recompiling(server, service, real_photos):
  """16 concurrent HTTP requests on 3 images: all answered, each with its own image's
  record, in batches larger than 1, and the jitted function never compiles again."""
  forward = service.predictor._forward
  compiled = forward._cache_size()
  assert compiled >= len(service.batcher.buckets)
  paths = real_photos
  singles = {p.name: serving.post_upload(server, p.name, p.read_bytes())[1] for p in paths}
  before = dict(service.batcher.batch_sizes)
  jobs = [paths[i % len(paths)] for i in range(16)]
  with concurrent.futures.ThreadPoolExecutor(16) as pool:
    answers = list(pool.map(lambda p: serving.post_upload(server, p.name, p.read_bytes()), jobs))
  assert [status for status, _ in answers] == [200] * 16
  for path, (_, record) in zip(jobs, answers):
    assert record["image"] == path.name
    assert record["category"][0]["name"] == singles[path.name]["category"][0]["name"]
    np.testing.assert_allclose(
        record["category"][0]["probability"],
        singles[path.name]["category"][0]["probability"],
        atol=1e-4,
    )
  grew = {n: c - before.get(n, 0) for n, c in service.batcher.batch_sizes.items()}
  assert sum(n * c for n, c in grew.items()) == 16
  assert max(n for n, c in grew.items() if c) > 1
  assert forward._cache_size() == compiled


def test_the_command_refuses_a_bad_workdir_or_index_in_one_line(tmp_path, capsys):
  from fashionnet_jax.serve.__main__ import main

  for argv in (
      ["--workdir", str(tmp_path / "nothing")],
      ["--workdir", str(tmp_path), "--index", str(tmp_path)],
  ):
    with pytest.raises(SystemExit) as exit_:
      main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err


def test_benchmark_smoke(service, real_photos):
  from fashionnet_jax.benchmarks import serve as bench

  results = bench.measure(
      service.predictor, real_photos, requests=12, concurrencies=(1, 4), max_batch=4, max_wait_ms=5
  )
  rows = {row["concurrency"]: row for row in results["server"]}
  assert set(rows) == {1, 4} and all(r["errors"] == 0 for r in rows.values())
  assert results["direct"]["images_per_s"] > 0 and rows[4]["images_per_s"] > 0


# The page, in Debian's chromium (installed by .ci/run), through selenium.


@pytest.fixture(scope="module")
def browser():
  from selenium import webdriver

  chromedriver = host.program("chromedriver", "apt-get install chromium chromium-driver")
  from selenium.webdriver.chrome.service import Service as DriverService

  options = webdriver.ChromeOptions()
  for flag in (
      "--headless=new",
      "--no-sandbox",
      "--disable-dev-shm-usage",
      "--disable-gpu",
      "--window-size=1100,900",
  ):
    options.add_argument(flag)
  driver = webdriver.Chrome(options=options, service=DriverService(chromedriver))
  yield driver
  driver.quit()


def _analyse(browser, server, path, width, height):
  from selenium.webdriver.common.by import By
  from selenium.webdriver.support.ui import WebDriverWait

  browser.set_window_size(width, height)
  browser.get(server.url + "/")
  browser.find_element(By.ID, "file").send_keys(str(path))
  wait = WebDriverWait(browser, 60)
  wait.until(lambda b: len(b.find_elements(By.CSS_SELECTOR, "#gallery img")) > 0)
  wait.until(
      lambda b: b.execute_script(
          "return [...document.querySelectorAll('#gallery img')].every(i => i.complete && i.naturalWidth > 0)"
      )
  )
  return By


def test_the_page_shows_categories_landmarks_and_similar_items(
    browser, server, service, photo, tmp_path
):
  from fashionnet_jax.inference import describe

  By = _analyse(browser, server, photo, 1100, 900)
  [(_, record, _)] = describe.predict_files(service.predictor, [str(photo)], top_k=service.top_k)
  names = [li.text for li in browser.find_elements(By.CSS_SELECTOR, "#categories li")]
  assert len(names) == service.top_k and names[0].startswith(record["category"][0]["name"])
  assert len(browser.find_elements(By.CSS_SELECTOR, "#attributes tbody tr")) == service.top_k
  marks = browser.find_elements(By.CSS_SELECTOR, "#marks g.mark")
  assert len(marks) == sum(m["applies"] for m in record["landmarks"]) >= 4
  visible = {m["name"] for m in record["landmarks"] if m["applies"] and m["visible"]}
  assert {
      g.get_attribute("data-name") for g in marks if "visible" in g.get_attribute("class").split()
  } == visible
  assert len(browser.find_elements(By.CSS_SELECTOR, "#gallery figure")) == min(8, service.max_k)
  assert browser.find_element(By.ID, "status").text == ""
  browser.save_screenshot(str(tmp_path / "desktop.png"))
  # A phone: one column, nothing wider than the screen.
  _analyse(browser, server, photo, 390, 844)
  assert browser.execute_script("return document.documentElement.scrollWidth") <= 390
  shown = browser.find_element(By.ID, "photo").rect
  assert shown["width"] <= 390 and shown["width"] > 300
  browser.save_screenshot(str(tmp_path / "phone.png"))


def test_the_page_reports_a_bad_file(browser, server, tmp_path):
  from selenium.webdriver.common.by import By
  from selenium.webdriver.support.ui import WebDriverWait

  bad = tmp_path / "notes.jpg"
  bad.write_text("not a picture")
  browser.set_window_size(1100, 900)
  browser.get(server.url + "/")
  browser.find_element(By.ID, "file").send_keys(str(bad))
  WebDriverWait(browser, 30).until(lambda b: "not an image" in b.find_element(By.ID, "status").text)
  assert "error" in browser.find_element(By.ID, "status").get_attribute("class")


def test_a_bbox_field_crops_as_predict_does_and_answers_say_which_crop(client, service, gallery):
  """Issue 21 item 4: serve's /v1/predict and /v1/retrieve with a `bbox` field answer what
  `predict` and `retrieve query` answer for the same crop; without one, the whole image."""
  from fashionnet_jax import retrieve
  from fashionnet_jax.inference import describe

  path = gallery / "synthetic_1.jpg"
  width, height = Image.open(path).size
  box = (width // 4, height // 5, width - 3, height - 2)
  text = ",".join(map(str, box))
  record = upload(client, path, bbox=text, top_k=3).json()
  [(_, expected, error)] = describe.predict_files(service.predictor, [str(path)], [box], top_k=3)
  assert error is None
  expected["image"] = path.name
  assert (record["crop"], record["bbox"]) == ("bbox", list(box))
  _assert_same_prediction(record, expected, same_names=("category", "attributes"))
  assert upload(client, path).json()["crop"] == "whole image"

  found = upload(client, path, route="/v1/retrieve", bbox=text, k=3).json()
  assert (found["crop"], found["bbox"]) == ("bbox", list(box))
  [(_, results, _, kind)] = retrieve.query_index(
      service.predictor, service.index, [str(path)], 3, bboxes=[box]
  )
  assert kind == "bbox" and [r["path"] for r in found["results"]] == [r["path"] for r in results]
  np.testing.assert_allclose(
      [r["score"] for r in found["results"]], [r["score"] for r in results], atol=1e-4
  )
  whole = upload(client, path, route="/v1/retrieve", k=3).json()
  assert (whole["crop"], whole["bbox"]) == ("whole image", None)
  assert whole["results"][0]["path"] == path.name  # the gallery holds it whole
