"""Box arithmetic: area, pairwise IoU, the R-CNN delta coding, clipping and flipping.

Boxes are float `(x1, y1, x2, y2)` in pixels, continuous coordinates, width = x2 - x1 (see the
package docstring). Every function is plain jnp, jittable, and broadcasts over leading dimensions.

`encode` / `decode` are torchvision's `BoxCoder.encode_single` / `decode_single`: with anchor
width w_a, height h_a and centre (x_a, y_a),
    dx = wx * (x - x_a) / w_a,   dy = wy * (y - y_a) / h_a,
    dw = ww * log(w / w_a),      dh = wh * log(h / h_a),
and `decode` clamps dw / wh, dh / wh at `clip` (log(1000 / 16), as torchvision) before the exp.
Differences from torchvision: `area` counts an inverted side (x2 < x1) as 0 rather than negative,
and `iou` is 0 (not NaN) when the union is empty (two zero-area boxes).
"""

from __future__ import annotations

import math
from typing import Sequence

import jax
import jax.numpy as jnp

DEFAULT_CLIP = math.log(1000.0 / 16)


def _check_boxes(boxes: jax.Array, name: str = "boxes") -> None:
  if boxes.ndim < 1 or boxes.shape[-1] != 4:
    raise ValueError(f"{name} must have shape [..., 4] (x1, y1, x2, y2), got {boxes.shape}")


def _check_weights(weights: Sequence[float]) -> tuple[float, float, float, float]:
  weights = tuple(float(w) for w in weights)
  if len(weights) != 4 or any(not w > 0 for w in weights):
    raise ValueError(f"weights must be 4 positive numbers (wx, wy, ww, wh), got {weights}")
  return weights


def area(boxes: jax.Array) -> jax.Array:
  """`[..., 4]` -> `[...]`: (x2 - x1) * (y2 - y1), each side clamped at 0."""
  boxes = jnp.asarray(boxes)
  _check_boxes(boxes)
  w = jnp.maximum(boxes[..., 2] - boxes[..., 0], 0)
  h = jnp.maximum(boxes[..., 3] - boxes[..., 1], 0)
  return w * h


def iou(a: jax.Array, b: jax.Array) -> jax.Array:
  """Pairwise IoU `[..., N, 4] x [..., M, 4] -> [..., N, M]` (leading dims broadcast).

  inter / (area_a + area_b - inter), the order of torchvision's NMS kernel, so a threshold test
  `iou > t` decides as it does; 0 where the union is 0 (degenerate boxes), never NaN."""
  a, b = jnp.asarray(a), jnp.asarray(b)
  _check_boxes(a, "a")
  _check_boxes(b, "b")
  if a.ndim < 2 or b.ndim < 2:
    raise ValueError(f"iou needs a [..., N, 4] and b [..., M, 4], got {a.shape} and {b.shape}")
  a_, b_ = a[..., :, None, :], b[..., None, :, :]
  w = jnp.maximum(jnp.minimum(a_[..., 2], b_[..., 2]) - jnp.maximum(a_[..., 0], b_[..., 0]), 0)
  h = jnp.maximum(jnp.minimum(a_[..., 3], b_[..., 3]) - jnp.maximum(a_[..., 1], b_[..., 1]), 0)
  inter = w * h
  union = area(a)[..., :, None] + area(b)[..., None, :] - inter
  positive = union > 0
  return jnp.where(positive, inter / jnp.where(positive, union, 1), 0)


