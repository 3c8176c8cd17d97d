"""ImageNet weight import for FashionNet, from files the user downloaded.

Sources: torchvision `vgg16-397923af.pth` / `resnet50-*.pth` (read with torch,
the `[torch]` extra; they expect our input, RGB (x/255 − mean) / std) and Keras
`vgg16_weights_tf_dim_ordering_tf_kernels*.h5` /
`xception_weights_tf_dim_ordering_tf_kernels*.h5` (Keras 2's legacy layout: a
group per layer, read with h5py). Keras' preprocessing is folded into the first
conv so the model takes our input: VGG16's BGR, 0–255, mean-subtracted pixels
into conv1_1 (`fold_keras_preprocessing`), Xception's x/127.5 − 1 into
block1_conv1 and its BatchNorm (`fold_keras_tf_preprocessing`). Two steps:
  1. `convert(path, backbone)` -> canonical params: a flat {name: float32 array}
     in Flax layout (HWIO kernels, [in, out] dense kernels, fc6 rows in NHWC
     flatten order), names like 'conv5_3/kernel', 'fc6/bias',
     'layer4/2/bn3/mean', 'block13/sepconv2/depthwise/kernel'. `save_converted`
     writes them as one .npz.
  2. `load_pretrained(model, path, backbone)` places them into a FashionNet:
     trunk convs into `trunk`, conv5 (last stage; Xception's exit flow, blocks 13
     and 14) into all three branches, VGG
     fc6 into fc6_global and fc6_pose, fc7 into fc7_pose where shapes fit (fc
     layers whose shape differs are skipped with a logged note). It returns what
     it wrote: the layers it did not fill are new, and learn at the new-layer rate
     (training/optim.py). fc7_fusion is always new: FashionNet's takes fc6_global ⊕
     fc6_local (4096 + 1024 inputs), which ImageNet's fc7 cannot fill, so the
     ablation without the landmark branch, whose fc7_fusion fc7 would fit, starts it
     at random too: the two arms differ only in the branch.

The command line is `python -m fashionnet_jax.weights` (no download anywhere).
"""

import logging
import os
import re
import zipfile

import numpy as np
from flax import nnx, traverse_util

from fashionnet_jax.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from fashionnet_jax.errors import FashionNetError
from fashionnet_jax.models import xception
from fashionnet_jax.schema import BACKBONES

BRANCHES = ("pose_branch", "local_branch", "global_branch")
# torchvision `features.N` index of each VGG-16 conv, in order.
_VGG_CONVS = (
    "conv1_1",
    "conv1_2",
    "conv2_1",
    "conv2_2",
    "conv3_1",
    "conv3_2",
    "conv3_3",
    "conv4_1",
    "conv4_2",
    "conv4_3",
    "conv5_1",
    "conv5_2",
    "conv5_3",
)
_VGG_TORCH_INDEX = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)
_RESNET_BLOCKS = (("layer1", 3), ("layer2", 4), ("layer3", 6), ("layer4", 3))
_BN = {"weight": "scale", "bias": "bias", "running_mean": "mean", "running_var": "var"}
_KERAS_BN = {"gamma": "scale", "beta": "bias", "moving_mean": "mean", "moving_variance": "var"}
# Canonical heads of the Xception layers that every branch gets (its exit flow).
_XCEPTION_EXIT = {xception.EXIT_BLOCK[0]} | {
    n + bn for n, _ in xception.EXIT_CONVS for bn in ("", "_bn")
}


class WeightImportError(FashionNetError, ValueError):
  """A weight file that cannot be imported (wrong format, missing or mismatched tensors)."""


# ----------------------------------------------------------------------------- reading


def _read_torch(path):
  try:
    import torch  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise WeightImportError(
        f'{path}: reading .pth needs torch (pip install "fashionnet_jax[torch]")'
    ) from e
  try:
    state = torch.load(path, map_location="cpu", weights_only=True)
  except Exception as e:  # torch raises many types for a bad file
    raise WeightImportError(f"{path}: not a readable torch checkpoint ({e})") from e
  if isinstance(state, dict) and "state_dict" in state:
    state = state["state_dict"]
  if not isinstance(state, dict):
    raise WeightImportError(f"{path}: expected a state_dict, got {type(state).__name__}")
  return {
      k.removeprefix("module."): v.detach().float().numpy()
      for k, v in state.items()
      if hasattr(v, "detach") and v.dtype.is_floating_point
  }


