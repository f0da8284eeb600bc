"""Benchmark: JPEG block DCT of 448x448 RGB batches -> [B, 56, 56, 192], ours (jit) vs peers.

Peers, all producing the same float32 output from the same uint8 batch (checked: max difference
<= 1e-5 x the largest coefficient):
  * `scipy-per-block`: JFIF colour in NumPy, then `scipy.fft.dctn(norm='ortho')` called once per 8x8
    block (what a straightforward per-block implementation does);
  * `scipy-vectorised`: the same colour step, then one `scipy.fft.dctn` over all blocks (axes=(2, 4));
  * `cv2.dct` per block, only if OpenCV is importable (not a freqnoise dependency).
Ours: `freqnoise.freq.dct.block_dct` under `jax.jit`, timed with `block_until_ready`, after a warm-up
call (compile time reported separately).

Command (2 CPU cores here, about 1 min):
  python experiments/benchmarks/bench_dct.py --batch 32 --repeats 5 --write experiments/benchmarks/RESULTS.md
"""

from __future__ import annotations

import argparse
import platform
import time

import jax
import numpy as np
import scipy.fft

from freqnoise.freq import color, dct


def _centred_ycbcr(rgb: np.ndarray) -> np.ndarray:
  m = color.RGB_TO_YCBCR.T.astype(np.float32)
  return rgb.astype(np.float32) @ m + (color.YCBCR_OFFSET - 128.0).astype(np.float32)


def scipy_vectorised(rgb: np.ndarray) -> np.ndarray:
  ycc = _centred_ycbcr(rgb)
  b, h, w, _ = ycc.shape
  c = scipy.fft.dctn(ycc.reshape(b, h // 8, 8, w // 8, 8, 3), axes=(2, 4), norm="ortho")
  return c.transpose(0, 1, 3, 5, 2, 4).reshape(b, h // 8, w // 8, 192)


def _per_block(rgb: np.ndarray, transform) -> np.ndarray:
  ycc = _centred_ycbcr(rgb).transpose(0, 3, 1, 2)  # [B, 3, H, W]
  b, _, h, w = ycc.shape
  out = np.empty((b, h // 8, w // 8, 3, 8, 8), np.float32)
  for i in range(b):
    for by in range(h // 8):
      for bx in range(w // 8):
        for p in range(3):
          out[i, by, bx, p] = transform(np.ascontiguousarray(ycc[i, p, 8 * by:8 * by + 8, 8 * bx:8 * bx + 8]))
  return out.reshape(b, h // 8, w // 8, 192)


def scipy_per_block(rgb: np.ndarray) -> np.ndarray:
  return _per_block(rgb, lambda block: scipy.fft.dctn(block, norm="ortho"))


def _time(fn, x, repeats: int) -> float:
  """Best-of-`repeats` seconds per call (best: least disturbed by other jobs on a shared machine)."""
  best = float("inf")
  for _ in range(repeats):
    t = time.perf_counter()
    fn(x)
    best = min(best, time.perf_counter() - t)
  return best


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--batch", type=int, default=32, help="images per batch")
  parser.add_argument("--size", type=int, default=448, help="image height = width (pixels, multiple of 8)")
  parser.add_argument("--repeats", type=int, default=5, help="timed calls per method (best is reported)")
  parser.add_argument("--per-block-images", type=int, default=2,
                      help="images timed for the slow per-block peers (throughput is per image)")
  parser.add_argument("--write", default="", help="append the result rows (markdown) to this file")
  args = parser.parse_args()

  rgb = np.random.default_rng(0).integers(0, 256, (args.batch, args.size, args.size, 3), dtype=np.uint8)
  ours = jax.jit(dct.block_dct)
  t = time.perf_counter()
  reference = np.asarray(ours(rgb).block_until_ready())
  compile_s = time.perf_counter() - t
  tol = 1e-5 * np.abs(reference).max()

  rows = []  # (method, images/s, max |difference to ours|)
  ours_s = _time(lambda x: ours(x).block_until_ready(), rgb, args.repeats)
  rows.append(("freqnoise block_dct (jax.jit)", args.batch / ours_s, 0.0))
  peers = [("scipy.fft.dctn vectorised over blocks", scipy_vectorised, args.batch),
           ("scipy.fft.dctn per 8x8 block", scipy_per_block, args.per_block_images)]
  try:
    import cv2  # optional peer; not a dependency
    peers.append(("cv2.dct per 8x8 block", lambda x: _per_block(x, cv2.dct), args.per_block_images))
  except ImportError:
    print("cv2 not importable: OpenCV peer skipped")
  for name, fn, n in peers:
    out = fn(rgb[:n])
    diff = float(np.abs(out - reference[:n]).max())
    if diff > tol:
      raise AssertionError(f"{name} differs from ours by {diff} (> {tol})")
    rows.append((name, n / _time(fn, rgb[:n], max(1, args.repeats if n == args.batch else 1)), diff))

  device = jax.devices()[0]
  header = (f"Block DCT, {args.batch}x{args.size}x{args.size}x3 uint8 -> "
            f"{args.batch}x{args.size // 8}x{args.size // 8}x192 float32; {device.platform} "
            f"({platform.processor() or platform.machine()}, {jax.local_device_count()} device, "
            f"jax {jax.__version__}); compile {compile_s:.2f} s")
  lines = [header, "", "| method | images/s | ours / method | max abs diff to ours |", "|---|---|---|---|"]
  for name, ips, diff in rows:
    lines.append(f"| {name} | {ips:.1f} | {rows[0][1] / ips:.2f}x | {diff:.2e} |")
  text = "\n".join(lines)
  print(text)
  if args.write:
    with open(args.write, "a") as f:
      f.write(text + "\n\n")


if __name__ == "__main__":
  main()
