"""uvicorn in a background thread, on a given or free port (tests and the load benchmark)."""

from __future__ import annotations

import socket
import threading
import time

import uvicorn


def free_port(host: str = "127.0.0.1") -> int:
  with socket.socket() as s:
    s.bind((host, 0))
    return s.getsockname()[1]


class BackgroundServer:
  """`with BackgroundServer(app) as server:` ... `server.url` ... (stopped on exit)."""

  def __init__(self, app, host: str = "127.0.0.1", port: int | None = None):
    self.host, self.port = host, port or free_port(host)
    self.url = f"http://{host}:{self.port}"
    self._server = uvicorn.Server(
        uvicorn.Config(app, host=host, port=self.port, log_level="warning", access_log=False)
    )
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
