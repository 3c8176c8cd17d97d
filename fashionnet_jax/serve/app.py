"""The HTTP app (FastAPI): the page, the JSON API, thumbnails, and the limits on input.

  GET  /                       the page (static/: upload or drop a photo, draw a bbox)
  POST /v1/predict             multipart `image`, optional `bbox=x1,y1,x2,y2`, `top_k`
                               -> the record one line of `predict` prints
  POST /v1/retrieve            `image`, optional `bbox`, `k`
                               -> {"query", "bbox", "crop", "results": [...]}
  GET  /v1/gallery/N/thumbnail a JPEG of index entry N (entries are named by number only)
  GET  /v1/info, /healthz      what is loaded; liveness

HEAD works wherever GET does. Without a `bbox` the network sees the whole
upload, with one the bbox plus the run's eval margin (`inference.images.crop_rule`,
as `predict` and `retrieve`); both answers say which in `"crop"`: "bbox" or
"whole image". Uploads are decoded on the service's decode threads
(`Service.submit_load`: at most `max_decodes` large images at once), never on
the event loop, so `/healthz` answers during a burst of large images.

Every error is one line of JSON, {"error": "..."}: 400 not an image / truncated
/ corrupt / empty / no `image` field / not a multipart form, 404 no such route or
gallery entry (any malformed number), 405 a method the route does not take (with
`Allow`), 408 a request body that stopped arriving for `body_timeout` seconds,
413 a body or an image over the limits, 422 a bbox or k that cannot work, 503 the
decode or batch queue is full (with `Retry-After`), 500 anything else (the
traceback goes to the server's log, never to the client).
"""

from __future__ import annotations

import asyncio
import json
import re
from importlib import resources

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
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


# A gallery entry's number as a client may write it: ASCII digits, no sign, few of them
# (str.isdigit() takes "²", and int() refuses 4,301 digits or more).
GALLERY_NUMBER = re.compile(r"[0-9]{1,12}")
# Seconds a client is asked to wait after a 503.
RETRY_AFTER_S = 1
# What of a client's path an error message repeats.
PATH_SHOWN = 120


class ApiError(Exception):

  def __init__(self, status: int, message: str, headers: dict | None = None):
    super().__init__(message)
    self.status, self.headers = status, headers


def _error(status: int, message: str, headers=None) -> JSONResponse:
  return JSONResponse({"error": one_line(message)}, status_code=status, headers=headers)


def _overloaded(e: Overloaded) -> ApiError:
  return ApiError(503, str(e), {"Retry-After": str(RETRY_AFTER_S)})


def create_app(service, *, max_body_bytes: int = 10 * 2**20, body_timeout: float = 20.0):
  """The ASGI app serving `service` (started by the caller), wrapped in `Guard`."""
  app = FastAPI(title="FashionNet", docs_url=None, redoc_url=None, openapi_url=None)
  get = app.api_route  # every GET route takes HEAD too (tests/test_serve_hostile.py walks them)
  pages = {
      route: (resources.files("fashionnet_jax.serve").joinpath("static", name).read_bytes(), kind)
      for route, (name, kind) in STATIC.items()
  }

  @app.exception_handler(ApiError)
  async def _api_error(request, e: ApiError):
    return _error(e.status, str(e), e.headers)

  @app.exception_handler(HTTPException)
  async def _http_error(request, e: HTTPException):
    path = request.url.path[:PATH_SHOWN]
    message = {
        404: f"no route {path}",
        405: f"{request.method} not allowed on {path} (allowed: {(e.headers or {}).get('Allow')})",
    }.get(e.status_code, str(e.detail))
    return _error(e.status_code, message, e.headers)

  @app.exception_handler(RequestValidationError)
  async def _invalid(request, e: RequestValidationError):
    fields = "; ".join(f"{'.'.join(map(str, x['loc']))}: {x['msg']}" for x in e.errors())
    return _error(422, f"invalid request ({fields})")

  @app.exception_handler(Exception)
  async def _bug(request, e: Exception):
    # Starlette re-raises after this answer: the traceback goes to the server's log.
    return _error(500, f"internal server error ({type(e).__name__}); see the server log")

  for route, (body, kind) in pages.items():
    get(route, methods=["GET", "HEAD"], include_in_schema=False)(_static(body, kind))

  @get("/healthz", methods=["GET", "HEAD"])
  async def healthz():
    return {"status": "ok", "queued": service.batcher.queued()}

  @get("/v1/info", methods=["GET", "HEAD"])
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

  @get("/v1/gallery/{number}/thumbnail", methods=["GET", "HEAD"])
  async def thumbnail(number: str):
    data = None
    if GALLERY_NUMBER.fullmatch(number):  # gallery files are trusted: no decode cap
      data = await run_in_threadpool(service.thumbnail, int(number))
    if data is None:
      raise ApiError(404, f"no gallery image number {number[:PATH_SHOWN]}")
    return Response(
        data, media_type="image/jpeg", headers={"Cache-Control": "public, max-age=3600"}
    )

  return Guard(app, max_body_bytes, body_timeout)


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
    loaded = await asyncio.wrap_future(service.submit_load(data, name, bbox))
  except Overloaded as e:
    raise _overloaded(e) from None
  except ImageTooLargeError as e:
    raise ApiError(413, str(e)) from None
  except BBoxError as e:
    raise ApiError(422, str(e)) from None
  except ImageError as e:
    raise ApiError(400, str(e)) from None
  try:
    future = service.submit(loaded)
  except Overloaded as e:
    raise _overloaded(e) from None
  return loaded, await asyncio.wrap_future(future), bbox


