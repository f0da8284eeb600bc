"""freqnoise: neural networks on imperfect hardware and imperfect inputs (JAX / Flax Linen).

Papers and where they live:
  * Learning in the frequency domain      -> freqnoise.freq, freqnoise.models (frequency stems)
  * Noisy computations during inference   -> freqnoise.analog, freqnoise.robust
  * Deep Noise Injection for RNNs          -> freqnoise.analog.recurrent, freqnoise.models.sequence
  * Quantization-aware LSTM on crossbars   -> freqnoise.analog (quantizers, efficiency model)
"""

__version__ = "0.1.0"
