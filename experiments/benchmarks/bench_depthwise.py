"""Benchmark: depthwise 3x3 convolutions on CPU, `freqnoise.analog.conv_op` vs XLA's grouped conv.

Ours: `conv_op.conv_general_dilated`, which `NoisyConv` runs (on CPU a depthwise conv becomes 9
shifted, strided slices times the kernel's taps). Peer: `lax.conv_general_dilated` with
`feature_group_count = C` (what `nn.Conv` runs), the same operands, in the same run; its output is
checked against ours (max |difference| <= 1e-4 x max |output|) before anything is timed.
Rows: MobileNetV2's depthwise layers at batch 64 and 112² input (forward, and forward + gradient
with respect to input and kernel), then one whole MobileNetV2 training step (AdamW, batch 64,
112² pixels, 10 classes) with each conv.

Command (2 CPU cores here, about 2 min; the table goes to RESULTS.md by hand, with the machine):
  python experiments/benchmarks/bench_depthwise.py
"""

from __future__ import annotations

import argparse
import platform
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax

from freqnoise.analog import conv_op
from freqnoise.models import mobilenet

DN = ("NHWC", "HWIO", "NHWC")
# (H = W, channels, stride) of MobileNetV2's depthwise convs at 112² input (block 1, 2, 4, 7, 11).
LAYERS = ((56, 96, 2), (28, 144, 1), (14, 192, 1), (7, 384, 1), (7, 576, 1))


def _best(fn, repeats: int) -> float:
  """Best-of-`repeats` seconds per call, after one warm-up call (compilation)."""
  jax.block_until_ready(fn())
  best = float("inf")
  for _ in range(repeats):
    t = time.perf_counter()
    jax.block_until_ready(fn())
    best = min(best, time.perf_counter() - t)
  return best


def _layer_rows(batch: int, repeats: int) -> list[tuple[str, float, float]]:
  rows = []
  rng = np.random.default_rng(0)
  for size, channels, stride in LAYERS:
    x = jnp.asarray(rng.normal(size=(batch, size, size, channels)), jnp.float32)
    w = jnp.asarray(rng.normal(size=(3, 3, 1, channels)), jnp.float32)

    def conv(op):
      return lambda a, b: op(a, b, (stride, stride), "SAME", dimension_numbers=DN,
                             feature_group_count=channels)
    ours, peer = conv(conv_op.conv_general_dilated), conv(lax.conv_general_dilated)
    out, ref = jax.jit(ours)(x, w), jax.jit(peer)(x, w)
    diff = float(jnp.max(jnp.abs(out - ref)))
    if diff > 1e-4 * float(jnp.max(jnp.abs(ref))):
      raise AssertionError(f"depthwise {x.shape} stride {stride}: ours differs by {diff}")
    name = f"{batch}x{size}x{size}x{channels}, stride {stride}"
    for what, wrap in (("forward", lambda f: f),
                       ("forward + grad", lambda f: jax.grad(lambda a, b: jnp.sum(f(a, b) ** 2),
                                                             (0, 1)))):
      f_ours, f_peer = jax.jit(wrap(ours)), jax.jit(wrap(peer))
      rows.append((f"{name}, {what}", _best(lambda: f_ours(x, w), repeats),
                   _best(lambda: f_peer(x, w), repeats)))
  return rows


def _train_step_seconds(batch: int, repeats: int, op) -> float:
  """One MobileNetV2 training step with every depthwise conv computed by `op`."""
  model = mobilenet.MobileNetV2(num_classes=10)
  x = jnp.asarray(np.random.default_rng(1).normal(size=(batch, 112, 112, 3)), jnp.float32)
  y = jnp.arange(batch) % 10
  variables = model.init({"params": jax.random.key(0)}, x, train=False)
  tx = optax.adamw(1e-3)
  state = (variables["params"], variables["batch_stats"], tx.init(variables["params"]))

  @jax.jit
  def step(state):
    params, stats, opt = state

    def loss(p):
      logits, updates = model.apply({"params": p, "batch_stats": stats}, x, train=True,
                                    mutable=["batch_stats"], rngs={"dropout": jax.random.key(2)})
      return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean(), updates
    (_, updates), grads = jax.value_and_grad(loss, has_aux=True)(params)
    u, opt = tx.update(grads, opt, params)
    return optax.apply_updates(params, u), updates["batch_stats"], opt

  original = conv_op.conv_general_dilated
  try:
    conv_op.conv_general_dilated = op  # NoisyConv looks the op up when it is built (traced)
    return _best(lambda: step(state), repeats)
  finally:
    conv_op.conv_general_dilated = original


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--batch", type=int, default=64, help="images per batch")
  parser.add_argument("--repeats", type=int, default=3, help="timed calls per row (best reported)")
  args = parser.parse_args()
  if jax.default_backend() != "cpu":
    raise SystemExit(f"this benchmark is about XLA:CPU; the backend is {jax.default_backend()} "
                     "(run with JAX_PLATFORMS=cpu)")

  rows = _layer_rows(args.batch, args.repeats)
  rows.append((f"MobileNetV2 train step, batch {args.batch}, 112² (AdamW)",
               _train_step_seconds(args.batch, args.repeats, conv_op.conv_general_dilated),
               _train_step_seconds(args.batch, args.repeats, lax.conv_general_dilated)))
  header = (f"Depthwise 3x3 conv, {platform.processor() or platform.machine()}, "
            f"{jax.local_device_count()} cpu device, jax {jax.__version__}, best of {args.repeats}")
  lines = [header, "", "| case | ours (s) | lax grouped conv (s) | peer / ours |", "|---|---|---|---|"]
  lines += [f"| {name} | {ours:.4f} | {peer:.4f} | {peer / ours:.2f}x |" for name, ours, peer in rows]
  print("\n".join(lines))


if __name__ == "__main__":
  main()
