"""The kernels of an optimised XLA program, read off its HLO text (`compiled.as_text()`).

Each top-level instruction of the ENTRY computation that launches work becomes an
`Op`: its kind (cuDNN convolution and its direction and fused activation, GEMM,
reduction, elementwise, transpose, scatter, copy, ...) and the bytes of its
operands and result. For a fusion those bytes are what it moves through memory
(each operand read once, the result written once), so memory-bound kernels can be
priced at the card's bandwidth without running them (benchmarks/hlo_audit.py).
"""

from __future__ import annotations

import collections
import dataclasses
import re

# Bytes per element by HLO type name; sub-byte and token types count as 1 and 0.
_DTYPE_BYTES = {
    "pred": 1,
    "s4": 1,
    "u4": 1,
    "s8": 1,
    "u8": 1,
    "s16": 2,
    "u16": 2,
    "s32": 4,
    "u32": 4,
    "s64": 8,
    "u64": 8,
    "f16": 2,
    "bf16": 2,
    "f32": 4,
    "f64": 8,
    "c64": 8,
    "c128": 16,
    "token": 0,
}
_ARRAY = re.compile(r"\b([a-z]+[0-9a-z]*)\[([\d,]*)\]")
_NAME = re.compile(r"%([\w.\-]+)")
# Instructions that launch no kernel of their own.
_FREE = {
    "parameter",
    "get-tuple-element",
    "tuple",
    "bitcast",
    "constant",
    "opt-barrier",
    "after-all",
    "partition-id",
    "replica-id",
    "copy-done",
    "add-dependency",
    "domain",
}
KINDS = (
    "convolution",
    "matmul",
    "reduction",
    "elementwise",
    "transpose",
    "scatter/gather",
    "copy",
    "other",
)


@dataclasses.dataclass(frozen=True)
class Op:
  name: str
  opcode: str
  kind: str  # one of KINDS
  detail: str  # e.g. 'forward+relu', 'backward_input', the fusion's callee
  bytes_in: int
  bytes_out: int
  shape: str  # the result's shape as printed
  op_name: str  # the JAX op it came from (metadata), '' if none
  flops: float = 0.0  # convolutions: multiply-adds × 2 (taps outside the map included)

  @property
  def bytes(self) -> int:
    return self.bytes_in + self.bytes_out


def shape_bytes(shape: str) -> int:
  """Bytes of an HLO shape string: an array `bf16[2,3]{1,0}` or a tuple of them."""
  total = 0
  for dtype, dims in _ARRAY.findall(shape):
    if dtype not in _DTYPE_BYTES:
      continue
    n = 1
    for d in filter(None, dims.split(",")):
      n *= int(d)
    total += n * _DTYPE_BYTES[dtype]
  return total


def _closing(text: str, start: int) -> int:
  """Index just past the bracket group opening at text[start]."""
  depth = 0
  pairs = {"(": ")", "[": "]", "{": "}"}
  for i in range(start, len(text)):
    c = text[i]
    if c in pairs:
      depth += 1
    elif c in ")]}":
      depth -= 1
      if depth == 0:
        return i + 1
  raise ValueError(f"unbalanced brackets in HLO line: {text[:120]!r}")


def _parse_line(line: str):
  """(name, shape, opcode, operand names, attributes) of one instruction line, or None."""
  m = re.match(r"\s*(?:ROOT\s+)?%([\w.\-]+)\s*=\s*", line)
  if not m:
    return None
  rest = line[m.end() :]
  if rest.startswith("("):
    end = _closing(rest, 0)
  else:
    end = rest.index(" ")
  shape, rest = rest[:end], rest[end:].lstrip()
  op = re.match(r"([\w\-]+)\(", rest)
  if not op:
    return None
  close = _closing(rest, op.end() - 1)
  operands = _NAME.findall(rest[op.end() : close - 1])
  return m.group(1), shape, op.group(1), operands, rest[close:]


def entry_lines(hlo_text: str) -> list[str]:
  """The instruction lines of the ENTRY computation."""
  lines = hlo_text.splitlines()
  for i, line in enumerate(lines):
    if line.startswith("ENTRY"):
      body = []
      for inner in lines[i + 1 :]:
        if inner.startswith("}"):
          return body
        body.append(inner)
  raise ValueError("no ENTRY computation in the HLO text")


def _classify(opcode: str, attrs: str, name: str) -> tuple[str, str]:
  target = re.search(r'custom_call_target="([^"]+)"', attrs)
  target = target.group(1) if target else ""
  if opcode == "custom-call":
    if "conv" in target.lower():
      direction = (
          "forward"
          if "Forward" in target
          else "backward_input"
          if "BackwardInput" in target
          else "backward_filter"
          if "BackwardFilter" in target
          else target
      )
      activation = re.search(r'"activation_mode":"k(\w+)"', attrs)
      if activation and activation.group(1) != "None":
        direction += "+" + activation.group(1).lower()
      return "convolution", direction
    if "gemm" in target.lower() or "matmul" in target.lower() or "cublas" in target.lower():
      return "matmul", target
    return "other", target
  if opcode == "convolution":
    return "convolution", "xla"
  if opcode == "dot":
    return "matmul", "xla"
  if opcode in ("copy", "copy-start"):
    return "copy", opcode
  if opcode in ("scatter", "gather", "select-and-scatter"):
    return "scatter/gather", opcode
  if opcode in ("reduce", "reduce-window"):
    return "reduction", opcode
  if opcode == "transpose":
    return "transpose", opcode
  if opcode == "fusion":
    callee = re.search(r"calls=%([\w.\-]+)", attrs)
    callee = callee.group(1) if callee else ""
    kind = re.search(r"kind=k(\w+)", attrs)
    kind = kind.group(1) if kind else ""
    label = callee.lower() + " " + name.lower()
    if "gemm" in label or "dot" in label or '"triton_gemm' in attrs or "cublas" in attrs:
      return "matmul", callee
    if kind == "Custom" and ("conv" in label or "cudnn" in attrs):
      return "convolution", callee
    if "scatter" in label or "gather" in label:
      return "scatter/gather", callee
    if "transpose" in label:
      return "transpose", callee
    if kind == "Input" or "reduce" in label:
      return "reduction", callee
    return "elementwise", callee
  return "other", opcode


