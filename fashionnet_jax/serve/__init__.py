"""Serving a trained FashionNet over HTTP: `python -m fashionnet_jax.serve --workdir RUN [--index INDEX]`.

batcher (micro-batching onto the accelerator), service (predict / retrieve on
uploaded bytes, no HTTP), app (FastAPI: the page, the JSON API, the limits),
server (uvicorn in a thread, for tests and the load benchmark), static/ (the page).
"""