class Guard:
  """ASGI wrapper: the limits on a request body, HEAD without a body, and a count of answers.

  A body over `max_bytes` gets 413 before it is read whole: a declared
  Content-Length at once, a chunked body as it arrives. A body that stops
  arriving for `body_timeout` seconds gets 408. Either way the app then sees a
  disconnect and the connection is closed. `answered` counts responses started,
  `cut` the requests cancelled before their answer (the server's shutdown deadline).
  """

  def __init__(self, app, max_bytes: int, body_timeout: float):
    self.app, self.max_bytes, self.body_timeout = app, max_bytes, body_timeout
    self.answered = self.cut = 0

  async def __call__(self, scope, receive, send):
    if scope["type"] != "http":
      return await self.app(scope, receive, send)
    length = dict(scope["headers"]).get(b"content-length")
    if length is not None and (
        not length.isdigit() or len(length) > 18 or int(length) > self.max_bytes
    ):
      return await self._refuse(send, 413, self._over)
    received, refused, started, body_done = 0, False, False, False
    head = scope["method"] == "HEAD"

    async def guarded_receive():
      nonlocal received, refused, body_done
      if refused:
        return {"type": "http.disconnect"}
      if body_done:  # only a disconnect can come now: no deadline on waiting for it
        return await receive()
      try:  # wait_for, not asyncio.timeout: that is Python 3.11+, and 3.10 is supported
        message = await asyncio.wait_for(receive(), self.body_timeout)
      except asyncio.TimeoutError:  # not the builtin TimeoutError before 3.11
        return await refuse(408, f"request body: nothing received for {self.body_timeout:g} s")
      if message["type"] == "http.request":
        received += len(message.get("body", b""))
        body_done = not message.get("more_body", False)
        if received > self.max_bytes:
          return await refuse(413, self._over)
      return message

    async def refuse(status, message):
      nonlocal refused
      refused = True
      if not started:
        await self._refuse(send, status, message)
      return {"type": "http.disconnect"}

    async def guarded_send(message):
      nonlocal started
      if refused:
        return
      if message["type"] == "http.response.start":
        started = True
        self.answered += 1
      elif head and message.get("body"):
        message = {**message, "body": b""}
      await send(message)

    try:
      await self.app(scope, guarded_receive, guarded_send)
    except asyncio.CancelledError:
      self.cut += not started
      raise
    except Exception:
      if not refused:
        raise

  @property
  def _over(self) -> str:
    return f"request body over the limit of {self.max_bytes} bytes"

  async def _refuse(self, send, status: int, message: str):
    self.answered += 1
    body = json.dumps({"error": message}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
