"""Training: the paper's losses and stages, the optimiser, the compiled step, checkpoints.

It imports data/, models/, `sharding`, `schema` and `errors`; never
evaluation/ or inference/ (train.py, above both, joins training and
evaluation).

Modules: losses (the four losses, triplets, HDC), schedule (stages and
parameter groups), optim (the optimiser per group), step (the train state and
the jitted train step), checkpointing (Orbax), config_checks (config
validation), train_setup (model, optimiser, mesh, state and step built from a
config), workdir (one writer per run folder), runs (a run read back from its
folder), selection (the best step on validation).
"""
