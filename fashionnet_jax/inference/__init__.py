"""Inference: a trained run used on arbitrary photos.

It imports data/, models/, training/ (restoring a run), evaluation/ (the
retrieval search), `cli`, `schema` and `errors`; the commands (predict,
retrieve, serve, export) sit above it.

Modules: predictor (Predictor: a run's selected step restored onto one device),
images (reading, cropping and resizing image files as evaluation does),
decode (the checks before every decode, in Python and as the SavedModel's TF ops),
describe (the JSON record of a prediction), visualize (drawings of predictions
and retrieval grids), gallery (building a retrieval index folder), index (a
finished index folder, its ranker and bbox files).
"""
