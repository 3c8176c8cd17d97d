"""Inference: a trained run used on arbitrary photos.

predictor (Predictor: a workdir's checkpoint restored onto one device),
images (reading, cropping and resizing image files as evaluation does),
describe (the JSON record of a prediction), visualize (drawings of
predictions and retrieval grids). It may import data/, models/, training/
(checkpoint restore, the train state's shape), evaluation/ (retrieval
search), `schema` and `errors`; the commands (predict, retrieve) sit above it.
"""
