"""FashionNet (Liu et al., DeepFashion, CVPR 2016) in JAX/Flax NNX.

Commands run as `python -m fashionnet_jax.<command>`; train.py joins training/
and evaluation/; the folders below it never import a command.

Modules: main (train and evaluate from a config), demo (the CPU demo on synthetic
data), predict (categories, attributes and landmarks of photos), retrieve (build
and query a gallery index), weights (ImageNet weight files), reproduce (the
paper's runs in order), train (train_and_evaluate: the orchestrator), cli (what
the commands share: usage errors, argparse, absl flags), console (quiet start-up,
progress, phases: what a person sees), errors (the project's
errors and exit statuses), schema (the DeepFashion vocabulary), sharding (mesh
and shardings), data/, synthetic/, models/, training/, evaluation/, inference/,
export/, serve/, study/, benchmarks/.
"""

__version__ = "0.1.0"
