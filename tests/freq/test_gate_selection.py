"""Gumbel straight-through gate, temperature anneal, gate statistics, presets, top-k, heat map."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from freqnoise.freq import gate, selection


@settings(max_examples=15, deadline=None)
@given(hnp.arrays(np.float32, (5, 2), elements=st.floats(-4, 4, width=32)),
       hnp.arrays(np.float32, (5, 2), elements=st.floats(-2, 2, width=32)),
       st.floats(0.2, 5.0), hnp.arrays(np.float32, (5, 2), elements=st.floats(-1, 1, width=32)))
def test_straight_through_value_and_gradient_match_definition(logits, g, tau, cotangent):
  out, vjp = jax.vjp(lambda l: gate.gumbel_softmax_straight_through(l, g, tau), jnp.asarray(logits))
  # Forward: exactly the one-hot of argmax(logits + g).
  expected = np.eye(2, dtype=np.float32)[np.argmax(jax.nn.softmax((logits + g) / tau), axis=-1)]
  np.testing.assert_array_equal(np.asarray(out), expected)
  # Backward: the vjp of the soft sample softmax((logits + g) / tau), in closed form:
  # d softmax / d l = (diag(s) - s s^T) / tau.
  s = np.asarray(jax.nn.softmax((logits + g) / tau), np.float64)
  closed = (s * cotangent - s * (s * cotangent).sum(-1, keepdims=True)) / tau
  np.testing.assert_allclose(np.asarray(vjp(jnp.asarray(cotangent))[0]), closed, atol=1e-5)


def test_annealed_temperature():
  f = lambda step: float(gate.annealed_temperature(step, 5.0, 0.5, 100))
  assert f(0) == pytest.approx(5.0)
  assert f(50) == pytest.approx(np.sqrt(5.0 * 0.5), rel=1e-6)
  assert f(100) == pytest.approx(0.5, rel=1e-6) and f(1000) == pytest.approx(0.5, rel=1e-6)
  assert float(gate.annealed_temperature(7, 2.0, 0.1, 0)) == 2.0


def _init_gate(**kw):
  module = gate.FrequencyGate(**kw)
  x = jax.random.normal(jax.random.key(0), (8, 4, 4, 6))
  variables = module.init({"params": jax.random.key(1)}, x, train=False)
  return module, x, {k: v for k, v in variables.items() if k != "losses"}


def test_eval_is_deterministic_argmax_of_logits():
  module, x, variables = _init_gate(sparsity_weight=0.5)
  y1, col = module.apply(variables, x, train=False, mutable=["losses"])
  y2 = module.apply(variables, x, train=False, rngs={"gumbel": jax.random.key(9)})
  np.testing.assert_array_equal(np.asarray(y1), np.asarray(y2))
  p = variables["params"]
  h = np.maximum(np.asarray(x).mean(axis=(1, 2)) @ p["hidden"]["kernel"] + p["hidden"]["bias"], 0)
  logits = (h @ p["logits"]["kernel"] + p["logits"]["bias"]).reshape(8, 6, 2)
  on = (logits[..., 1] > logits[..., 0]).astype(np.float32)
  np.testing.assert_allclose(np.asarray(y1), np.asarray(x) * on[:, None, None, :], rtol=1e-6)
  np.testing.assert_allclose(col["losses"]["gate_sparsity"][0], 0.5 * on.mean(), rtol=1e-6)


def test_training_updates_statistics_anneals_and_passes_gradient():
  module, x, variables = _init_gate(sparsity_weight=0.1, tau_start=4.0, tau_end=1.0, anneal_steps=10)
  assert int(variables["gate_stats"]["steps"]) == 0

  def loss(params, stats, key):
    y, cols = module.apply({"params": params, "gate_stats": stats}, x, train=True, rngs={"gumbel": key},
                           mutable=["gate_stats", "losses"])
    return jnp.sum(y ** 2) + cols["losses"]["gate_sparsity"][0], (y, cols)

  grads, (y, cols) = jax.grad(loss, has_aux=True)(variables["params"], variables["gate_stats"],
                                                   jax.random.key(3))
  on = (np.asarray(y) != 0).any(axis=(1, 2)).astype(np.float32)  # x has no exact zeros
  stats = cols["gate_stats"]
  assert int(stats["steps"]) == 1 and float(stats["examples"]) == 8.0
  np.testing.assert_array_equal(np.asarray(stats["selected"]), on.sum(axis=0))
  np.testing.assert_allclose(cols["losses"]["gate_sparsity"][0], 0.1 * on.mean(), rtol=1e-6)
  # Straight-through: the gate's parameters get a nonzero gradient although the forward is 0/1.
  assert np.abs(np.asarray(grads["logits"]["kernel"])).max() > 0
  # The anneal counter lives in gate_stats, so the temperature moves without a step argument.
  assert float(gate.annealed_temperature(stats["steps"], 4.0, 1.0, 10)) < 4.0


def test_gate_rejects_bad_input():
  module = gate.FrequencyGate()
  with pytest.raises(ValueError, match="batch, height, width, channels"):
    module.init({"params": jax.random.key(0)}, jnp.ones((2, 6)), train=False)
  with pytest.raises(ValueError, match="temperatures"):
    gate.FrequencyGate(tau_start=0.0).init({"params": jax.random.key(0)}, jnp.ones((1, 2, 2, 3)), train=False)


def test_presets_match_published_lists():
  # DCTNet (kaix90/DCTNet, classification/main/__init__.py), 24 channels: Y 4x4, Cb 2x2, Cr 2x2.
  expected_24 = [0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 19, 24, 25, 26, 27, 64, 65, 72, 73, 128, 129, 136, 137]
  np.testing.assert_array_equal(selection.preset_channels(24), expected_24)
  np.testing.assert_array_equal(selection.preset_channels(6), [0, 1, 8, 9, 64, 128])
  for n in (6, 24, 32, 48, 64, 192):
    assert len(selection.preset_channels(n)) == n
  assert selection.PRESETS[32][1] == (0, 1, 2, 8, 9)
  assert selection.PRESETS[64][0][-6:] == (48, 49, 50, 51, 52, 53)
  # Presets are nested: each keeps the previous one's channels.
  for small, big in [(6, 24), (24, 32), (32, 48), (48, 64)]:
    assert set(selection.preset_channels(small)) <= set(selection.preset_channels(big))


def test_wrong_channel_count_errors():
  with pytest.raises(ValueError, match=r"no published channel preset with 25 channels; available"):
    selection.preset_channels(25)
  with pytest.raises(ValueError, match="expected 192 DCT channels"):
    selection.select_channels(np.zeros((1, 2, 2, 64)), selection.preset_channels(24))
  with pytest.raises(ValueError, match="unique indices"):
    selection.check_channels([0, 0, 3])
  with pytest.raises(ValueError, match="unique indices"):
    selection.check_channels([192])


def test_select_top_k_and_mask():
  coeffs = np.arange(2 * 192, dtype=np.float32).reshape(1, 1, 2, 192)
  np.testing.assert_array_equal(selection.select_channels(coeffs, [5, 1])[0, 0, 1], [193, 197])
  freq = np.zeros(192)
  freq[[3, 70, 140]] = [0.9, 0.5, 0.5]
  np.testing.assert_array_equal(selection.top_k_channels(freq, 2), [3, 70])  # tie -> lower index
  np.testing.assert_array_equal(selection.top_k_channels(freq, 4), [0, 3, 70, 140])
  assert selection.channel_mask([0, 5]).sum() == 2 and selection.channel_mask([0, 5])[5]
  with pytest.raises(ValueError, match="k must be"):
    selection.top_k_channels(freq, 0)


def test_selection_frequency_and_heat_map(tmp_path):
  stats = {"stem_gate": {"selected": np.arange(192, dtype=np.float32), "examples": np.float32(191),
                         "steps": np.int32(3)}}
  freq = selection.selection_frequency({"model": stats})
  assert freq[0] == 0 and freq[191] == 1.0
  path = os.path.join(tmp_path, "heat.png")
  selection.plot_heat_map(freq, path, highlight=selection.preset_channels(24))
  with open(path, "rb") as f:
    assert f.read(8) == b"\x89PNG\r\n\x1a\n"
  with pytest.raises(ValueError, match="one gate"):
    selection.selection_frequency({})
  with pytest.raises(ValueError, match="no training examples"):
    selection.selection_frequency({"selected": np.zeros(192), "examples": 0.0})
  with pytest.raises(ValueError, match="one value per channel"):
    selection.plot_heat_map(np.zeros(24))
