"""Sequence models: shapes, exact parameter counts, noise switching, and one trainer run each."""

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from freqnoise.analog.layers import AnalogProduct
from freqnoise.analog.noise import NoiseConfig
from freqnoise.analog.product_quant import quant_from_config
from freqnoise.models import build_model
from freqnoise.train import train_and_evaluate
from tests.conftest import write_tiny_ptb


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


def test_tied_head_under_aihwkit_scales_each_token_alone():
  """aihwkit's α is per input vector: the tied softmax on [B, T, H] gives every token exactly what
  it gives that token fed alone, and a token 128× smaller than its sequence's largest keeps its
  logits (2^-7 times the large token's), not 0 (issue 24 #4: α was one per sequence). Dyadic
  converters (Δ_DAC = 1, Δ_ADC = 1/2) and an embedding of multiples of 1/8 keep every step
  exact; the head's input is set through an interceptor."""
  q = quant_from_config({"preset": "aihwkit", "aihwkit": {
      "inp_res": 1 / 2, "inp_bound": 1.0, "out_res": 1 / 14, "out_bound": 3.5, "out_noise": 0.0}})
  model = build_model({"name": "lstm_lm", "embed_dim": 6, "hidden": 6, "num_layers": 1,
                       "tie_weights": True}, num_classes=11, quant=q)
  shapes = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((1, 1), jnp.int32),
                                             train=False))
  v = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)  # bias 0; the LSTM is unused
  rng = np.random.default_rng(0)
  v["params"]["embed"]["embedding"] = jnp.asarray(rng.integers(-8, 9, (11, 6)) / 8, jnp.float32)
  h = rng.standard_normal((2, 3, 6)).astype(np.float32)
  h[0, 0] *= 4  # the largest token of sequence 0 ...
  h[0, 1] = h[0, 0] / 128  # ... and one 2^7 times smaller

  def logits(h):  # the model's logits with `h` [b, t, 6] as the tied head's input
    def feed(next_fun, args, kwargs, context):
      if isinstance(context.module, AnalogProduct) and context.method_name == "__call__":
        args = (h,) + args[1:]
      return next_fun(*args, **kwargs)
    with nn.intercept_methods(feed):
      return model.apply(v, jnp.zeros(h.shape[:2], jnp.int32), train=False)

  # vmap over tokens: each one is fed as its own [1, 1, 6] sequence
  both, alone = jax.jit(lambda h: (logits(h), jax.vmap(logits)(h.reshape(6, 1, 1, 6))))(h)
  both = np.asarray(both)
  np.testing.assert_array_equal(both, np.asarray(alone).reshape(2, 3, 11))
  assert np.abs(both[0, 1]).max() > 0
  np.testing.assert_array_equal(both[0, 1], both[0, 0] / 128)


def test_seqmnist_tiny_config_trains(tmp_path):
  from configs import dni_seqmnist
  config = dni_seqmnist.get_config("cell=lstm,tiny")
  config.train_noise.snr_db = 10.0
  result = train_and_evaluate(config, str(tmp_path))
  assert result["steps"] == 6 and 0.0 <= result["test_accuracy"] <= 1.0
  assert math.isfinite(result["test_loss"])


def test_ptb_tiny_config_trains_and_reports_perplexity(tmp_path):
  from configs import dni_ptb
  write_tiny_ptb(tmp_path)
  config = dni_ptb.get_config("tiny")
  config.data.source = f"ptb:{tmp_path}"
  result = train_and_evaluate(config, str(tmp_path / "run"))
  assert result["steps"] == 4
  np.testing.assert_allclose(result["test_perplexity"], math.exp(result["test_loss"]), rtol=1e-6)
  assert result["test_perplexity"] < 14  # below a uniform guess over the 13-word vocabulary


