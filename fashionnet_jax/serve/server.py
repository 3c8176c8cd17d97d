"""uvicorn's settings for this server, and uvicorn in a background thread (tests, benchmarks)."""

from __future__ import annotations

import socket
import threading
import time

import uvicorn

# Seconds an idle keep-alive connection stays open.
KEEP_ALIVE_TIMEOUT = 5.0
# Seconds a stopping server gives requests in flight before cancelling them.
SHUTDOWN_TIMEOUT = 25.0


def free_port(host: str = "127.0.0.1") -> int:
  with socket.socket() as s:
    s.bind((host, 0))
    return s.getsockname()[1]


def config(
    app,
    host: str,
    port: int,
    *,
    keep_alive_timeout: float = KEEP_ALIVE_TIMEOUT,
    shutdown_timeout: float = SHUTDOWN_TIMEOUT,
) -> uvicorn.Config:
  """The uvicorn config of `app`: quiet, and every wait bounded (keep-alive, shutdown)."""
  return uvicorn.Config(
      app,
      host=host,
      port=port,
      log_level="warning",
      access_log=False,
      timeout_keep_alive=keep_alive_timeout,
      timeout_graceful_shutdown=shutdown_timeout,
  )


class BackgroundServer:
  """`with BackgroundServer(app) as server:` ... `server.url` ... (stopped on exit)."""

  def __init__(self, app, host: str = "127.0.0.1", port: int | None = None, **timeouts):
    self.host, self.port = host, port or free_port(host)
    self.url = f"http://{host}:{self.port}"
    self._server = uvicorn.Server(config(app, host, self.port, **timeouts))
    self._thread = threading.Thread(target=self._server.run, name="uvicorn", daemon=True)

  def __enter__(self):
    self._thread.start()
    deadline = time.monotonic() + 30
    while not self._server.started:
      if not self._thread.is_alive() or time.monotonic() > deadline:
        raise RuntimeError(f"the server did not start on {self.url}")
      time.sleep(0.02)
    return self

  def __exit__(self, *exc):
    self._server.should_exit = True
    self._thread.join(10)
