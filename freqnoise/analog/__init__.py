"""Analog hardware models: noise of analog matrix products and layers built from them."""

from freqnoise.analog.layers import AnalogProduct, NoisyConv, NoisyDense
from freqnoise.analog.product import analog_product
from freqnoise.analog.noise import (NoiseConfig, add_output_noise, noise_for_layer,
                                    noise_from_config, perturb_weights, sample_training_noise,
                                    signal_power)
