"""The fast CIFAR-10 train step against the machine's limit: achieved FLOP/s of the trainer's own
step (`freqnoise.train.make_train_step` on configs/fast_cifar10.py's model, optimizer and batch)
divided by the FLOP/s of a float32 GEMM timed in the same run; images/s of a PyTorch train step
of the same network and batch beside it when torch is installed (airbench's scripts assume CUDA:
the network and its SGD step are re-stated here for the CPU). Ratios are printed last.

FLOPs of a step are counted from the architecture: 2 x multiply-adds of every conv and dense
product, forward, times 3 (forward + the two backward products), as airbench counts its 0.36
PFLOP; XLA's own count of the compiled step is printed beside it. Timings are medians over
`--repeats` timed blocks; do not run beside other jobs.

  python experiments/benchmarks/bench_fast_cifar.py                     # setting 94, batch 1024
  python experiments/benchmarks/bench_fast_cifar.py --setting=90 --batch=256 --steps=10
  python experiments/benchmarks/bench_fast_cifar.py --tiny              # seconds: a smoke test
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from configs import fast_cifar10  # noqa: E402
from freqnoise.data import ArrayDataset, Splits  # noqa: E402
from freqnoise.experiment import Experiment  # noqa: E402
from freqnoise.train import make_train_step  # noqa: E402


def step_flops(widths, side: int, num_classes: int = 10, whiten: int = 2, channels: int = 3) -> int:
  """FLOPs of one training example: 3 x 2 x the forward multiply-adds of fast_cifar's products."""
  s = side - whiten + 1  # the whitening conv is VALID
  macs = s * s * whiten * whiten * channels * (2 * whiten * whiten * channels)
  cin = 2 * whiten * whiten * channels
  for width in widths:
    macs += s * s * 9 * cin * width  # conv0 at the input resolution, before its pool
    s //= 2
    macs += s * s * 9 * width * width  # conv1 after the pool
    cin = width
  return 3 * 2 * (macs + cin * num_classes)


def median_rate(run, work: float, steps: int, repeats: int) -> float:
  """work / second of `run(steps)` (which blocks until done), median over `repeats` timings."""
  rates = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    run(steps)
    rates.append(work * steps / (time.perf_counter() - t0))
  return statistics.median(rates)


def gemm_flops_per_sec(n: int, steps: int, repeats: int) -> float:
  """FLOP/s of a jitted float32 n x n GEMM (2 n^3 FLOPs)."""
  a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
  matmul = jax.jit(lambda a, b: a @ b)
  jax.block_until_ready(matmul(a, a))

  def run(k):
    out = a
    for _ in range(k):
      out = matmul(a, out) * (1.0 / n)  # chained, so no call is skipped
    jax.block_until_ready(out)
  return median_rate(run, 2.0 * n ** 3, steps, repeats)


def our_step(config, batch: int, side: int, steps: int, repeats: int):
  """(images/s, XLA's FLOPs per step) of the trainer's step on random images."""
  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, (max(batch, 64), side, side, 3), dtype=np.uint8)
  data = ArrayDataset({"image": images, "label": rng.integers(0, 10, len(images))})
  splits = Splits(train=data, test=data, num_classes=10, name="random")
  config.data.batch_size = batch
  config.num_devices = 1
  with tempfile.TemporaryDirectory() as workdir:
    experiment = Experiment(config, workdir, splits=splits)
    state = experiment.initial_state()
  step = jax.jit(make_train_step(experiment), donate_argnums=0)
  feed = {"image": jnp.asarray(images[:batch]), "label": jnp.asarray(data.arrays["label"][:batch])}
  key = experiment.key("train")
  compiled = step.lower(state, feed, experiment.stats_device, key).compile()
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  box = {"state": state}

  def run(k):
    for _ in range(k):
      box["state"], metrics = step(box["state"], feed, experiment.stats_device, key)
    jax.block_until_ready(metrics)
  run(1)
  return median_rate(run, batch, steps, repeats), float((cost or {}).get("flops", float("nan")))


