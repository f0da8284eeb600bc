"""Figures for the noisy-inference experiments (matplotlib; PNG files and notebook output).

Inputs are `MCResult`s (freqnoise.robust.montecarlo), e.g. read back from a run's
montecarlo.json with `freqnoise.robust.result_from_json`, keyed by a legend label such
as "clean-trained" or "trained at 0 dB".
"""

from __future__ import annotations

import math
from typing import Mapping

import matplotlib.pyplot as plt
import numpy as np

from freqnoise.robust.montecarlo import MCResult

VOTES = ("majority", "mean_prob")


def _x_positions(snrs: np.ndarray, inf_at: float) -> np.ndarray:
  return np.where(np.isinf(snrs), inf_at, snrs)


def _check_runs(runs: Mapping[str, MCResult]) -> None:
  if not runs:
    raise ValueError("no runs to plot")
  for label, r in runs.items():
    if not isinstance(r, MCResult):
      raise TypeError(f"run {label!r} is a {type(r).__name__}, expected an MCResult")


def plot_accuracy_vs_snr(runs: Mapping[str, MCResult], path: str | None = None, *,
                         vote: str = "mean_prob", title: str = "") -> plt.Figure:
  """Accuracy (%) vs eval SNR (dB): per run, the mean single noisy pass with the band holding 95%
  of passes (2.5th-97.5th percentile), and voting over all D passes (dashed). SNR = inf is drawn
  at the right end. Saves a PNG when `path` is given."""
  _check_runs(runs)
  if vote not in VOTES:
    raise ValueError(f"unknown vote {vote!r}; expected one of {VOTES}")
  finite = np.concatenate([r.snrs_db[np.isfinite(r.snrs_db)] for r in runs.values()])
  hi = finite.max() if finite.size else 0.0
  inf_at = hi + max(5.0, 0.2 * (hi - (finite.min() if finite.size else 0.0)))
  fig, ax = plt.subplots(figsize=(6.4, 4.2))
  for i, (label, r) in enumerate(runs.items()):
    color = f"C{i}"
    order = np.argsort(_x_positions(r.snrs_db, inf_at))
    x = _x_positions(r.snrs_db, inf_at)[order]
    lo, up = r.interval95
    ax.plot(x, 100 * r.mean[order], "o-", color=color, label=f"{label}: 1 pass")
    ax.fill_between(x, 100 * lo[order], 100 * up[order], color=color, alpha=0.2)
    voted = getattr(r, vote)[:, -1][order]
    ax.plot(x, 100 * voted, "s--", color=color,
            label=f"{label}: {vote.replace('_', '-')} vote, K={r.accuracy.shape[1]}")
  ticks = sorted(set(np.concatenate([_x_positions(r.snrs_db, inf_at) for r in runs.values()])))
  ax.set_xticks(ticks)
  ax.set_xticklabels(["∞" if t == inf_at else f"{t:g}" for t in ticks])
  ax.set_xlabel("eval SNR per analog product (dB)")
  return _finish(fig, ax, title or "Accuracy under analog noise", path)


def _finish(fig: plt.Figure, ax: plt.Axes, title: str, path: str | None) -> plt.Figure:
  """Shared styling of the accuracy plots; saves a PNG when `path` is given."""
  ax.set_ylabel("test accuracy (%)")
  ax.set_title(title)
  ax.grid(alpha=0.3)
  ax.legend(fontsize=7, loc="lower right")
  fig.tight_layout()
  if path:
    fig.savefig(path, dpi=120)
  return fig


def plot_accuracy_vs_k(runs: Mapping[str, MCResult], snr_db: float, path: str | None = None, *,
                       title: str = "") -> plt.Figure:
  """Voting accuracy (%) vs number of passes K = 1..D at one eval SNR, majority and mean-prob,
  for each run (the passes are the same D draws, so this costs no extra forward passes)."""
  _check_runs(runs)
  fig, ax = plt.subplots(figsize=(6.4, 4.2))
  for i, (label, r) in enumerate(runs.items()):
    match = np.flatnonzero((r.snrs_db == snr_db) | (np.isinf(r.snrs_db) & math.isinf(snr_db)))
    if match.size == 0:
      raise ValueError(f"run {label!r} has no eval SNR {snr_db} dB (it has {list(r.snrs_db)})")
    s = match[0]
    k = np.arange(1, r.accuracy.shape[1] + 1)
    ax.plot(k, 100 * r.majority[s], "o-", color=f"C{i}", label=f"{label}: majority")
    ax.plot(k, 100 * r.mean_prob[s], "s--", color=f"C{i}", label=f"{label}: mean prob")
  ax.set_xlabel("K (noisy passes voted)")
  return _finish(fig, ax, title or f"Voting at eval SNR {snr_db:g} dB", path)
