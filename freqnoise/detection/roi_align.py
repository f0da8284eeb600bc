"""RoIAlign (torchvision.ops.roi_align semantics) and its FPN multi-level form, by gathers.

`roi_align` pools each box into `output_size x output_size` bins, each the mean of
`sampling_ratio^2` bilinear samples on a regular grid in the bin, with torchvision's rules: box
coordinates are scaled by `spatial_scale`, minus 0.5 when `aligned`; without `aligned` the box
width and height are clamped to >= 1; a sample at y < -1 or y > H (x likewise) contributes 0,
otherwise y is clamped to >= 0 and a sample beyond the last row / column reads it alone. Only a
fixed positive `sampling_ratio` is supported (torchvision's adaptive `sampling_ratio <= 0` makes
the sample count depend on the box, not a static shape). Sample coordinates follow the kernel's
float32 arithmetic, but XLA may fuse it (FMAs, x / c as x * (1 / c)), which moves a coordinate
by an ulp: results agree with torchvision to ~ulp(coordinate) x the feature gradient (< 1e-5 for
unit-scale features on maps up to ~64 cells).

Implementation: one image `[H, W, C]` (vmap over images), flattened to `[H * W, C]`; bilinear
weights are separable, so each box needs row indices / weights `[out, s, 2]` and column indices /
weights `[out, s, 2]`; their outer product gives, per bin, K = (2 s)^2 (sample, corner) indices and
weights `[R, out, out, K]`. The output is K gathers of `[R, out, out, C]`, weighted and summed (a
static unrolled sum, which XLA fuses: no `[R, out, out, K, C]` temporary), and a custom VJP runs
the K scatter-adds of the backward pass as a loop over one `[H * W, C]` buffer updated in place
(plain autodiff gives K zero-initialised pyramid-sized buffers). Gradients flow to the features
and, through the bilinear weights, to the boxes.
`multilevel_roi_align` flattens all pyramid levels into one `[sum_l H_l W_l, C]` array and gives
each box the offset, size and scale of its level, so all boxes share the same K gathers whatever
their levels (no pass per level). The level of a box is torchvision's `LevelMapper`:
k = floor(canonical_level + log2(sqrt(area) / canonical_size) + 1e-6) (eps added after the log,
as there; detectron2 adds its 1e-8 inside), clamped to [log2(strides[0]), log2(strides[-1])];
zero-area (padding) boxes go to the first level.
Differences from torchvision's `MultiScaleRoIAlign`: the strides are given rather than inferred
from feature / image sizes, and `aligned` defaults to True (torchvision's Mask R-CNN uses
aligned=False, detectron2's ROIAlignV2 aligned=True). The reference is torchvision's C++ / CUDA
kernel: its pure-Python fallback `_roi_align` (used when the C++ ops are missing) clamps samples
outside [-1, H] instead of zeroing them.
"""

from __future__ import annotations

import math
from typing import Sequence

import jax
import jax.numpy as jnp
from jax import lax

from freqnoise.detection.boxes import area


def _check_args(boxes: jax.Array, output_size: int, sampling_ratio: int) -> None:
  if boxes.ndim != 2 or boxes.shape[1] != 4:
    raise ValueError(f"boxes must have shape [R, 4] (x1, y1, x2, y2), got {boxes.shape}")
  if not isinstance(output_size, int) or output_size < 1:
    raise ValueError(f"output_size must be a positive int, got {output_size!r}")
  if not isinstance(sampling_ratio, int) or sampling_ratio < 1:
    raise ValueError(f"sampling_ratio must be a positive int (adaptive sampling_ratio <= 0 is not "
                     f"supported: it has no static shape), got {sampling_ratio!r}")