def _dims(shape: str) -> list[int]:
  """Dimensions of the first array in a shape string."""
  match = _ARRAY.search(shape)
  return [int(d) for d in match.group(2).split(",") if d] if match else []


def _prod(dims) -> int:
  n = 1
  for d in dims:
    n *= d
  return n


def conv_flops(direction: str, out_shape: str, operand_shapes: list[str], attrs: str) -> float:
  """2 × (forward output positions) × (kernel elements) for a cuDNN convolution.

  The three directions do the forward's multiply-adds: the positions come from
  the forward output (the result, or the output gradient operand), the kernel
  from the kernel operand (or the result, for the weight gradient). Needs the
  NHWC activations XLA uses on GPUs (dim_labels b01f...); 0 if the layout differs.
  """
  labels = re.search(r"dim_labels=(\w+)_(\w+)->(\w+)", attrs)
  if not labels or not labels.group(1).startswith("b") or not labels.group(1).endswith("f"):
    return 0.0
  if direction.startswith("forward"):
    positions, kernel = _dims(out_shape)[:-1], _dims(operand_shapes[1])
  elif direction == "backward_input":
    positions, kernel = _dims(operand_shapes[0])[:-1], _dims(operand_shapes[1])
  elif direction == "backward_filter":
    positions, kernel = _dims(operand_shapes[1])[:-1], _dims(out_shape)
  else:
    return 0.0
  return 2.0 * _prod(positions) * _prod(kernel)


def hlo_conv_flops(out_shape: str, kernel_shape: str, attrs: str) -> float:
  """An HLO `convolution` (CPU, or before the GPU rewrite), any direction: 2 × output
  elements × the kernel elements feeding each (kernel size / its output features)."""
  labels = re.search(r"dim_labels=\w+_(\w+)->\w+", attrs)
  kernel = _dims(kernel_shape)
  if not labels or len(labels.group(1)) != len(kernel) or "o" not in labels.group(1):
    return 0.0
  # Grouped or not, each output element sums kernel elements / output features.
  return 2.0 * _prod(_dims(out_shape)) * _prod(kernel) / kernel[labels.group(1).index("o")]


def census(hlo_text: str) -> list[Op]:
  """Every kernel-launching instruction of the ENTRY computation, in schedule order."""
  sizes: dict[str, int] = {}
  shapes: dict[str, str] = {}
  ops = []
  for line in entry_lines(hlo_text):
    parsed = _parse_line(line)
    if parsed is None:
      continue
    name, shape, opcode, operands, attrs = parsed
    out = shape_bytes(shape)
    sizes[name], shapes[name] = out, shape
    if opcode in _FREE:
      continue
    kind, detail = _classify(opcode, attrs, name)
    op_name = re.search(r'op_name="([^"]*)"', attrs)
    flops = 0.0
    if kind == "convolution" and opcode == "custom-call":
      flops = conv_flops(detail, shape, [shapes.get(o, "") for o in operands], attrs)
    elif opcode == "convolution":
      flops = hlo_conv_flops(shape, shapes.get(operands[1], "") if len(operands) > 1 else "", attrs)
    ops.append(
        Op(
            name=name,
            opcode=opcode,
            kind=kind,
            detail=detail,
            bytes_in=sum(sizes.get(o, 0) for o in operands),
            bytes_out=out,
            shape=shape,
            op_name=op_name.group(1) if op_name else "",
            flops=flops,
        )
    )
  return ops


def donated_outputs(hlo_text: str) -> int:
  """How many outputs alias a parameter (buffer donation), from the module header."""
  header = hlo_text.split("\n", 1)[0]
  start = header.find("input_output_alias={")
  if start < 0:
    return 0
  block = header[start : _closing(header, header.index("{", start))]
  return len(re.findall(r"\{[\d,\s]*\}:\s*\(", block))


def summarise(ops: list[Op]) -> dict:
  """Per kind: kernel count and bytes moved; per convolution direction: count."""
  by_kind = {k: dict(kernels=0, bytes=0) for k in KINDS}
  for op in ops:
    by_kind[op.kind]["kernels"] += 1
    by_kind[op.kind]["bytes"] += op.bytes
  convs = collections.Counter(op.detail for op in ops if op.kind == "convolution")
  return dict(
      by_kind=by_kind,
      convolutions=dict(sorted(convs.items())),
      kernels=len(ops),
      bytes=sum(op.bytes for op in ops),
  )
