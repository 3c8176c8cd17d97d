"""The server under hostile input (issue 22): the decode cap, memory handed back, every route's
errors as one line of JSON, a stalled body, and a SIGTERM that finishes.

One Service on the tiny trained run (tests/conftest.py's run_dir) with a three-image index.
"""

import asyncio
import concurrent.futures
import http.client
import io
import json
import os
import platform
import re
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import zlib

import numpy as np
import pytest
from PIL import Image

import serving

import fastapi  # noqa: F401  (pip install -e '.[serve]')

MAX_PIXELS = 4_500_000
METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS")
# Path parameters a client may send: not digits, non-ASCII digits, too many digits, paths.
# (A value with a "/" matches no route at all: tests/test_serve.py has those.)
MALFORMED = ("%C2%B2", "9" * 5000, "-1", "1e3", "0x1F", "%2E%2E", "%00", "%20", "999")


@pytest.fixture(scope="module")
def gallery(run_dir, tmp_path_factory):
  out = tmp_path_factory.mktemp("hostile_gallery")
  return serving.synthetic_photos(run_dir, out, 3)


@pytest.fixture(scope="module")
def service(run_dir, gallery, tmp_path_factory):
  service = serving.indexed_service(
      run_dir,
      gallery,
      tmp_path_factory.mktemp("hostile_index"),
      max_batch=2,
      max_pixels=MAX_PIXELS,
      max_decodes=2,
  )
  yield service
  service.close()


@pytest.fixture(scope="module")
def guarded(service):
  from fashionnet_jax.serve.app import create_app

  return create_app(service, max_body_bytes=2**20, body_timeout=0.3)


@pytest.fixture(scope="module")
def client(guarded):
  from fastapi.testclient import TestClient

  return TestClient(guarded, raise_server_exceptions=False)


def _png(image: Image.Image) -> bytes:
  out = io.BytesIO()
  image.save(out, "PNG")
  return out.getvalue()


def _declared_png(width: int, height: int) -> bytes:
  """A PNG header declaring width x height, with a token of pixel data (never decoded)."""

  def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

  header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
  return (
      b"\x89PNG\r\n\x1a\n"
      + chunk(b"IHDR", header)
      + chunk(b"IDAT", zlib.compress(b"\0" * 64))
      + chunk(b"IEND", b"")
  )


def _form(data: bytes, name: str = "a.png", **fields):
  return {"files": {"image": (name, data, "image/png")}, "data": fields}


def assert_one_line_error(response, status, what=""):
  assert response.status_code == status, (what, response.status_code, response.text[:300])
  if response.request.method == "HEAD":
    assert response.content == b"", what
    return
  assert response.headers["content-type"].startswith("application/json"), what
  text = response.content.decode()
  assert "\n" not in text.strip() and "Traceback" not in text, (what, text[:300])
  body = json.loads(text)
  assert set(body) == {"error"} and body["error"] and "\n" not in body["error"], (what, body)


def _routes(guarded):
  """(path template, methods) of every route of the app (a new route is walked too)."""
  return [(r.path, set(r.methods)) for r in guarded.app.routes if getattr(r, "methods", None)]