def _axis_samples(start: jax.Array, end: jax.Array, size: jax.Array, output_size: int,
                  sampling_ratio: int, aligned: bool) -> tuple[jax.Array, jax.Array]:
  """Along one axis, for boxes [start, end) (scaled, [R]) on a map of `size` [R] cells: the
  (low, high) cell indices and their bilinear weights, both [R, out, s, 2]."""
  length = end - start
  if not aligned:
    length = jnp.maximum(length, 1.0)
  bin_size = (length / output_size)[:, None, None]
  p = jnp.arange(output_size, dtype=jnp.float32)[None, :, None]
  s = jnp.arange(sampling_ratio, dtype=jnp.float32)[None, None, :] + 0.5
  # the order of torchvision's kernel: start + p * bin + (s + 0.5) * bin / sampling_ratio
  coord = start[:, None, None] + p * bin_size + s * bin_size / sampling_ratio
  size_f = size.astype(jnp.float32)[:, None, None]
  last = (size - 1)[:, None, None]
  inside = (coord >= -1.0) & (coord <= size_f)
  coord = jnp.clip(coord, 0.0, size_f)  # clamps >= 0 as torchvision; the upper bound only
  low = jnp.floor(coord).astype(jnp.int32)  # keeps the int cast in range (outside points weigh 0)
  at_end = low >= last
  low = jnp.where(at_end, last, low)
  high = jnp.where(at_end, last, low + 1)
  frac = jnp.where(at_end, 0.0, coord - low.astype(jnp.float32))
  weights = jnp.stack([1.0 - frac, frac], axis=-1) * inside[..., None]
  return jnp.stack([low, high], axis=-1), weights


def _gather_sum(flat: jax.Array, index: jax.Array, weight: jax.Array) -> jax.Array:
  """sum_k flat[index[..., k]] * weight[..., k]: `flat` [S, C], `index` int32 / `weight` [..., K]
  -> [..., C] float32. One gather of [..., C] per k, accumulated: XLA fuses the chain, so no
  [..., K, C] array of gathered values is ever materialised."""
  out = jnp.zeros(index.shape[:-1] + flat.shape[-1:], jnp.float32)
  for k in range(index.shape[-1]):
    out = out + jnp.take(flat, index[..., k], axis=0, mode="clip") * weight[..., k, None]
  return out


def _gather_sum_fwd(flat, index, weight):
  return _gather_sum(flat, index, weight), (flat, index, weight)


def _gather_sum_bwd(residuals, g):
  """The VJP: a loop of K scatter-adds into one [S, C] buffer, updated in place (autodiff would
  scatter each k into its own zeros, and XLA may schedule all K [..., C] updates at once)."""
  flat, index, weight = residuals
  channels = flat.shape[-1]

  def step(k, d_flat):
    rows = lax.dynamic_index_in_dim(index, k, axis=-1, keepdims=False).reshape(-1)
    w = lax.dynamic_index_in_dim(weight, k, axis=-1, keepdims=False)
    return d_flat.at[rows].add((g * w[..., None]).reshape(-1, channels), mode="clip")

  d_flat = lax.fori_loop(0, index.shape[-1], step, jnp.zeros(flat.shape, jnp.float32))
  d_weight = jnp.stack([jnp.sum(g * jnp.take(flat, index[..., k], axis=0, mode="clip"), axis=-1)
                        for k in range(index.shape[-1])], axis=-1)
  return d_flat.astype(flat.dtype), None, d_weight.astype(weight.dtype)


_weighted_gather = jax.custom_vjp(_gather_sum)
_weighted_gather.defvjp(_gather_sum_fwd, _gather_sum_bwd)


def _pool(flat: jax.Array, boxes: jax.Array, offsets: jax.Array, heights: jax.Array,
          widths: jax.Array, scales: jax.Array, output_size: int, sampling_ratio: int,
          aligned: bool) -> jax.Array:
  """RoIAlign from `flat` [S, C]; box r reads the `heights[r] x widths[r]` map stored row-major at
  `flat[offsets[r]:]` with coordinates scaled by `scales[r]` -> [R, out, out, C]."""
  boxes = boxes.astype(jnp.float32)
  shift = 0.5 if aligned else 0.0
  x1, y1, x2, y2 = (boxes[:, k] * scales - shift for k in range(4))
  rows, wy = _axis_samples(y1, y2, heights, output_size, sampling_ratio, aligned)
  cols, wx = _axis_samples(x1, x2, widths, output_size, sampling_ratio, aligned)
  # [R, out_y, out_x, s_y, corner_y, s_x, corner_x] -> [R, out, out, K = (2 s)^2]
  y_part = (offsets[:, None, None, None] + rows * widths[:, None, None, None])
  index = y_part[:, :, None, :, :, None, None] + cols[:, None, :, None, None, :, :]
  weight = wy[:, :, None, :, :, None, None] * wx[:, None, :, None, None, :, :]
  weight = weight / (sampling_ratio * sampling_ratio)
  k = (2 * sampling_ratio) ** 2
  r = boxes.shape[0]
  out = _weighted_gather(flat, index.reshape(r, output_size, output_size, k),
                         weight.reshape(r, output_size, output_size, k))
  return out.astype(flat.dtype)


