"""Data: DeepFashion as released → TFDS records → grain batches of the batch contract.

It imports `fashionnet_jax.schema`, `fashionnet_jax.errors` and
`fashionnet_jax.synthetic` (to write the demo's data); never models/,
training/, evaluation/ or inference/.

Modules: annotations (the list_*.txt parsers), fine (the Anno_fine/
re-release as examples), images (img.zip or img/ access), records (a
benchmark as a stream of examples, for the TFDS builder), tfds_build (the
builder from code), prepare (the dataset a config needs, built on first use),
labels (class names saved with a run), metadata, attribute_stats (split
statistics), transforms, preprocess, sampling, pipeline (the grain input
pipeline).
"""