def _centre_size(boxes: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
  w = boxes[..., 2] - boxes[..., 0]
  h = boxes[..., 3] - boxes[..., 1]
  return boxes[..., 0] + 0.5 * w, boxes[..., 1] + 0.5 * h, w, h


def encode(boxes: jax.Array, anchors: jax.Array,
           weights: Sequence[float] = (1.0, 1.0, 1.0, 1.0)) -> jax.Array:
  """Regression targets `[..., 4]` (dx, dy, dw, dh) taking `anchors` to `boxes` (broadcast).

  Anchors and boxes need positive width and height: a zero side gives inf / NaN, as torchvision."""
  boxes, anchors = jnp.asarray(boxes), jnp.asarray(anchors)
  _check_boxes(boxes)
  _check_boxes(anchors, "anchors")
  wx, wy, ww, wh = _check_weights(weights)
  ax, ay, aw, ah = _centre_size(anchors)
  gx, gy, gw, gh = _centre_size(boxes)
  return jnp.stack([wx * (gx - ax) / aw, wy * (gy - ay) / ah,
                    ww * jnp.log(gw / aw), wh * jnp.log(gh / ah)], axis=-1)


def decode(deltas: jax.Array, anchors: jax.Array,
           weights: Sequence[float] = (1.0, 1.0, 1.0, 1.0),
           clip: float = DEFAULT_CLIP) -> jax.Array:
  """Boxes `[..., 4]` from `deltas` relative to `anchors` (broadcast); inverse of `encode`.

  dw / ww and dh / wh are clamped from above at `clip` before the exp (no lower clamp), as
  torchvision, so a huge predicted delta cannot overflow."""
  deltas, anchors = jnp.asarray(deltas), jnp.asarray(anchors)
  _check_boxes(deltas, "deltas")
  _check_boxes(anchors, "anchors")
  wx, wy, ww, wh = _check_weights(weights)
  ax, ay, aw, ah = _centre_size(anchors)
  dx, dy = deltas[..., 0] / wx, deltas[..., 1] / wy
  dw = jnp.minimum(deltas[..., 2] / ww, clip)
  dh = jnp.minimum(deltas[..., 3] / wh, clip)
  cx, cy = dx * aw + ax, dy * ah + ay
  half_w, half_h = 0.5 * (jnp.exp(dw) * aw), 0.5 * (jnp.exp(dh) * ah)
  return jnp.stack([cx - half_w, cy - half_h, cx + half_w, cy + half_h], axis=-1)


def _per_leading(value, boxes: jax.Array, name: str) -> jax.Array:
  """A scalar or an array over the leading dims of `boxes` (e.g. [B] for [B, N, 4]), shaped to
  broadcast against boxes[..., k]."""
  value = jnp.asarray(value, dtype=boxes.dtype)
  lead = boxes.ndim - 1
  if value.ndim > lead or value.shape != boxes.shape[:value.ndim]:
    raise ValueError(f"{name} must be a scalar or have a prefix of the boxes' leading shape "
                     f"{boxes.shape[:-1]}, got shape {value.shape}")
  return value.reshape(value.shape + (1,) * (lead - value.ndim))


def clip_to_image(boxes: jax.Array, height, width) -> jax.Array:
  """Clamp x to [0, width] and y to [0, height]. `height` / `width`: scalars (traced or not) or
  arrays over the leading dims of `boxes`, e.g. per-image [B] for boxes [B, N, 4]."""
  boxes = jnp.asarray(boxes)
  _check_boxes(boxes)
  h = _per_leading(height, boxes, "height")
  w = _per_leading(width, boxes, "width")
  x1, y1, x2, y2 = (boxes[..., k] for k in range(4))
  return jnp.stack([jnp.clip(x1, 0, w), jnp.clip(y1, 0, h),
                    jnp.clip(x2, 0, w), jnp.clip(y2, 0, h)], axis=-1)


def flip_horizontal(boxes: jax.Array, width) -> jax.Array:
  """Boxes of the image mirrored left-right: x -> width - x (x1 and x2 swap roles). `width` as in
  `clip_to_image`."""
  boxes = jnp.asarray(boxes)
  _check_boxes(boxes)
  w = _per_leading(width, boxes, "width")
  return jnp.stack([w - boxes[..., 2], boxes[..., 1], w - boxes[..., 0], boxes[..., 3]], axis=-1)
