"""`python -m fashionnet_jax.study`: named sets of variants trained on the same data, seed and
step budget, side by side in one table (Markdown + JSON) and one plot.

The command hands the runner train.train_and_evaluate.

Modules: presets (which variants and which rows), runner (each variant an
ordinary run folder, resumable, a finished one reused), table (the
side-by-side table and plot), extent (attribute recall by where an attribute
shows), __main__ (the command).
"""
