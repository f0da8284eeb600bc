"""The convolution `NoisyConv` runs: `lax.conv_general_dilated`, except depthwise convolutions on CPU.

XLA:CPU lowers a grouped convolution with one input channel per group (a depthwise conv, as in
MobileNetV2) to a slow generic loop: for MobileNetV2's depthwise layers at batch 64 the same sum
written as 9 shifted, strided slices times the kernel's taps is 4.5-9x faster with its gradient,
and a whole MobileNetV2 train step 3.7x (`experiments/benchmarks/bench_depthwise.py`, RESULTS.md).
So on CPU `conv_general_dilated` computes such convolutions as that sum (the same products, summed
in another order: equal to lax's result to float32 rounding); every other convolution, and every
convolution on GPU / TPU (where cuDNN / XLA have fast depthwise kernels), is lax's, unchanged.
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
from jax import lax

_NHWC = lax.ConvDimensionNumbers(lhs_spec=(0, 3, 1, 2), rhs_spec=(3, 2, 0, 1), out_spec=(0, 3, 1, 2))


def depthwise_conv(x: jax.Array, kernel: jax.Array, strides: Sequence[int],
                   padding: Sequence[tuple[int, int]]) -> jax.Array:
  """Depthwise 2-D convolution as a sum of shifted slices.

  Args:
    x: `[N, H, W, C]`.
    kernel: `[kh, kw, 1, C]` (channel multiplier 1).
    strides: `(sh, sw)`.
    padding: `((top, bottom), (left, right))`, each >= 0.
  Returns `[N, H', W', C]`, `H' = (H + top + bottom - kh) // sh + 1` (likewise W'), the result of
  `lax.conv_general_dilated(x, kernel, strides, padding, feature_group_count=C)` in NHWC / HWIO.
  Products are accumulated in float32 at least (as XLA's convolutions do), then cast back.
  """
  if x.ndim != 4 or kernel.ndim != 4 or kernel.shape[2] != 1 or kernel.shape[3] != x.shape[3]:
    raise ValueError(f"depthwise_conv needs x [N, H, W, C] and a kernel [kh, kw, 1, C]; got x "
                     f"{x.shape} and kernel {kernel.shape}")
  if any(p < 0 for pair in padding for p in pair):
    raise ValueError(f"depthwise_conv needs padding >= 0, got {padding}")
  (kh, kw), (sh, sw) = kernel.shape[:2], strides
  out_dtype = jnp.result_type(x, kernel)
  acc_dtype = jnp.promote_types(out_dtype, jnp.float32)
  x = jnp.pad(x, ((0, 0), tuple(padding[0]), tuple(padding[1]), (0, 0))).astype(acc_dtype)
  kernel = kernel.astype(acc_dtype)
  height, width = (x.shape[1] - kh) // sh + 1, (x.shape[2] - kw) // sw + 1
  if height < 1 or width < 1:
    raise ValueError(f"depthwise_conv: the padded input {x.shape[1:3]} is smaller than the "
                     f"kernel {(kh, kw)}")
  y = None
  for i in range(kh):
    for j in range(kw):
      tap = x[:, i:i + (height - 1) * sh + 1:sh, j:j + (width - 1) * sw + 1:sw, :] * kernel[i, j, 0]
      y = tap if y is None else y + tap
  return y.astype(out_dtype)


def _is_depthwise_nhwc(lhs, rhs, lhs_dilation, rhs_dilation, dimension_numbers,
                       feature_group_count, batch_group_count) -> bool:
  dims = (lax.conv_dimension_numbers(lhs.shape, rhs.shape, dimension_numbers)
          if dimension_numbers is not None else None)
  return (lhs.ndim == 4 and dims == _NHWC and rhs.shape[2] == 1 and feature_group_count > 1
          and feature_group_count == lhs.shape[3] == rhs.shape[3] and batch_group_count == 1
          and all(d == 1 for d in (lhs_dilation or ())) and all(d == 1 for d in (rhs_dilation or ())))


def conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation=None, rhs_dilation=None,
                         dimension_numbers=None, feature_group_count=1, batch_group_count=1,
                         precision=None, preferred_element_type=None) -> jax.Array:
  """`lax.conv_general_dilated`, with NHWC depthwise convolutions on CPU as `depthwise_conv`."""
  if (jax.default_backend() == "cpu" and preferred_element_type is None
      and _is_depthwise_nhwc(lhs, rhs, lhs_dilation, rhs_dilation, dimension_numbers,
                             feature_group_count, batch_group_count)):
    pads = (lax.padtype_to_pads(lhs.shape[1:3], rhs.shape[:2], window_strides, padding)
            if isinstance(padding, str) else [tuple(p) for p in padding])
    padded = [n + lo + hi for n, (lo, hi) in zip(lhs.shape[1:3], pads)]
    # negative padding and an input smaller than the kernel (an empty output) stay lax's
    if all(p >= 0 for pair in pads for p in pair) and all(
        n >= k for n, k in zip(padded, rhs.shape[:2])):
      return depthwise_conv(lhs, rhs, window_strides, pads)
  return lax.conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation, rhs_dilation,
                                  dimension_numbers, feature_group_count, batch_group_count,
                                  precision, preferred_element_type)
