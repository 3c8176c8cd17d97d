"""Data: DeepFashion as released → TFDS records → grain batches of the batch contract.

annotations (the list_*.txt parsers), images (img.zip / img/ access), records
(a benchmark as a stream of examples, for the TFDS builder), tfds_build (the
builder from code), prepare (the dataset a config needs, built on first use),
labels (class names saved with a run), metadata and attribute_stats (split
statistics), transforms / preprocess / sampling / pipeline (the grain input
pipeline). It may import `fashionnet_jax.schema`, `fashionnet_jax.errors` and
`fashionnet_jax.synthetic` (to write the demo's data), never models/,
training/, evaluation/ or inference/.
"""
