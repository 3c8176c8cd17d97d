"""What the serve tests share: a gallery of the tiny run's synthetic photos, a started
Service with an index of it, and a multipart upload over a real socket
(tests/test_serve.py, tests/test_serve_hostile.py)."""

import http.client
import io
import json
import zipfile


def synthetic_photos(run_dir, out, count: int):
  """Writes the first `count` synthetic photos of the run's data into `out` as synthetic_<i>.jpg."""
  archive = next((run_dir / "data" / "synthetic_deepfashion").glob("Category*/Img/img.zip"))
  with zipfile.ZipFile(archive) as z:
    for i, name in enumerate(sorted(n for n in z.namelist() if n.endswith(".jpg"))[:count]):
      (out / f"synthetic_{i}.jpg").write_bytes(z.read(name))
  return out


def indexed_service(run_dir, gallery, index_folder, **options):
  """A started Service on the run's selected step, with `gallery` indexed into `index_folder`."""
  from fashionnet_jax import retrieve
  from fashionnet_jax.inference.index import Index
  from fashionnet_jax.inference.predictor import Predictor
  from fashionnet_jax.serve.service import Service

  predictor = Predictor(workdir=run_dir / "workdir")
  retrieve.build_index(predictor, str(gallery), str(index_folder), batch_size=4, log=io.StringIO())
  return Service(predictor, Index(str(index_folder)), **options).start()


def post_upload(server, filename: str, data: bytes, route="/v1/predict", timeout=120):
  """(status, JSON answer) of a multipart POST of `data` as the `image` field, over a real
  socket to a BackgroundServer (what a client on loopback does)."""
  boundary = "fashionnetboundary"
  body = (
      f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="{filename}"\r\n'
      "Content-Type: application/octet-stream\r\n\r\n"
  ).encode()
  body += data + f"\r\n--{boundary}--\r\n".encode()
  connection = http.client.HTTPConnection(server.host, server.port, timeout=timeout)
  connection.request(
      "POST", route, body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}
  )
  response = connection.getresponse()
  answer = (response.status, json.loads(response.read()))
  connection.close()
  return answer