def _read_keras_h5(path):
  """{layer name: {weight: array}} in the file's layer order, from a legacy Keras .h5.

  The layout of Keras' released files: a group per layer, listed in order by the
  attribute `layer_names`, each naming its tensors in `weight_names`
  ('block1_conv1/kernel:0', 'block2_sepconv1/depthwise_kernel:0',
  'block1_conv1_bn/moving_mean:0'); a weight is keyed by its last part ('kernel',
  'depthwise_kernel', 'gamma', 'moving_mean', ...). Without those attributes, every
  group and the datasets under it, in the file's order.
  """
  try:
    import h5py  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise WeightImportError(f"{path}: reading .h5 needs h5py (pip install h5py)") from e

  def names(attrs, key, default):
    return [n.decode("utf8") if isinstance(n, bytes) else str(n) for n in attrs.get(key, default)]

  layers = {}
  try:
    with h5py.File(path, "r") as f:
      root = f["model_weights"] if "model_weights" in f else f  # a whole-model save
      for layer in names(root.attrs, "layer_names", list(root)):
        group = root.get(layer)
        if not isinstance(group, h5py.Group):
          continue
        found = []
        group.visititems(lambda n, o: found.append(n) if isinstance(o, h5py.Dataset) else None)
        for weight in names(group.attrs, "weight_names", found):
          key = weight.split(":")[0].split("/")[-1]
          layers.setdefault(layer, {})[key] = np.asarray(group[weight], np.float32)
  except (OSError, KeyError) as e:
    raise WeightImportError(f"{path}: not a readable Keras weight file ({e})") from e
  return layers


# ----------------------------------------------------------------------------- conversion


def _conv_torch_to_flax(w):
  return np.transpose(w, (2, 3, 1, 0))  # [O, I, kh, kw] -> [kh, kw, I, O]


def _fc6_torch_to_flax(w, conv5_channels):
  """torchvision flattens pool5 as (C, H, W); FashionNet flattens NHWC as (H, W, C)."""
  out, inp = w.shape
  grid = int(round((inp / conv5_channels) ** 0.5))
  if grid * grid * conv5_channels != inp:
    raise WeightImportError(f"fc6 input {inp} is not a square grid of {conv5_channels} channels")
  w = w.reshape(out, conv5_channels, grid, grid).transpose(0, 2, 3, 1).reshape(out, inp)
  return w.T


def _missing_error(path, backbone, missing):
  shown = ", ".join(sorted(missing)[:12]) + (" ..." if len(missing) > 12 else "")
  return WeightImportError(
      f"{path}: not a {backbone} ImageNet checkpoint, {len(missing)} tensor(s) " f"missing: {shown}"
  )


def _convert_vgg_torch(path, sd):
  missing = [
      f"features.{i}.{p}"
      for i in _VGG_TORCH_INDEX
      for p in ("weight", "bias")
      if f"features.{i}.{p}" not in sd
  ]
  if missing:
    raise _missing_error(path, "vgg16", missing)
  params = {}
  for name, i in zip(_VGG_CONVS, _VGG_TORCH_INDEX):
    params[f"{name}/kernel"] = _conv_torch_to_flax(sd[f"features.{i}.weight"])
    params[f"{name}/bias"] = sd[f"features.{i}.bias"]
  if "classifier.0.weight" in sd:  # absent from conv-only checkpoints
    params["fc6/kernel"] = _fc6_torch_to_flax(
        sd["classifier.0.weight"], params["conv5_3/bias"].shape[0]
    )
    params["fc6/bias"] = sd["classifier.0.bias"]
  if "classifier.3.weight" in sd:
    params["fc7/kernel"] = sd["classifier.3.weight"].T
    params["fc7/bias"] = sd["classifier.3.bias"]
  return params


# keras.applications.vgg16.preprocess_input ('caffe' mode): RGB -> BGR, 0-255, minus this mean.
KERAS_VGG_BGR_MEAN = np.array([103.939, 116.779, 123.68], np.float32)