def torch_step(widths, batch: int, side: int, steps: int, repeats: int) -> float | None:
  """images/s of the same network and Nesterov SGD step in PyTorch on the CPU (None: no torch)."""
  try:
    import torch
    from torch import nn
  except ImportError:
    return None

  def group(cin, cout):
    norm = lambda: nn.BatchNorm2d(cout, eps=1e-12, momentum=0.4, affine=True)
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.MaxPool2d(2), norm(), nn.GELU(),
            nn.Conv2d(cout, cout, 3, padding=1, bias=False), norm(), nn.GELU()]

  layers = [nn.Conv2d(3, 24, 2, bias=True), nn.GELU()]
  cin = 24
  for width in widths:
    layers += group(cin, width)
    cin = width
  net = nn.Sequential(*layers, nn.AdaptiveMaxPool2d(1), nn.Flatten(), nn.Linear(cin, 10, bias=False))
  net = net.to(memory_format=torch.channels_last)
  opt = torch.optim.SGD(net.parameters(), lr=1e-3, momentum=0.85, nesterov=True, weight_decay=1e-3)
  x = torch.randn(batch, 3, side, side).to(memory_format=torch.channels_last)
  y = torch.randint(0, 10, (batch,))
  loss_fn = nn.CrossEntropyLoss(label_smoothing=0.2)

  def run(k):
    for _ in range(k):
      loss = loss_fn(net(x), y)
      opt.zero_grad(set_to_none=True)
      loss.backward()
      opt.step()
  run(1)
  return median_rate(run, batch, steps, repeats)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--setting", default="94", choices=fast_cifar10.SETTINGS)
  parser.add_argument("--batch", type=int, default=1024, help="training images per step")
  parser.add_argument("--steps", type=int, default=5, help="steps per timed block")
  parser.add_argument("--repeats", type=int, default=3, help="timed blocks (the median is shown)")
  parser.add_argument("--gemm", type=int, default=2048, help="side of the reference GEMM")
  parser.add_argument("--tiny", action="store_true", help="16x16 images, narrow net: a smoke test")
  args = parser.parse_args()
  config = fast_cifar10.get_config(f"setting={args.setting}")
  side = 32
  if args.tiny:
    config.model.widths, side, args.gemm = (4, 8, 8), 16, 128
    args.batch, args.steps, args.repeats = min(args.batch, 16), 2, 1
  config.model.whiten_examples = min(config.model.whiten_examples, args.batch)
  widths = tuple(config.model.widths)
  flops = step_flops(widths, side)
  gemm = gemm_flops_per_sec(args.gemm, args.steps, args.repeats)
  ours, xla_flops = our_step(config, args.batch, side, args.steps, args.repeats)
  theirs = torch_step(widths, args.batch, side, args.steps, args.repeats)
  print(f"fast_cifar {widths} on {side}x{side}, batch {args.batch}, {jax.devices()[0].platform}")
  print(f"| what | value |\n|---|---|")
  print(f"| float32 GEMM {args.gemm}^3 | {gemm / 1e9:.1f} GFLOP/s |")
  print(f"| train step FLOPs per image (architecture; XLA's count) | {flops / 1e9:.4g} G "
        f"({xla_flops / args.batch / 1e9:.4g} G) |")
  print(f"| our train step | {ours:.1f} images/s, {ours * flops / 1e9:.1f} GFLOP/s |")
  print(f"| PyTorch train step (same net, batch) | "
        + (f"{theirs:.1f} images/s |" if theirs else "torch not installed |"))
  print(f"ratio ours / GEMM FLOP/s: {ours * flops / gemm:.3f}")
  if theirs:
    print(f"ratio ours / PyTorch images/s: {ours / theirs:.3f}")


if __name__ == "__main__":
  main()