def roi_align(features: jax.Array, boxes: jax.Array, output_size: int, spatial_scale: float,
              sampling_ratio: int = 2, aligned: bool = True) -> jax.Array:
  """`features` [H, W, C], `boxes` [R, 4] in input pixels -> [R, output_size, output_size, C]."""
  features, boxes = jnp.asarray(features), jnp.asarray(boxes)
  if features.ndim != 3:
    raise ValueError(f"features must have shape [H, W, C] (vmap over images), got {features.shape}")
  _check_args(boxes, output_size, sampling_ratio)
  h, w, c = features.shape
  r = boxes.shape[0]
  full = lambda v, dtype: jnp.full((r,), v, dtype)
  return _pool(features.reshape(h * w, c), boxes, full(0, jnp.int32), full(h, jnp.int32),
               full(w, jnp.int32), full(spatial_scale, jnp.float32), output_size,
               sampling_ratio, aligned)


def _level_range(strides: Sequence[int]) -> tuple[int, int]:
  logs = [math.log2(s) if s > 0 else float("nan") for s in strides]
  if not strides or any(l != round(l) for l in logs) or list(strides) != sorted(set(strides)):
    raise ValueError(f"strides must be increasing powers of two, got {tuple(strides)}")
  return round(logs[0]), round(logs[-1])


def fpn_levels(boxes: jax.Array, strides: Sequence[int] = (4, 8, 16, 32),
               canonical_level: int = 4, canonical_size: float = 224) -> jax.Array:
  """int32 [R]: the index into `strides` of the level each box [R, 4] is pooled from."""
  boxes = jnp.asarray(boxes)
  if boxes.ndim != 2 or boxes.shape[1] != 4:
    raise ValueError(f"boxes must have shape [R, 4] (x1, y1, x2, y2), got {boxes.shape}")
  k_min, k_max = _level_range(strides)
  size = jnp.sqrt(area(boxes.astype(jnp.float32)))
  k = jnp.floor(canonical_level + jnp.log2(size / canonical_size) + 1e-6)
  return (jnp.clip(k, k_min, k_max) - k_min).astype(jnp.int32)


def multilevel_roi_align(features: Sequence[jax.Array], boxes: jax.Array, output_size: int,
                         strides: Sequence[int] = (4, 8, 16, 32), sampling_ratio: int = 2,
                         canonical_level: int = 4, canonical_size: float = 224,
                         aligned: bool = True) -> jax.Array:
  """Each box [R, 4] pooled from its FPN level of `features` ([H_l, W_l, C], one per stride,
  finest first: P2..P5) -> [R, output_size, output_size, C]."""
  features = [jnp.asarray(f) for f in features]
  boxes = jnp.asarray(boxes)
  _check_args(boxes, output_size, sampling_ratio)
  if len(features) != len(strides):
    raise ValueError(f"got {len(features)} feature levels for {len(strides)} strides {strides}")
  if any(f.ndim != 3 or f.shape[-1] != features[0].shape[-1] for f in features):
    raise ValueError(f"features must be [H_l, W_l, C] with one C, got shapes "
                     f"{[f.shape for f in features]}")
  levels = fpn_levels(boxes, strides, canonical_level, canonical_size)
  sizes = [f.shape[0] * f.shape[1] for f in features]
  table = lambda values, dtype: jnp.asarray(values, dtype)[levels]
  offsets = table([sum(sizes[:l]) for l in range(len(sizes))], jnp.int32)
  heights = table([f.shape[0] for f in features], jnp.int32)
  widths = table([f.shape[1] for f in features], jnp.int32)
  scales = table([1.0 / s for s in strides], jnp.float32)
  flat = jnp.concatenate([f.reshape(-1, f.shape[-1]) for f in features], axis=0)
  return _pool(flat, boxes, offsets, heights, widths, scales, output_size, sampling_ratio,
               aligned)
