"""Training: the paper's losses and stages, the optimiser, the compiled step, checkpoints.

losses (the four losses + triplets), schedule (stages and parameter groups),
optim (SGD/AdamW per group), step (TrainState and the jitted train step),
checkpointing (Orbax), config_checks (config validation), trainer (Trainer:
everything built from a config). It may import data/, models/, `sharding`,
`schema` and `errors`; never evaluation/ or inference/ (train.py, above both,
joins training and evaluation).
"""