def test_every_route_answers_malformed_requests_in_one_line_of_json(guarded, client):
  routes = _routes(guarded)
  assert {"/healthz", "/v1/predict", "/v1/retrieve", "/v1/gallery/{number}/thumbnail"} <= {
      path for path, _ in routes
  }
  png = _png(Image.new("RGB", (40, 60), (200, 30, 30)))
  garbage = [  # (what, request kwargs): each a 400 on any route that reads an upload
      ("no body", {}),
      ("0-byte image", _form(b"")),
      ("not an image", _form(b"GIF89a but not really")),
      ("half a PNG", _form(png[: len(png) // 2])),
      ("no image field", {"data": {"bbox": "1,2,3,4"}}),
      ("JSON", {"content": b'{"image": 1}', "headers": {"content-type": "application/json"}}),
      (
          "bad boundary",
          {
              "content": b"--x\r\n\r\n",
              "headers": {"content-type": "multipart/form-data; boundary=y"},
          },
      ),
      ("random bytes", {"content": os.urandom(4096), "headers": {"content-type": "image/png"}}),
      ("two files", {"files": [("image", ("a.png", png)), ("image", ("b.png", png))]}),
  ]
  walked = 0
  for template, methods in routes:
    params = re.findall(r"{(\w+)}", template)
    paths = [re.sub(r"{\w+}", value, template) for value in MALFORMED] if params else [template]
    for path in paths:
      for method in METHODS:
        response = client.request(method, path)
        walked += 1
        what = f"{method} {path[:60]}"
        if method not in methods:
          assert_one_line_error(response, 405, what)
          assert set(response.headers["allow"].split(", ")) == methods, what
        elif params:  # no such entry: a malformed or absent number is a 404, never a 500
          assert_one_line_error(response, 404, what)
        elif method in ("GET", "HEAD"):
          assert response.status_code == 200, what
          if method == "HEAD":  # as GET, without the body
            assert response.content == b"" and "GET" in methods, what
      if "POST" in methods:
        for what, kwargs in garbage:
          assert_one_line_error(client.post(path, **kwargs), 400, f"POST {path}: {what}")
  assert walked > 100  # 7 methods on 7 routes, the thumbnail with 9 malformed numbers
  assert client.get("/healthz").json()["status"] == "ok"


def test_over_limit_bodies_and_images_are_413(client):
  cases = [
      ("a body declaring 5000 digits of length", {"headers": {"content-length": "9" * 5000}}),
      ("a body over the limit", _form(b"\0" * (2**20 + 1))),
      ("an image over --max-pixels", _form(_declared_png(3000, 3000))),
      ("an image over PIL's own bomb limit", _form(_declared_png(15000, 12000))),
  ]
  for what, kwargs in cases:
    response = client.post("/v1/predict", **kwargs)
    assert_one_line_error(response, 413, what)
  assert "3000x3000" in client.post("/v1/predict", **cases[2][1]).json()["error"]


def test_a_bug_is_a_one_line_500_without_its_traceback(client, service, monkeypatch):
  def broken(*args, **kwargs):
    raise RuntimeError("secret /etc/path\n  File 'x.py', line 1")

  monkeypatch.setattr(service, "info", broken)
  monkeypatch.setattr(service, "record", broken)
  png = _png(Image.new("RGB", (40, 60), (20, 30, 200)))
  for response in (client.get("/v1/info"), client.post("/v1/predict", **_form(png))):
    assert_one_line_error(response, 500)
    assert "secret" not in response.text and "RuntimeError" in response.json()["error"]
  monkeypatch.undo()
  assert client.post("/v1/predict", **_form(png)).status_code == 200


def test_a_full_queue_is_503_with_retry_after(client, service, monkeypatch):
  from fashionnet_jax.serve.batcher import Overloaded

  def full(*args):
    raise Overloaded("server busy: 128 requests already queued")

  png = _png(Image.new("RGB", (40, 60), (20, 30, 200)))
  for name in ("submit", "submit_load"):
    with monkeypatch.context() as patch:
      patch.setattr(service, name, full)
      response = client.post("/v1/predict", **_form(png))
    assert_one_line_error(response, 503, name)
    assert int(response.headers["retry-after"]) >= 1


def test_decodes_wait_for_their_lane_and_the_queue_is_bounded(service, monkeypatch):
  """At most max_decodes large decodes at once, small ones beside them; over the queue: 503."""
  from fashionnet_jax.serve import service as service_module
  from fashionnet_jax.serve.batcher import Overloaded
  from fashionnet_jax.serve.service import Service

  gate, lock, running, peak = threading.Event(), threading.Lock(), [], {}

  def load(data, name, bbox=None):
    with lock:
      running.append(name)
      for kind in ("large", "small"):
        peak[kind] = max(peak.get(kind, 0), sum(n.startswith(kind) for n in running))
    gate.wait(10)
    with lock:
      running.remove(name)
    return name

  queued = Service(service.predictor, max_batch=1, queue_size=3, max_decodes=2)
  monkeypatch.setattr(queued, "load", load)
  monkeypatch.setattr(service_module, "LARGE_PIXELS", 100)
  large, small = _declared_png(20, 20), _declared_png(5, 5)
  futures = [queued.submit_load(large, f"large_{i}") for i in range(5)]
  futures.append(queued.submit_load(small, "small_0"))
  deadline = time.monotonic() + 5
  while "small_0" not in running and time.monotonic() < deadline:
    time.sleep(0.01)
  assert "small_0" in running  # not behind the large ones
  futures.append(queued.submit_load(small, "small_1"))  # 2 + 2 decoding, 3 waiting: the bound
  with pytest.raises(Overloaded):
    queued.submit_load(small, "one too many")
  gate.set()
  assert [f.result(5) for f in futures] == [f"large_{i}" for i in range(5)] + ["small_0", "small_1"]
  assert peak == {"large": 2, "small": 2}
  queued.close()


def test_memory_is_handed_back_once_after_a_burst(service, monkeypatch):
  from fashionnet_jax.serve import service as service_module

  trims, gate = [], threading.Event()
  monkeypatch.setattr(service_module, "release_memory", lambda: trims.append(1) or True)
  monkeypatch.setattr(service_module, "TRIM_BYTES", -1)  # any growth counts
  monkeypatch.setattr(service, "load", lambda *args: gate.wait(10))
  futures = [service.submit_load(b"", "x") for _ in range(6)]
  time.sleep(0.1)
  assert trims == []  # not while the burst is in flight
  gate.set()
  concurrent.futures.wait(futures, 10)
  deadline = time.monotonic() + 5
  while not trims and time.monotonic() < deadline:
    time.sleep(0.01)
  assert trims == [1]
  monkeypatch.undo()
  assert service_module.release_memory() == (platform.libc_ver()[0] == "glibc")


def test_a_burst_of_large_uploads_is_capped_and_healthz_stays_fast(
    service, guarded, real_photos, monkeypatch
):
  """8 uploads of 4.4 M pixels at once beside good photos: 2 of them decoded at most at
  once, every answer its own, /healthz answered throughout."""
  from fashionnet_jax.inference import images
  from fashionnet_jax.serve.server import BackgroundServer

  bomb = _png(Image.new("1", (2100, 2100)))
  real_load, lock, running, peak = images.load_image_bytes, threading.Lock(), [0], [0]

  def counted(data, *args, **kwargs):
    large = data == bomb
    with lock:
      running[0] += large
      peak[0] = max(peak[0], running[0])
    try:
      return real_load(data, *args, **kwargs)
    finally:
      with lock:
        running[0] -= large

  good = {p.name: p.read_bytes() for p in real_photos}
  with BackgroundServer(guarded) as server:
    singles = {name: serving.post_upload(server, name, data)[1] for name, data in good.items()}
    monkeypatch.setattr(images, "load_image_bytes", counted)
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
      bombs = [pool.submit(serving.post_upload, server, f"bomb_{i}.png", bomb) for i in range(8)]
      goods = [
          (n, pool.submit(serving.post_upload, server, n, d)) for n, d in list(good.items()) * 2
      ]
      healthz = []
      while not all(f.done() for f in bombs):
        t = time.perf_counter()
        assert _get(server, "/healthz")[0] == 200
        healthz.append(time.perf_counter() - t)
        time.sleep(0.02)
      answers = [f.result() for f in bombs]
  assert [status for status, _ in answers] == [200] * 8
  assert [record["image"] for _, record in answers] == [f"bomb_{i}.png" for i in range(8)]
  for name, future in goods:
    status, record = future.result()
    assert status == 200 and record["image"] == name
    np.testing.assert_allclose(
        [c["probability"] for c in record["category"]],
        [c["probability"] for c in singles[name]["category"]],
        atol=1e-4,
    )
  assert peak[0] == service.max_decodes == 2
  assert healthz and max(healthz) < 1.0, healthz


def _get(server, path):
  connection = http.client.HTTPConnection(server.host, server.port, timeout=30)
  connection.request("GET", path)
  response = connection.getresponse()
  answer = (response.status, response.read())
  connection.close()
  return answer


def test_a_body_that_stops_arriving_gets_408_and_the_app_a_disconnect(guarded):
  """In process: half a multipart body, then nothing; the app is told the client left."""
  sent, seen = [], []

  async def receive():
    if not seen:
      seen.append("chunk")
      return {"type": "http.request", "body": b"--b\r\n", "more_body": True}
    await asyncio.sleep(60)  # the client stalls

  async def send(message):
    sent.append(message)

  scope = {
      "type": "http",
      "method": "POST",
      "path": "/v1/predict",
      "raw_path": b"/v1/predict",
      "root_path": "",
      "scheme": "http",
      "query_string": b"",
      "server": ("127.0.0.1", 80),
      "client": ("127.0.0.1", 1),
      "http_version": "1.1",
      "headers": [
          (b"content-type", b"multipart/form-data; boundary=b"),
          (b"content-length", b"900"),
      ],
  }
  start = time.monotonic()
  asyncio.run(asyncio.wait_for(guarded(scope, receive, send), 10))
  assert 0.3 <= time.monotonic() - start < 5
  starts = [m for m in sent if m["type"] == "http.response.start"]
  assert [m["status"] for m in starts] == [408]  # and nothing after it from the app
  assert (b"connection", b"close") in starts[0]["headers"]
  body = json.loads(b"".join(m.get("body", b"") for m in sent))
  assert set(body) == {"error"} and "0.3 s" in body["error"]


def test_sigterm_answers_what_is_in_flight_refuses_the_rest_and_exits_0(run_dir, tmp_path):
  """The command as a process: a keep-alive connection closed when idle, a stalled upload
  answered 408, SIGTERM while another stalls: answered, new connections refused, exit 0
  within the deadline after the server's own cleanup."""
  from fashionnet_jax.serve.server import free_port

  port = free_port()
  command = [sys.executable, "-m", "fashionnet_jax.serve", "--workdir", str(run_dir / "workdir")]
  command += ["--port", str(port), "--max-batch", "1", "--body-timeout", "1.5"]
  command += ["--keep-alive-timeout", "0.5", "--shutdown-timeout", "8"]
  log = tmp_path / "stderr.txt"
  with open(log, "w") as err:
    process = subprocess.Popen(command, stderr=err, stdout=subprocess.DEVNULL)
  try:
    deadline = time.monotonic() + 120
    while True:
      assert process.poll() is None, log.read_text()
      try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        connection.request("GET", "/healthz")
        assert connection.getresponse().read()
        break
      except OSError:
        assert time.monotonic() < deadline, "the server did not start in 120 s"
        time.sleep(0.2)
    time.sleep(2.0)  # 4x the keep-alive timeout
    with pytest.raises((OSError, http.client.HTTPException)):  # idle keep-alive: closed
      connection.request("GET", "/healthz")
      connection.getresponse().read()

    def stall():
      s = socket.create_connection(("127.0.0.1", port), timeout=30)
      s.sendall(
          b"POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; "
          b"boundary=b\r\nContent-Length: 1000\r\n\r\n--b\r\n"
      )
      return s

    def answer(s):
      data = b""
      while chunk := s.recv(4096):
        data += chunk
      s.close()
      head, _, body = data.partition(b"\r\n\r\n")
      return int(head.split()[1]), body

    status, body = answer(stall())
    assert status == 408 and set(json.loads(body)) == {"error"} and b"\n" not in body
    held = stall()
    time.sleep(0.3)
    stopped = time.monotonic()
    process.send_signal(signal.SIGTERM)
    refused = None
    while refused is None and time.monotonic() - stopped < 5:  # the port closes at once
      time.sleep(0.1)
      try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
      except OSError as e:
        refused = e
    assert refused is not None, "new connections still accepted 5 s after SIGTERM"
    assert answer(held)[0] == 408  # in flight at SIGTERM: answered
    assert process.wait(15) == 0
    assert time.monotonic() - stopped < 8
  finally:
    if process.poll() is None:
      process.kill()
      process.wait()
  lines = log.read_text().splitlines()
  assert lines[-1] == "stopped: 3 requests answered", lines