def fold_keras_preprocessing(kernel, bias):
  """conv1_1 of Keras' VGG16 rewritten for our input, RGB (x/255 − mean) / std.

  Keras' VGG16 sees BGR pixels in 0–255 minus KERAS_VGG_BGR_MEAN. With
  pixel_c = 255 (std_c x_c + mean_c), input channel c (RGB) is Keras' channel
  2 − c, so kernel'[..., c, :] = kernel[..., 2 − c, :] · 255 std_c and bias' =
  bias + Σ kernel[..., j, :] (255 mean_{2−j} − KERAS_VGG_BGR_MEAN_j). Exact
  inside the image; at the zero-padded border Keras pads its own zeros, which are
  our (255 mean − Keras' mean), within 0.5 of a grey level.
  """
  rgb = kernel[:, :, ::-1, :]  # input channel c (RGB) <- Keras' BGR channel 2 - c
  scale = 255.0 * IMAGENET_STD
  offset = (255.0 * IMAGENET_MEAN - KERAS_VGG_BGR_MEAN[::-1]).astype(np.float32)  # per RGB channel
  folded_bias = bias + np.einsum("hwco,c->o", rgb.astype(np.float64), offset.astype(np.float64))
  return (rgb * scale[None, None, :, None]).astype(np.float32), folded_bias.astype(np.float32)


def _convert_vgg_keras(path, layers):
  names = {f"block{n[4]}_conv{n[6]}": n for n in _VGG_CONVS} | {"fc1": "fc6", "fc2": "fc7"}
  missing = [
      f"{k}/{p}"
      for k, n in names.items()
      if n.startswith("conv")
      for p in ("kernel", "bias")
      if p not in layers.get(k, {})
  ]
  if missing:
    raise _missing_error(path, "vgg16", missing)
  params = {}
  for keras_name, name in names.items():
    for p, value in layers.get(keras_name, {}).items():
      params[f"{name}/{p}"] = value  # Keras is already HWIO / [in, out], flatten in NHWC order
  params["conv1_1/kernel"], params["conv1_1/bias"] = fold_keras_preprocessing(
      params["conv1_1/kernel"], params["conv1_1/bias"]
  )
  return params


def fold_keras_tf_preprocessing(kernel, bn_mean):
  """block1_conv1 of Keras' Xception and its BatchNorm's moving mean, rewritten for our input.

  Keras' Xception sees RGB pixels as p/127.5 − 1 ('tf' preprocessing). With p_c =
  255 (std_c x_c + mean_c) that is 2 std_c x_c + (2 mean_c − 1): kernel'[..., c, :] =
  kernel[..., c, :] · 2 std_c, plus a constant Σ kernel[..., c, :] (2 mean_c − 1) per
  output channel. block1_conv1 has no bias, so the constant goes into the BatchNorm
  after it: moving mean' = moving mean − constant (batch statistics subtract it
  anyway). block1_conv1 is 'valid', nothing padded: exact everywhere.
  """
  offset = (2.0 * IMAGENET_MEAN - 1.0).astype(np.float64)
  constant = np.einsum("hwco,c->o", kernel.astype(np.float64), offset)
  scale = (2.0 * IMAGENET_STD)[None, None, :, None]
  return (kernel * scale).astype(np.float32), (bn_mean - constant).astype(np.float32)


def _xception_keras_names():
  """{Keras layer: canonical prefix} of Xception's named layers (models/xception.py's names)."""
  names = {n: n for n in ("block1_conv1", "block1_conv1_bn", "block1_conv2", "block1_conv2_bn")}
  blocks = xception.ENTRY_BLOCKS + xception.MIDDLE_BLOCKS + (xception.EXIT_BLOCK,)
  for block, channels, _, _ in blocks:
    for i in range(1, len(channels) + 1):
      names[f"{block}_sepconv{i}"] = f"{block}/sepconv{i}"
      names[f"{block}_sepconv{i}_bn"] = f"{block}/sepconv{i}_bn"
  for name, _ in xception.EXIT_CONVS:
    names[name], names[f"{name}_bn"] = name, f"{name}_bn"
  return names


def _keras_tensors(layer):
  """The tensors Keras' Xception layer `layer` holds (a BatchNorm, a separable or a plain conv)."""
  if layer.endswith("_bn"):
    return tuple(_KERAS_BN)
  return ("depthwise_kernel", "pointwise_kernel") if "sepconv" in layer else ("kernel",)


