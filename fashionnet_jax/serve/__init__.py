"""Serving a trained FashionNet over HTTP: `python -m fashionnet_jax.serve --workdir RUN [--index INDEX]`.

Modules: batcher (micro-batching onto the accelerator), service (predict and
retrieve on uploaded bytes, no HTTP), app (FastAPI: the page, the JSON API, the
limits), server (uvicorn in a thread, for tests and the load benchmark),
__main__ (the command), static/ (the page).
"""