def test_lm_carried_state_equals_one_long_sequence():
  """Two calls of T tokens with the carry in between = one call on the 2T-token rows."""
  from freqnoise.models import build_model
  cfg = {"name": "lstm_lm", "embed_dim": 6, "hidden": 6, "num_layers": 2}
  tokens = jax.random.randint(jax.random.key(1), (3, 8), 0, 11)
  plain = build_model(cfg, num_classes=11)
  carried = build_model({**cfg, "carry_state": True}, num_classes=11)
  variables = carried.init(jax.random.key(0), tokens[:, :4], train=False)
  assert jax.tree.map(np.shape, variables["carry"]) == {
      f"layer{i}": ((3, 6), (3, 6)) for i in range(2)}
  assert all(not np.any(x) for x in jax.tree.leaves(variables["carry"]))  # init leaves it at zero
  want = plain.apply({"params": variables["params"]}, tokens, train=False)
  first, upd = carried.apply(variables, tokens[:, :4], train=False, mutable=["carry"])
  second, _ = carried.apply({**variables, **upd}, tokens[:, 4:], train=False, mutable=["carry"])
  np.testing.assert_allclose(np.concatenate([first, second], 1), want, atol=1e-5, rtol=0)
  # read-only carry: the state is used but not updated
  np.testing.assert_allclose(carried.apply({**variables, **upd}, tokens[:, 4:], train=False),
                             second, atol=1e-6, rtol=0)
  with pytest.raises(ValueError, match="carried state has batch size 3 but this batch has 2"):
    carried.apply(variables, tokens[:2], train=False)


def test_trainer_carries_lm_state_in_order_and_evaluates_the_whole_stream(tmp_path):
  from configs import dni_ptb
  from freqnoise.experiment import Experiment
  write_tiny_ptb(tmp_path)
  config = dni_ptb.get_config("tiny")
  config.data.source = f"ptb:{tmp_path}"
  assert config.model.carry_state and config.data.order == "sequential"
  result = train_and_evaluate(config, str(tmp_path / "run"))
  task = Experiment(config, str(tmp_path / "run"))
  state = task.restore()
  assert int(state.step) == 4 and np.any(jax.tree.leaves(state.model_state["carry"])[0])
  # The test rows are blocks of `b` streams; the whole streams through the state-resetting model
  # give exactly the trainer's threaded evaluation.
  rows, targets = (task.splits.test.arrays[k] for k in ("tokens", "targets"))
  b, t = config.data.eval_batch_size, rows.shape[1]
  assert len(rows) >= 2 * b  # at least two batches, so the carry matters
  streams = rows.reshape(-1, b, t).transpose(1, 0, 2).reshape(b, -1)
  stream_targets = targets.reshape(-1, b, t).transpose(1, 0, 2).reshape(b, -1)
  plain = task.model.clone(carry_state=False, noise=None)
  logits = plain.apply({"params": state.params}, jnp.asarray(streams), train=False)
  nll = optax.softmax_cross_entropy_with_integer_labels(logits, jnp.asarray(stream_targets)).mean()
  np.testing.assert_allclose(result["test_loss"], float(nll), rtol=1e-5)


def test_carry_resets_at_each_epoch_start(tmp_path):
  from configs import dni_ptb
  from freqnoise.experiment import Experiment
  from freqnoise.train import make_train_step
  write_tiny_ptb(tmp_path)
  config = dni_ptb.get_config("tiny")
  config.data.source = f"ptb:{tmp_path}"
  task = Experiment(config, str(tmp_path / "run"))
  state = task.init_state(jax.random.key(0))
  batch = {k: jnp.asarray(v[:config.data.batch_size]) for k, v in task.splits.train.arrays.items()}
  step = jax.jit(make_train_step(task))
  junk = jax.tree.map(lambda c: jnp.ones_like(c), state.model_state["carry"])
  with_junk = state.replace(model_state={"carry": junk})
  for at, same in ((task.steps_per_epoch, True), (task.steps_per_epoch + 1, False)):
    a, _ = step(state.replace(step=jnp.int32(at)), batch, task.stats_device, jax.random.key(1))
    b, _ = step(with_junk.replace(step=jnp.int32(at)), batch, task.stats_device, jax.random.key(1))
    leaves_a, leaves_b = jax.tree.leaves(a.params), jax.tree.leaves(b.params)
    assert all(np.array_equal(x, y) for x, y in zip(leaves_a, leaves_b)) == same, at


def test_carry_state_needs_sequential_batches(tmp_path):
  from configs import dni_ptb
  config = dni_ptb.get_config("tiny")
  config.data.order = "shuffled"
  with pytest.raises(ValueError, match="carry_state needs config.data.order = 'sequential'"):
    train_and_evaluate(config, str(tmp_path / "run"))
  config.data.order = "by_length"
  with pytest.raises(ValueError, match="unknown config.data.order 'by_length'"):
    train_and_evaluate(config, str(tmp_path / "run"))