def _convert_xception_keras(path, layers):
  """Keras' Xception; its shortcut convs and their BatchNorms carry no name of ours
  (conv2d_1, batch_normalization_1, ... in Keras 2): the file's layer order says which block."""
  names = _xception_keras_names()
  downsampling = [b for b, _, down, _ in xception.ENTRY_BLOCKS + (xception.EXIT_BLOCK,) if down]
  rest = [(n, w) for n, w in layers.items() if n not in names]
  shortcuts = [n for n, w in rest if "kernel" in w and w["kernel"].ndim == 4]
  shortcut_bns = [n for n, w in rest if "moving_mean" in w]
  missing = [f"{k}/{w}" for k in names for w in _keras_tensors(k) if w not in layers.get(k, {})]
  for kind, found in (("shortcut conv", shortcuts), ("shortcut BatchNorm", shortcut_bns)):
    if len(found) != len(downsampling):
      missing.append(f"{len(downsampling)} unnamed {kind}s (found {len(found)})")
  if missing:
    raise _missing_error(path, "xception", missing)
  names.update({conv: f"{b}/residual" for conv, b in zip(shortcuts, downsampling)})
  names.update({bn: f"{b}/residual_bn" for bn, b in zip(shortcut_bns, downsampling)})
  params = {}
  for keras_name, name in names.items():
    tensors = layers[keras_name]
    if "gamma" in tensors:
      params.update({f"{name}/{ours}": tensors[theirs] for theirs, ours in _KERAS_BN.items()})
    elif "depthwise_kernel" in tensors:  # [3, 3, C, 1] (depth multiplier 1) -> grouped [3, 3, 1, C]
      depthwise = tensors["depthwise_kernel"]
      params[f"{name}/depthwise/kernel"] = depthwise.reshape(depthwise.shape[:2] + (1, -1))
      params[f"{name}/pointwise/kernel"] = tensors["pointwise_kernel"]
    else:
      params[f"{name}/kernel"] = tensors["kernel"]  # HWIO already
  params["block1_conv1/kernel"], params["block1_conv1_bn/mean"] = fold_keras_tf_preprocessing(
      params["block1_conv1/kernel"], params["block1_conv1_bn/mean"]
  )
  return params


def _resnet_torch_names():
  """(canonical name, torchvision key) of every ResNet-50 tensor FashionNet uses."""
  pairs = [("conv1/kernel", "conv1.weight")]
  pairs += [(f"bn1/{ours}", f"bn1.{theirs}") for theirs, ours in _BN.items()]
  for stage, blocks in _RESNET_BLOCKS:
    for b in range(blocks):
      for conv, bn, torch_conv, torch_bn in [
          (f"conv{k}", f"bn{k}", f"conv{k}", f"bn{k}") for k in (1, 2, 3)
      ] + (
          [("downsample_conv", "downsample_bn", "downsample.0", "downsample.1")] if b == 0 else []
      ):
        pairs.append((f"{stage}/{b}/{conv}/kernel", f"{stage}.{b}.{torch_conv}.weight"))
        pairs += [
            (f"{stage}/{b}/{bn}/{ours}", f"{stage}.{b}.{torch_bn}.{theirs}")
            for theirs, ours in _BN.items()
        ]
  return pairs


def _convert_resnet_torch(path, sd):
  pairs = _resnet_torch_names()
  missing = [theirs for _, theirs in pairs if theirs not in sd]
  if missing:
    raise _missing_error(path, "resnet50", missing)
  return {
      ours: _conv_torch_to_flax(sd[theirs]) if sd[theirs].ndim == 4 else sd[theirs]
      for ours, theirs in pairs
  }


# A word of the file name -> the backbone its weights are for.
_NAMED = {"resnet": "resnet50", "xception": "xception"}


def guess_backbone(path):
  """'resnet50' or 'xception' if the file name says so, else 'vgg16'."""
  name = os.path.basename(path).lower()
  return next((b for word, b in _NAMED.items() if word in name), "vgg16")


# One reader per file type, one converter per backbone it holds.
_READERS = {
    (".pth", ".pt", ".bin"): (
        "torch",
        _read_torch,
        {"vgg16": _convert_vgg_torch, "resnet50": _convert_resnet_torch},
    ),
    (".h5", ".hdf5"): (
        "Keras .h5",
        _read_keras_h5,
        {"vgg16": _convert_vgg_keras, "xception": _convert_xception_keras},
    ),
}


