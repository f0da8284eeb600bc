"""Plots draw what they are given: points at the right places, PNG written, clear errors."""

import math

import numpy as np
import pytest

from freqnoise.plots import plot_accuracy_vs_k, plot_accuracy_vs_snr
from freqnoise.robust import MCResult


def _result(shift):
  acc = np.array([[0.2, 0.4], [0.8, 0.9], [0.99, 0.99]]) - shift
  vote = np.array([[0.2, 0.5], [0.8, 0.95], [0.99, 0.99]]) - shift
  return MCResult(snrs_db=np.array([0.0, 10.0, math.inf]), accuracy=acc, majority=vote,
                  mean_prob=vote, num_examples=100)


def test_accuracy_vs_snr_plot(tmp_path):
  path = tmp_path / "snr.png"
  fig = plot_accuracy_vs_snr({"clean": _result(0.1), "noisy": _result(0.0)}, str(path))
  assert path.stat().st_size > 1000
  ax = fig.axes[0]
  mean_line = ax.get_lines()[0]
  np.testing.assert_allclose(mean_line.get_xdata(), [0.0, 10.0, 15.0])  # inf drawn at 10 + 5
  np.testing.assert_allclose(mean_line.get_ydata(), [20.0, 75.0, 89.0])
  np.testing.assert_allclose(ax.get_lines()[1].get_ydata(), [40.0, 85.0, 89.0])  # K = 2 vote
  assert [t.get_text() for t in ax.get_xticklabels()] == ["0", "10", "∞"]


def test_accuracy_vs_k_plot(tmp_path):
  fig = plot_accuracy_vs_k({"noisy": _result(0.0)}, 10.0, str(tmp_path / "k.png"))
  np.testing.assert_allclose(fig.axes[0].get_lines()[0].get_ydata(), [80.0, 95.0])
  with pytest.raises(ValueError, match="no eval SNR 5"):
    plot_accuracy_vs_k({"noisy": _result(0.0)}, 5.0)
  with pytest.raises(ValueError, match="unknown vote"):
    plot_accuracy_vs_snr({"noisy": _result(0.0)}, vote="median")
  with pytest.raises(TypeError, match="MCResult"):
    plot_accuracy_vs_snr({"noisy": {"accuracy": []}})
