"""ReLU whose gradient reads its output, so XLA can hand conv + bias + ReLU to cuDNN.

`jax.nn.relu` differentiates through its input (`x > 0`). The pre-activation
(conv + bias) then has two users, the ReLU and the backward mask, and XLA's
cuDNN fusion pass keeps the ReLU out of the convolution: every conv writes its
pre-activation, a separate kernel reads it and writes the ReLU, and both stay
alive for the backward pass (benchmarks/NOTES.md, v2). Here the backward mask
is `y > 0` on the output (the same set: y > 0 iff x > 0), and the optimization
barrier stops XLA's simplifier from rewriting `max(x, 0) > 0` back into `x > 0`.
The output is saved anyway, as the next layer's input for its weight gradient.
"""

import jax
import jax.numpy as jnp


@jax.custom_vjp
def relu(x):
  return jnp.maximum(x, 0)


def _relu_fwd(x):
  y = jnp.maximum(x, 0)
  return y, y


def _relu_bwd(y, g):
  y = jax.lax.optimization_barrier(y)
  return (jnp.where(y > 0, g, jnp.zeros_like(g)),)


relu.defvjp(_relu_fwd, _relu_bwd)