def convert(path, backbone=None):
  """Reads an ImageNet checkpoint into canonical params {name: float32 array} (see module doc)."""
  path = os.fspath(path)
  backbone = backbone or guess_backbone(path)
  if backbone not in BACKBONES:
    raise WeightImportError(f"unknown backbone {backbone!r}; choose one of {BACKBONES}")
  if not os.path.isfile(path):
    raise WeightImportError(f"{path}: no such file")
  ext = os.path.splitext(path)[1].lower()
  if ext == ".npz":
    try:
      with np.load(path, allow_pickle=False) as f:
        return {k: f[k] for k in f.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, AttributeError) as e:
      # A text file, a truncated download, pickled data: numpy's errors name no file.
      raise WeightImportError(
          f"{path}: not a readable .npz of converted weights "
          f"({type(e).__name__}: {str(e)[:120]})"
      ) from None
  kind, read, converters = next(
      (reader for exts, reader in _READERS.items() if ext in exts), (None, None, None)
  )
  if read is None:
    raise WeightImportError(
        f"{path}: unknown weight file type {ext!r} (expected .pth, .h5 or .npz)"
    )
  if backbone not in converters:
    raise WeightImportError(
        f"{path}: {kind} import supports {', '.join(converters)}, not {backbone}"
    )
  params = converters[backbone](path, read(path))
  return {k: np.ascontiguousarray(v, np.float32) for k, v in params.items()}


def save_converted(params, out_path):
  """Writes canonical params as one .npz (keys as in `convert`)."""
  os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
  np.savez(out_path, **params)
  return out_path


# ----------------------------------------------------------------------------- placement


def _targets(name):
  """Model state paths (tuples) that a canonical param is copied into, and whether it is an fc."""
  parts = tuple(int(p) if p.isdigit() else p for p in name.split("/"))
  head, leaf = parts[0], parts[-1]
  if re.fullmatch(r"conv5_\d", head):  # VGG conv5 -> every branch
    return [(b, "conv5", head, leaf) for b in BRANCHES], False
  if head == "layer4":  # ResNet conv5_x -> every branch
    return [(b, "conv5", "blocks") + parts[1:] for b in BRANCHES], False
  if head in _XCEPTION_EXIT:  # Xception's exit flow -> every branch
    return [(b, "conv5") + parts for b in BRANCHES], False
  if head.startswith("layer"):
    return [("trunk", head, "blocks") + parts[1:]], False
  if head == "fc6":
    return [
        ("global_branch", "fc6_global", "fc", leaf),
        ("pose_branch", "fc6_pose", "fc", leaf),
    ], True
  if head == "fc7":  # not fc7_fusion (module doc)
    return [("pose_branch", "fc7_pose", "fc", leaf)], True
  return [("trunk",) + parts], False


def load_pretrained(model, path, backbone=None):
  """Copies ImageNet weights from `path` (.pth, .h5 or a converted .npz) into `model` in place.

  Raises WeightImportError listing every conv/BatchNorm tensor whose shape does not
  match the model (e.g. width_multiplier != 1) or that the model lacks; fc layers
  whose shape differs (fc6_dim != 4096) are skipped with a logged note. Returns the
  list of model paths written (parameters and BatchNorm statistics): every parameter
  not in it keeps its random initialisation.
  """
  backbone = backbone or getattr(model, "backbone", None)
  if getattr(model, "backbone", backbone) != backbone:
    raise WeightImportError(f"{path}: {backbone} weights for a {model.backbone} model")
  params = convert(path, backbone)
  state = nnx.state(model)
  flat = traverse_util.flatten_dict(state.to_pure_dict())
  has_branches = {p[0] for p in flat}
  updates, errors, notes = {}, [], []
  for name, value in sorted(params.items()):
    targets, is_fc = _targets(name)
    for target in targets:
      if target[0] not in has_branches:  # e.g. no pose/local branch in the ablation
        notes.append(f'{name} -> {"/".join(map(str, target))}: not in this model')
        continue
      current = flat.get(target)
      if current is None:
        errors.append(f'{name} -> {"/".join(map(str, target))}: no such parameter in the model')
      elif current.shape != value.shape:
        msg = f'{name} -> {"/".join(map(str, target))}: file {value.shape}, model {current.shape}'
        (notes if is_fc else errors).append(msg + (" (skipped)" if is_fc else ""))
      else:
        updates[target] = value.astype(current.dtype)
  if errors:
    raise WeightImportError(
        f"{path}: {len(errors)} tensor(s) do not fit the {backbone} model:\n  "
        + "\n  ".join(errors)
    )
  for note in notes:
    logging.info("weights: %s", note)
  flat.update(updates)
  state.replace_by_pure_dict(traverse_util.unflatten_dict(flat))
  nnx.update(model, state)
  return sorted("/".join(map(str, t)) for t in updates)
