"""TF SavedModel export of a trained FashionNet: `python -m fashionnet_jax.export --workdir RUN --out DIR`.

Modules: savedmodel (the JAX function, its TF preprocessing and the signatures,
via orbax-export), publish (a hidden sibling renamed to --out when complete), __main__
(the command).
"""
