"""Sequence models: shapes, exact parameter counts, noise switching, and one trainer run each."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from freqnoise.analog.noise import NoiseConfig
from freqnoise.models import build_model
from freqnoise.train import train_and_evaluate


def _count(variables):
  return sum(x.size for x in jax.tree.leaves(variables["params"]))


@pytest.mark.parametrize("cell,gates", [("rnn", 1), ("lstm", 4), ("gru", 3)])
def test_classifier_shapes_and_parameter_count(cell, gates):
  model = build_model({"name": "seq_classifier", "cell": cell, "hidden": 16, "num_layers": 2},
                      num_classes=10)
  x = jnp.ones((3, 7, 5))
  variables = model.init(jax.random.key(0), x, train=False)
  assert model.apply(variables, x, train=False).shape == (3, 10)
  extra_bias = 16 if cell == "gru" else 0  # GRU's recurrent bias of the candidate gate
  layer = lambda f: gates * 16 * (f + 16) + gates * 16 + extra_bias
  assert _count(variables) == layer(5) + layer(16) + 16 * 10 + 10


def test_classifier_noise_switches_on_and_readouts_differ():
  x = jax.random.normal(jax.random.key(1), (4, 6, 3))
  clean = build_model({"name": "seq_classifier", "hidden": 8}, num_classes=5)
  variables = clean.init(jax.random.key(0), x, train=False)
  noisy = clean.clone(noise=NoiseConfig(snr_db=0.0))
  y0 = clean.apply(variables, x, train=False)
  y1 = noisy.apply(variables, x, train=False, rngs={"noise": jax.random.key(2)})
  y2 = noisy.apply(variables, x, train=False, rngs={"noise": jax.random.key(3)})
  assert not np.allclose(y0, y1) and not np.allclose(y1, y2)
  off = clean.clone(noise=NoiseConfig(snr_db=math.inf))
  np.testing.assert_array_equal(off.apply(variables, x, train=False), y0)
  mean = clean.clone(readout="mean")
  assert not np.allclose(mean.apply(variables, x, train=False), y0)
  with pytest.raises(ValueError, match="readout"):
    clean.clone(readout="max").init(jax.random.key(0), x, train=False)
  with pytest.raises(ValueError, match=r"\[batch, time, features\]"):
    clean.init(jax.random.key(0), x[0], train=False)


def test_language_model_shapes_tied_weights_and_errors():
  tokens = jnp.array([[1, 2, 3, 4], [5, 6, 7, 8]], jnp.int32)
  untied = build_model({"name": "lstm_lm", "embed_dim": 6, "hidden": 6, "num_layers": 2},
                       num_classes=11)
  v = untied.init(jax.random.key(0), tokens, train=False)
  assert untied.apply(v, tokens, train=False).shape == (2, 4, 11)
  lstm = 4 * 6 * (6 + 6) + 4 * 6
  assert _count(v) == 11 * 6 + 2 * lstm + 6 * 11 + 11
  tied = untied.clone(tie_weights=True)
  vt = tied.init(jax.random.key(0), tokens, train=False)
  assert _count(vt) == 11 * 6 + 2 * lstm + 11
  # tied logits are exactly h @ E^T + b
  logits = tied.apply(vt, tokens, train=False)
  noisy = tied.clone(noise=NoiseConfig(snr_db=5.0)).apply(vt, tokens, train=False,
                                                            rngs={"noise": jax.random.key(1)})
  assert logits.shape == noisy.shape and not np.allclose(logits, noisy)
  with pytest.raises(ValueError, match="tie_weights"):
    untied.clone(tie_weights=True, hidden=5).init(jax.random.key(0), tokens, train=False)
  with pytest.raises(ValueError, match="int tokens"):
    untied.init(jax.random.key(0), tokens.astype(jnp.float32), train=False)


def test_seqmnist_tiny_config_trains(tmp_path):
  from configs import dni_seqmnist
  config = dni_seqmnist.get_config("lstm,tiny")
  config.train_noise.snr_db = 10.0
  result = train_and_evaluate(config, str(tmp_path))
  assert result["steps"] == 6 and 0.0 <= result["test_accuracy"] <= 1.0
  assert math.isfinite(result["test_loss"])


def test_ptb_tiny_config_trains_and_reports_perplexity(tmp_path):
  from configs import dni_ptb
  words = "the cat sat on the mat and the dog sat on the log".split()
  rng = np.random.default_rng(0)
  for name, n in (("train", 60), ("valid", 10), ("test", 10)):
    with open(tmp_path / f"ptb.{name}.txt", "w") as f:
      for _ in range(n):
        f.write(" " + " ".join(rng.choice(words, 5)) + " \n")
  config = dni_ptb.get_config("tiny")
  config.data.source = f"ptb:{tmp_path}"
  result = train_and_evaluate(config, str(tmp_path / "run"))
  assert result["steps"] == 4
  np.testing.assert_allclose(result["test_perplexity"], math.exp(result["test_loss"]), rtol=1e-6)
  assert result["test_perplexity"] < 14  # below a uniform guess over the 13-word vocabulary
