"""Synthetic DeepFashion in the released formats, from procedurally drawn garments.

`generate(out_dir, images, seed)` writes the four benchmark folders (Anno/,
Eval/, Img/) that the TFDS builder reads with --manual_dir, with exact
landmarks, bboxes and attributes: the demo's, the tests' and the benchmarks'
data. `python -m fashionnet_jax.synthetic` is its command line. It imports
`fashionnet_jax.schema` and `fashionnet_jax.errors` only: it is a data source,
upstream of data/ and of everything else.

Modules: vocab (names), garments (geometry), render (drawing), formats (the
released line formats), writer (the benchmark trees), __main__ (the command).
"""

from fashionnet_jax.synthetic.writer import generate

__all__ = ["generate"]
