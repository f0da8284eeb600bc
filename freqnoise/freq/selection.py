"""Static frequency-channel selection: published presets, top-k masks from gate statistics, heat maps.

Channels are indexed as in `freqnoise.freq.dct`: `64 * plane + 8v + u`, planes Y, Cb, Cr.

Presets are the subsets of "Learning in the Frequency Domain" (Xu, Qin, Sun, Wang, Chen, Ren;
CVPR 2020), copied from the authors' code, github.com/kaix90/DCTNet,
`classification/main/__init__.py` (`subset_channel_index`; also
`segmentation/mmdet/datasets/pipelines/dct_channel_index.py`). They are the low-frequency corner of
each plane, indices `8v + u` in raster order, not always exact squares:
    6  = Y 2x2                       + Cb DC             + Cr DC
    24 = Y 4x4                       + Cb 2x2            + Cr 2x2
    32 = Y 22 (5x5 minus 3 corners)  + Cb 5 (3 + 2)      + Cr 5
    48 = Y 32 (6x4 + 4x2)            + Cb 8 (3 + 3 + 2)  + Cr 8
    64 = Y 44 (7x2 + 6x5)            + Cb 10 (3+3+2+2)   + Cr 10
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from freqnoise.freq.dct import COEFFS_PER_PLANE, NUM_CHANNELS, PLANES


def _rows(*widths: int) -> tuple[int, ...]:
  """Raster indices of a low-frequency corner whose row v keeps the first `widths[v]` columns."""
  return tuple(8 * v + u for v, width in enumerate(widths) for u in range(width))


# (Y, Cb, Cr) raster indices per preset; see the module docstring for the source.
PRESETS: dict[int, tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]] = {
    6: (_rows(2, 2), _rows(1), _rows(1)),
    24: (_rows(4, 4, 4, 4), _rows(2, 2), _rows(2, 2)),
    32: (_rows(5, 5, 5, 4, 3), _rows(3, 2), _rows(3, 2)),
    48: (_rows(6, 6, 6, 6, 4, 4), _rows(3, 3, 2), _rows(3, 3, 2)),
    64: (_rows(7, 7, 6, 6, 6, 6, 6), _rows(3, 3, 2, 2), _rows(3, 3, 2, 2)),
}


def preset_channels(num_channels: int) -> np.ndarray:
  """Sorted channel indices (into the 192) of the published preset with `num_channels` channels.

  192 means all channels. Any other count raises a ValueError naming the available presets.
  """
  if num_channels == NUM_CHANNELS:
    return np.arange(NUM_CHANNELS, dtype=np.int32)
  if num_channels not in PRESETS:
    raise ValueError(f"no published channel preset with {num_channels} channels; available: "
                     f"{sorted(PRESETS) + [NUM_CHANNELS]}")
  planes = PRESETS[num_channels]
  return np.array([COEFFS_PER_PLANE * p + i for p, idx in enumerate(planes) for i in idx], np.int32)


def check_channels(channels: Any) -> np.ndarray:
  """Validates a channel subset: unique ints in [0, 192). Returns it as a sorted int32 array."""
  channels = np.asarray(channels)
  if channels.ndim != 1 or channels.size == 0 or not np.issubdtype(channels.dtype, np.integer):
    raise ValueError(f"channels must be a non-empty 1-D list of integers, got {channels!r}")
  if channels.min() < 0 or channels.max() >= NUM_CHANNELS or len(set(channels.tolist())) != channels.size:
    raise ValueError(f"channels must be unique indices in [0, {NUM_CHANNELS}), got {channels.tolist()}")
  return np.sort(channels).astype(np.int32)


def select_channels(coeffs, channels) -> Any:
  """`coeffs[..., channels]` for `[..., 192]` DCT coefficients (numpy or jax)."""
  if coeffs.shape[-1] != NUM_CHANNELS:
    raise ValueError(f"expected {NUM_CHANNELS} DCT channels on the last axis, got shape {coeffs.shape}")
  return coeffs[..., check_channels(channels)]


def selection_frequency(gate_stats: Mapping[str, Any]) -> np.ndarray:
  """Fraction of training examples for which each channel's gate was on: `[C]` in [0, 1].

  `gate_stats` is the `gate_stats` collection of a model (any nesting); it must hold exactly one
  gate's `selected` (counts per channel) and `examples` (count) leaves.
  """
  found = []

  def walk(tree):
    if isinstance(tree, Mapping):
      if "selected" in tree and "examples" in tree:
        found.append(tree)
      else:
        for value in tree.values():
          walk(value)

  walk(gate_stats)
  if len(found) != 1:
    raise ValueError(f"expected one gate's statistics (selected, examples), found {len(found)}")
  examples = float(np.asarray(found[0]["examples"]))
  if examples <= 0:
    raise ValueError("the gate has seen no training examples yet (examples == 0)")
  return np.asarray(found[0]["selected"], np.float64) / examples


def top_k_channels(frequency, k: int) -> np.ndarray:
  """The `k` most often selected channels, sorted; ties go to the lower (lower-frequency) index."""
  frequency = np.asarray(frequency)
  if frequency.ndim != 1:
    raise ValueError(f"frequency must be 1-D [channels], got shape {frequency.shape}")
  if not 1 <= k <= frequency.size:
    raise ValueError(f"k must be in 1..{frequency.size}, got {k}")
  order = np.argsort(-frequency, kind="stable")
  return np.sort(order[:k]).astype(np.int32)


def channel_mask(channels, num_channels: int = NUM_CHANNELS) -> np.ndarray:
  """Boolean `[num_channels]` mask that is True on `channels`."""
  mask = np.zeros(num_channels, bool)
  mask[check_channels(channels)] = True
  return mask


def plot_heat_map(frequency, path: str | None = None, *, title: str = "gate selection frequency",
                  highlight=None):
  """3x8x8 heat map (Y, Cb, Cr; rows v, columns u) of per-channel values, e.g. selection frequency.

  `highlight`: optional channel subset outlined on the map (e.g. a preset). Saves a PNG to `path` if
  given; returns the matplotlib figure.
  """
  import matplotlib
  if path is not None:
    matplotlib.use("Agg", force=False)
  import matplotlib.pyplot as plt

  values = np.asarray(frequency, np.float64)
  if values.shape != (NUM_CHANNELS,):
    raise ValueError(f"heat map needs one value per channel, shape ({NUM_CHANNELS},), got {values.shape}")
  grid = values.reshape(3, 8, 8)
  mask = channel_mask(highlight).reshape(3, 8, 8) if highlight is not None else None
  vmax = 1.0 if values.max() <= 1.0 else values.max()  # frequencies share a fixed 0..1 scale
  fig, axes = plt.subplots(1, 3, figsize=(10, 3.4))
  for p, ax in enumerate(axes):
    im = ax.imshow(grid[p], vmin=min(0.0, values.min()), vmax=vmax, cmap="viridis")
    ax.set_title(PLANES[p])
    ax.set_xlabel("u (horizontal frequency)")
    ax.set_ylabel("v (vertical frequency)")
    ax.set_xticks(range(8))
    ax.set_yticks(range(8))
    if mask is not None:
      for v, u in zip(*np.nonzero(mask[p])):
        ax.add_patch(plt.Rectangle((u - 0.5, v - 0.5), 1, 1, fill=False, edgecolor="red", linewidth=1.2))
  fig.colorbar(im, ax=list(axes), shrink=0.8)
  fig.suptitle(title)
  if path is not None:
    fig.savefig(path, dpi=120, bbox_inches="tight")
  return fig
