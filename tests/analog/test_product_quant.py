"""config.quant -> ProductQuant: fields, errors naming the field, aihwkit's IOParameters mapped onto
our converters and reproduced through a whole Dense layer, and the converters inside the layers."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs.common import base_config
from freqnoise.analog.layers import NoisyConv, NoisyDense
from freqnoise.analog.product import AdcNoise
from freqnoise.analog.product_quant import ProductQuant, quant_for_layer, quant_from_config
from freqnoise.analog.quant import QuantConfig

f32 = np.float32


def _block(**fields):
  """base_config().quant as a dict (no ConfigDict type checks) with `fields` set."""
  c = base_config().quant.to_dict()
  for k, v in fields.items():
    node, *path = k.split(".")
    if path:
      c[node][path[0]] = v
    else:
      c[k] = v
  return c


def _x(seed, shape):
  return jnp.asarray(np.random.default_rng(seed).standard_normal(shape), jnp.float32)


def test_the_default_block_is_off_and_the_fields_map_onto_quant_configs():
  assert quant_from_config(base_config().quant) is None and quant_from_config(None) is None
  q = quant_from_config(_block(weight_bits=4, weight_per_channel=True, dac_bits=4, dac_signed=False,
                               dac_bound=2.0, adc_bits=5, adc_mode="tracked", adc_noise_lsb=0.5,
                               adc_noise_position="after", layers="all_but_first"))
  assert q.weight == QuantConfig(4, signed=True, per_channel=-1, mode="dynamic")
  assert q.dac == QuantConfig(4, signed=False, mode="fixed", bound=2.0)
  assert q.adc == QuantConfig(5, signed=True, mode="tracked")
  assert q.adc_noise == AdcNoise(0.5, "after") and not q.scale_inputs
  assert quant_for_layer(q, 0, 3) is None and quant_for_layer(q, 2, 3) is q
  hash(q)  # a Flax module attribute


@pytest.mark.parametrize("fields,message", [
    (dict(adc_bits=17), r"config.quant.adc_bits must be in \[1, 16\] or 0 \(off\), got 17"),
    (dict(weight_bits=-1), r"config.quant.weight_bits must be in \[1, 16\] or 0 \(off\), got -1"),
    (dict(adc_bits=4, adc_noise_lsb=-0.5), r"config.quant.adc_noise_lsb must be >= 0 \(a standard "
                                           r"deviation in ADC LSBs\), got -0.5"),
    (dict(adc_noise_lsb=0.5), r"config.quant.adc_noise_lsb is in LSB units of the ADC: set "
                              r"config.quant.adc_bits"),
    (dict(adc_bits=4, adc_noise_position="during"), r"config.quant.adc_noise_position must be one"),
    (dict(dac_bits=4, dac_mode="fixed", dac_bound=0.0), r"config.quant.dac_bound must be > 0 with "
                                                        r"dac_mode='fixed'"),
    (dict(adc_bits=4, adc_mode="tracked", adc_bound=3.0), r"config.quant.adc_bound is not used by "
                                                          r"mode 'tracked'"),
    (dict(dac_bits=4, dac_mode="learned", learned="pact", dac_bound=0.0),
     r"config.quant.dac_bound is required for learned='pact'"),
    (dict(weight_bits=4, weight_mode="sometimes"), r"config.quant.weight_mode must be one of"),
    (dict(weight_bits=4, momentum=1.0), r"config.quant.momentum must be in \[0, 1\)"),
    (dict(weight_bits=4, stochastic=1), r"config.quant.stochastic must be True or False"),
    (dict(preset="ibm"), r"config.quant.preset must be one of"),
    (dict(layers="odd"), r"config.quant.layers must be one of"),
    (dict(**{"aihwkit.inp_res": 1 / 14}), r"config.quant.aihwkit.inp_res is used only with "
                                           r"config.quant.preset='aihwkit'"),
    (dict(preset="aihwkit", dac_bits=4), r"config.quant.dac_bits must be 0 with preset='aihwkit'"),
    (dict(preset="aihwkit", **{"aihwkit.inp_res": 0.1}), r"config.quant.aihwkit.inp_res: aihwkit "
                                                          r"res=0.1 is 10 steps"),
    (dict(preset="aihwkit", **{"aihwkit.inp_bound": 2.0}), r"config.quant.aihwkit.inp_bound must "
                                                             r"be 1 with noise_management='abs_max'"),
    (dict(preset="aihwkit", **{"aihwkit.bound_management": "shift"}),
     r"config.quant.aihwkit.bound_management must be one of"),
    (dict(preset="aihwkit", **{"aihwkit.max_input_size": -1}),
     r"config.quant.aihwkit.max_input_size must be an int >= 0"),
    (dict(preset="aihwkit", **{"aihwkit.noise_management": "iterative"}),
     r"config.quant.aihwkit.noise_management must be one of"),
])
def test_bad_fields_are_errors_naming_the_field(fields, message):
  with pytest.raises(ValueError, match=message):
    quant_from_config(_block(**fields))


def test_switching_a_converter_to_a_data_range_mode_alone_is_enough():
  """dac_bound's default (1.0) belongs to the default fixed DAC: dac_mode='tracked' or 'dynamic'
  alone must not trip 'bound is not used by mode'; an explicit other bound still does."""
  for mode in ("tracked", "dynamic"):
    q = quant_from_config(dict(dac_bits=4, dac_mode=mode))
    assert q.dac.mode == mode and q.dac.bound is None
  with pytest.raises(ValueError, match="config.quant.dac_bound is not used by mode 'tracked'"):
    quant_from_config(dict(dac_bits=4, dac_mode="tracked", dac_bound=2.0))


def test_unknown_fields_and_adc_noise_without_an_adc_are_named():
  with pytest.raises(ValueError, match=r"config.quant has unknown field\(s\) \['adc_bit'\]"):
    quant_from_config({"adc_bit": 4})
  with pytest.raises(ValueError, match=r"adc_noise is in LSB units of the ADC: it needs an adc"):
    ProductQuant(adc_noise=AdcNoise(1.0))


def test_aihwkit_defaults_map_to_7_bit_dac_9_bit_adc_and_out_noise_in_lsb():
  q = quant_from_config(_block(preset="aihwkit"))
  assert (q.dac.bits, q.dac.bound, q.adc.bits, q.adc.bound) == (7, 1.0, 9, 12.0)
  # out_noise 0.06 in units of the ADC step out_res·2·out_bound = 24/510
  assert q.adc_noise.lsb == pytest.approx(0.06 / (24 / 510), rel=1e-12)
  assert q.adc_noise.position == "before" and q.scale_inputs


def test_aihwkit_inp_res_1_over_14_gives_15_levels_through_a_dense_layer():
  """REFERENCES.md: inp_res = 1/14 is a 4-bit DAC, 15 levels. With an identity kernel and no ADC
  the layer's output is the DAC's: α·k/7 per row (α = max|x|, noise management), k in −7..7."""
  q = quant_from_config(_block(preset="aihwkit", **{"aihwkit.inp_res": 1 / 14, "aihwkit.out_res": 0.0,
                                                    "aihwkit.out_noise": 0.0}))
  assert q.dac.levels == 15 and q.adc is None
  x = _x(0, (64, 16))
  layer = NoisyDense(16, quant=q)
  params = {"params": {"kernel": jnp.eye(16), "bias": jnp.zeros(16)}}
  y = np.asarray(layer.apply(params, x))
  alpha = np.max(np.abs(np.asarray(x)), axis=1, keepdims=True)
  codes = y / alpha * 7
  np.testing.assert_allclose(codes, np.round(codes), atol=1e-5)
  assert sorted(set(np.round(codes).astype(int).ravel())) == list(range(-7, 8))


def _aihwkit_forward(x, w, inp_res, inp_bound, out_res, out_bound):
  """NumPy float32 transcription of REFERENCES.md's aihwkit forward (ABS_MAX noise management,
  no output noise): α = max|x| per row; x/α quantized with Δ = res·2·bound (round, then clamp);
  the product; the output quantized the same way and clamped; times α — in the C++ tile's
  arithmetic: x·s with s = 1/α, the output times 1/s."""
  def convert(v, res, bound):
    step = f32(res * 2 * bound)
    return np.clip(np.round(v / step) * step, -f32(bound), f32(bound))
  scale = 1 / np.max(np.abs(x), axis=1, keepdims=True)
  return convert(convert(x * scale, inp_res, inp_bound) @ w, out_res, out_bound) * (1 / scale)


def test_an_aihwkit_inference_forward_is_reproduced_through_a_dense_layer():
  """Dyadic settings (Δ_DAC = 1, Δ_ADC = 1/2) and weights (multiples of 1/8) keep every
  intermediate exact, so the layer equals the transcription bit for bit, clipping included."""
  inp_res, inp_bound, out_res, out_bound = 1 / 2, 1.0, 1 / 14, 3.5  # 2-bit DAC, 4-bit ADC
  q = quant_from_config(_block(preset="aihwkit", **{
      "aihwkit.inp_res": inp_res, "aihwkit.inp_bound": inp_bound, "aihwkit.out_res": out_res,
      "aihwkit.out_bound": out_bound, "aihwkit.out_noise": 0.0,
      "aihwkit.bound_management": "none"}))  # (test_tiles.py: with bound management)
  x = np.asarray(_x(1, (32, 12)))
  w = np.round(np.asarray(_x(2, (12, 5))) * 8) / 8
  y = NoisyDense(5, quant=q).apply({"params": {"kernel": jnp.asarray(w), "bias": jnp.zeros(5)}},
                                   jnp.asarray(x))
  ref = _aihwkit_forward(x, w, inp_res, inp_bound, out_res, out_bound)
  clipped = np.abs(ref / np.max(np.abs(x), 1, keepdims=True)).max()
  assert clipped == pytest.approx(out_bound, rel=1e-6)  # clipping happens
  np.testing.assert_array_equal(np.asarray(y), ref)


def test_layers_build_their_own_named_converters_and_float_layers_stay_untouched():
  q = ProductQuant(weight=QuantConfig(4, mode="learned"), dac=QuantConfig(4, mode="tracked"),
                   adc=QuantConfig(4, mode="dynamic"))
  x = _x(3, (2, 6, 6, 3))
  v = jax.eval_shape(lambda: NoisyConv(4, (3, 3), quant=q).init(jax.random.key(0), x))
  assert jax.tree.map(jnp.shape, v) == {
      "params": {"kernel": (3, 3, 3, 4), "bias": (4,), "analog": {"weight": {"step": ()}}},
      "quant_ranges": {"analog": {"dac": {"absmax": (), "count": ()}}}}
  plain = jax.eval_shape(lambda: NoisyDense(3).init(jax.random.key(0), x[:, 0, 0]))
  assert jax.tree.map(jnp.shape, plain) == {"params": {"kernel": (3, 3), "bias": (3,)}}
  with pytest.raises(ValueError, match="input_quantizer and the same converter"):
    NoisyDense(3, quant=q, input_quantizer=jnp.round).init(jax.random.key(0), x[:, 0, 0])
  with pytest.raises(TypeError, match="ProductQuant or None"):
    NoisyDense(3, quant={"dac_bits": 4}).init(jax.random.key(0), x[:, 0, 0])
