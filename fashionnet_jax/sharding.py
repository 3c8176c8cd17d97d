"""Device mesh and shardings: a (data, model) mesh, batch over `data`.

Parameters are replicated except the large fully-connected kernels (fc6/fc7, the
attribute head), which are split over `model` along their output dimension when
the mesh has a model axis; their optimiser state follows them.
"""

from __future__ import annotations

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from fashionnet_jax.errors import ConfigError

DATA, MODEL = "data", "model"
# fc kernels at least this big are worth sharding over the model axis.
_MIN_SHARDED_SIZE = 1 << 20


def create_mesh(mesh_config, devices=None) -> Mesh:
  devices = list(jax.devices() if devices is None else devices)
  n = len(devices)
  data, model = int(mesh_config.data), int(mesh_config.model)
  if model < 1:
    raise ConfigError(f"config.mesh.model must be >= 1, got {model}")
  if data == -1:
    if n % model:
      raise ConfigError(f"config.mesh.model={model} does not divide the {n} devices")
    data = n // model
  if data * model != n:
    raise ConfigError(
        f"config.mesh data={mesh_config.data} x model={model} does not match the {n} devices"
    )
  return Mesh(np.asarray(devices).reshape(data, model), (DATA, MODEL))


def batch_sharding(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P(DATA))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def param_spec(path, leaf, model_size: int) -> P:
  """Shards a large 2-D kernel's output dimension over `model` when it divides."""
  shape = getattr(leaf, "shape", ())
  if (
      model_size > 1
      and len(shape) == 2
      and np.prod(shape) >= _MIN_SHARDED_SIZE
      and shape[1] % model_size == 0
  ):
    return P(None, MODEL)
  return P()


def state_shardings(mesh: Mesh, state_shapes):
  """NamedShardings for a pytree of (abstract) arrays, following `param_spec`."""
  model_size = mesh.shape[MODEL]
  return jax.tree_util.tree_map_with_path(
      lambda path, leaf: NamedSharding(mesh, param_spec(path, leaf, model_size)), state_shapes
  )


def check_batch_size(batch_size: int, mesh: Mesh, name: str = "config.batch_size"):
  data = mesh.shape[DATA]
  if batch_size % data:
    raise ConfigError(f"{name}={batch_size} is not divisible by the {data} data-parallel devices")
  if batch_size % jax.process_count():
    raise ConfigError(
        f"{name}={batch_size} is not divisible by the {jax.process_count()} processes"
    )
