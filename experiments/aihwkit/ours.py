"""freqnoise's outputs for the parity cases (cases.py): the layer of each case under
`config.quant.preset = 'aihwkit'` with the case's fields, PCM as `NoiseConfig(weight_noise='pcm')`.
Used by parity.py and tests/analog/test_aihwkit_golden.py."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from freqnoise.analog.layers import NoisyConv, NoisyDense
from freqnoise.analog.noise import NoiseConfig
from freqnoise.analog.pcm import PcmConfig
from freqnoise.analog.product_quant import quant_from_config
from experiments.aihwkit.cases import quant_block


def _layer(case: dict, out_noise=None, noise=None):
  q = quant_from_config(quant_block(case, out_noise))
  w = case["w"]
  if case["kind"] == "dense":
    return NoisyDense(w.shape[1], use_bias=False, quant=q, noise=noise)
  pad = case["conv"]["padding"]
  return NoisyConv(w.shape[3], w.shape[:2], strides=case["conv"]["stride"],
                   padding=((pad, pad), (pad, pad)), use_bias=False, quant=q, noise=noise)


def outputs(case: dict, keys: jax.Array, out_noise=None, times=None) -> np.ndarray:
  """[D, ...] outputs of the case's layer, one per key in `keys` [D] (its 'noise' and, for PCM,
  'program' streams: one chip per key), in one compiled call; with `times` (PCM, seconds) [T, D,
  ...]: every chip at every time (t_inference is traced: one compilation for all)."""
  noise = None
  if "t" in case:
    noise = NoiseConfig(weight_noise="pcm", pcm=PcmConfig(drift_compensation=case["compensation"]))
  layer = _layer(case, out_noise, noise)
  params = {"params": {"kernel": jnp.asarray(case["w"])}}
  x = jnp.asarray(case["x"])

  def one(t, key):
    k_noise, k_program = jax.random.split(key)
    model = layer if noise is None else layer.clone(noise=noise.replace(t_inference=t))
    return model.apply(params, x, rngs={"noise": k_noise, "program": k_program})

  draws = jax.vmap(one, in_axes=(None, 0))
  if times is None:
    return np.asarray(jax.jit(draws)(case.get("t", 0.0), keys))
  return np.asarray(jax.jit(jax.vmap(draws, in_axes=(0, None)))(jnp.asarray(times), keys))
