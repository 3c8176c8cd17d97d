"""The HTTP app (FastAPI): the page, the JSON API, thumbnails, and the limits on input.

  GET  /                       the page (static/: upload or drop a photo, draw a bbox)
  POST /v1/predict             multipart `image`, optional `bbox=x1,y1,x2,y2`, `top_k`
                               -> the record one line of `predict` prints
  POST /v1/retrieve            `image`, optional `bbox`, `k`
                               -> {"query", "bbox", "crop", "results": [...]}
  GET  /v1/gallery/N/thumbnail a JPEG of index entry N (entries are named by number only)
  GET  /v1/info, /healthz      what is loaded; liveness

Without a `bbox` the network sees the whole upload, with one the bbox plus the
run's eval margin (`inference.images.crop_rule`, as `predict` and `retrieve`);
both answers say which in `"crop"`: "bbox" or "whole image".

Every error is a 4xx/5xx with one line of JSON, {"error": "..."}: 400 not an
image / truncated / empty / no `image` field, 413 a body or an image over the
limits, 422 a bbox or k that cannot work, 503 the batcher's queue is full.
"""

from __future__ import annotations

import asyncio
import json
from importlib import resources

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException

from fashionnet_jax.errors import one_line
from fashionnet_jax.inference.images import BBoxError, ImageError, ImageTooLargeError, parse_bbox
from fashionnet_jax.serve.batcher import Overloaded
from fashionnet_jax.serve.service import RequestError, parse_int

STATIC = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/style.css": ("style.css", "text/css; charset=utf-8"),
}


class ApiError(Exception):

  def __init__(self, status: int, message: str):
    super().__init__(message)
    self.status = status


def _error(status: int, message: str) -> JSONResponse:
  return JSONResponse({"error": one_line(message)}, status_code=status)


def create_app(service, *, max_body_bytes: int = 10 * 2**20):
  """The ASGI app serving `service` (started by the caller), wrapped in the body limit."""
  app = FastAPI(title="FashionNet", docs_url=None, redoc_url=None, openapi_url=None)
  pages = {
      route: (resources.files("fashionnet_jax.serve").joinpath("static", name).read_bytes(), kind)
      for route, (name, kind) in STATIC.items()
  }

  @app.exception_handler(ApiError)
  async def _api_error(request, e: ApiError):
    return _error(e.status, str(e))

  @app.exception_handler(HTTPException)
  async def _http_error(request, e: HTTPException):
    return _error(e.status_code, str(e.detail))

  for route, (body, kind) in pages.items():
    app.add_api_route(route, _static(body, kind), methods=["GET"], include_in_schema=False)

  @app.get("/healthz")
  async def healthz():
    return {"status": "ok", "queued": service.batcher.queued()}

  @app.get("/v1/info")
  async def info():
    return service.info()

  @app.post("/v1/predict")
  async def predict(request: Request):
    form = await _form(request)
    top_k = _field(parse_int, "top_k", form.get("top_k"), service.top_k, 1, service.max_top_k)
    loaded, outputs, bbox = await _run(service, form)
    return service.record(outputs, loaded, top_k, bbox)

  @app.post("/v1/retrieve")
  async def retrieve(request: Request):
    if service.index is None:
      raise ApiError(404, "no gallery index loaded (start the server with --index)")
    form = await _form(request)
    k = _field(parse_int, "k", form.get("k"), min(10, service.max_k), 1, service.max_k)
    loaded, outputs, bbox = await _run(service, form)
    return {
        "query": loaded.path,
        "bbox": None if bbox is None else [float(v) for v in bbox],
        "crop": loaded.crop_kind,
        "results": service.rank(outputs, k),
    }

  @app.get("/v1/gallery/{number}/thumbnail")
  async def thumbnail(number: str):
    data = await run_in_threadpool(service.thumbnail, int(number)) if number.isdigit() else None
    if data is None:
      raise ApiError(404, f"no gallery image number {number}")
    return Response(
        data, media_type="image/jpeg", headers={"Cache-Control": "public, max-age=3600"}
    )

  return BodyLimit(app, max_body_bytes)


def _static(body: bytes, kind: str):
  async def page():
    return Response(body, media_type=kind)

  return page


def _field(parse, name, value, *args):
  try:
    return parse(name, value, *args)
  except RequestError as e:
    raise ApiError(422, str(e)) from None


async def _form(request: Request):
  try:
    return await request.form(max_files=1, max_fields=8)
  except Exception as e:  # a malformed body is the client's, whatever the parser's complaint
    raise ApiError(400, f"not a readable multipart form ({one_line(e)})") from None


async def _run(service, form):
  """(loaded image, network outputs, bbox) of the form's upload, through the batcher."""
  upload = form.get("image")
  if not isinstance(upload, UploadFile):
    raise ApiError(400, "no file in the multipart field `image`")
  text = form.get("bbox")
  data = await upload.read()
  name = upload.filename or "upload"
  try:
    bbox = parse_bbox(text) if text is not None and text.strip() else None  # blank: whole image
    loaded = await run_in_threadpool(service.load, data, name, bbox)
  except ImageTooLargeError as e:
    raise ApiError(413, str(e)) from None
  except BBoxError as e:
    raise ApiError(422, str(e)) from None
  except ImageError as e:
    raise ApiError(400, str(e)) from None
  try:
    future = service.submit(loaded)
  except Overloaded as e:
    raise ApiError(503, str(e)) from None
  return loaded, await asyncio.wrap_future(future), bbox


class BodyLimit:
  """ASGI wrapper: a request body over `max_bytes` gets 413 before it is read whole.

  A declared Content-Length is refused at once; a chunked body is counted as it
  arrives, answered 413 when it passes the limit, and the app then sees a disconnect.
  """

  def __init__(self, app, max_bytes: int):
    self.app, self.max_bytes = app, max_bytes

  async def __call__(self, scope, receive, send):
    if scope["type"] != "http":
      return await self.app(scope, receive, send)
    length = dict(scope["headers"]).get(b"content-length")
    if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
      return await self._refuse(send)
    received, refused = 0, False

    async def limited_receive():
      nonlocal received, refused
      if refused:
        return {"type": "http.disconnect"}
      message = await receive()
      if message["type"] == "http.request":
        received += len(message.get("body", b""))
        if received > self.max_bytes:
          refused = True
          await self._refuse(send)
          return {"type": "http.disconnect"}
      return message

    async def guarded_send(message):
      if not refused:
        await send(message)

    try:
      await self.app(scope, limited_receive, guarded_send)
    except Exception:
      if not refused:
        raise

  async def _refuse(self, send):
    body = json.dumps({"error": f"request body over the limit of {self.max_bytes} bytes"}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
