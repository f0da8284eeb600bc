"""Input pipeline throughput: JPEG files -> a ready `[B, 28, 28, C]` float32 batch, images/s per CPU core.

Three ways to build the model's frequency-domain input from the same JPEG files, measured in the
same run (goal: (a) or (b) >= 2x (c)):

  (a) pixels + our DCT: PIL decode -> resize to 224x224 (a no-op for these files, all 224x224; it
      runs only for other sizes) -> stack a uint8 batch -> `DCTTransform.coefficients` under
      `jax.jit` (JFIF RGB -> YCbCr, 8x8 block DCT, the preset's channels; `--chroma`, default '420')
      -> `[B, 28, 28, C]`, `block_until_ready`.
  (b) JPEG coefficients read directly: `freqnoise.freq.jpeg.read_jpeg_dct` per file (jpeglib, no
      pixel decode; dequantised; 4:2:0 chroma repeated 2x2 onto the luma grid) -> the preset's
      channels -> stack -> `jax.device_put`, `block_until_ready`.
  (c) DCTNet as published (Xu et al., CVPR 2020, github.com/kaix90/DCTNet: decode, `Upscale` x2,
      `cv2.imencode` + jpeg2dct `loads`): PIL decode -> bilinear upscale to 448x448 -> re-encode as
      JPEG, quality 95, 4:2:0 -> coefficient read with jpeglib (through `read_jpeg_dct`, so the
      dequantisation and the chroma layout are those of (b)) -> `[B, 56, 56, C]` (DCTNet's own grid
      at 448^2). Quality 95 because DCTNet encodes with OpenCV's `imencode` and no quality argument,
      and OpenCV's default IMWRITE_JPEG_QUALITY is 95 (its default sampling is 4:2:0); OpenCV is not
      installed here, so PIL's libjpeg encoder does it. jpeglib reads only from a path, so each
      re-encoded image is written to a file in /dev/shm (tmpfs: memory) and read back; jpeg2dct reads
      the bytes in memory, so (c) carries a small extra cost of one tmpfs write and open per image.
  (c') the same without the upscale: re-encode at 224x224 -> `[B, 28, 28, C]`, which separates the
      cost of the upscale (and of coding 4x the pixels) from that of the re-encode itself.

Data: `--images` (default 256) JPEGs of Imagenette's val split (`../shared/data/imagenette/
val.tar.gz`; 224x224, quality 75, 4:2:0), evenly spaced over the sorted member names (so all ten
classes), grayscale files skipped (about 2%: the pipelines are timed on RGB files; `read_jpeg_dct`
gives grayscale ones zero chroma), extracted once to a temporary folder before any timing. The
image count is rounded down to a multiple of `--batch` (default 32) so that (a) compiles for one
batch shape only.

Per-core throughput: when run as a script, the process pins itself to one core (`--core`, default
0; `os.sched_setaffinity` before numpy and jax are imported, so every thread they start inherits it)
and sets XLA_FLAGS=--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1 and
OMP/OPENBLAS/MKL_NUM_THREADS=1. Images/s is then images/s per core. `--core -1` does not pin: the
table then divides images/s by the number of cores the process may use, a lower bound for the
single-threaded pipelines (b), (c), (c').

Timing: one untimed warm-up pass of one batch per pipeline (compiles (a)), then `--repeats` (default
5) timed passes over all the images, pipelines round-robin within each repeat (so load from other
processes hits all alike); medians. Each pass covers reading the files, decoding, everything, up to
the batch on the device (the CPU here) and ready. Outputs are unnormalised coefficients: the model's
per-channel normalisation is one affine map in the jitted step, the same cost whichever way the
coefficients came.

Correctness before timing: on the first `--check` images (a) and (b) must agree within JPEG
quantisation error: the mean |(a) - (b)| over the selected channels, relative to the mean
quantisation step of those channels in the files, must be <= CHECK_TOLERANCE (0.25; a coefficient
rounded to its step is off by a quarter step on average). The two differ only by pixel rounding and
clipping, libjpeg's integer IDCT, and (in '420') PIL's chroma upsampling followed by our 2x2
average. With `--chroma 444` only luma is compared (full-resolution chroma blocks are not the
file's 4:2:0 ones). (c') vs (a) is printed as well (re-encoding at quality 95 adds its own, smaller,
quantisation error).

    .venv/bin/python experiments/benchmarks/bench_input.py                 # 256 images, under a minute
    .venv/bin/python experiments/benchmarks/bench_input.py --channels 192
    .venv/bin/python experiments/benchmarks/bench_input.py --quick         # seconds: a smoke test

Writes the table to stdout and the raw figures to `--out` (default
experiments/benchmarks/results/input.json, or input_c192.json etc. for other channel counts; written
through `freqnoise.workdir.write_atomically`; with `--quick` only when `--out` is given).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import statistics
import sys
import tarfile
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DATA = os.path.join(ROOT, "..", "shared", "data", "imagenette", "val.tar.gz")
CHECK_TOLERANCE = 0.25  # mean |(a) - (b)| / mean quantisation step, selected channels
PRESET_SIZES = (6, 24, 32, 48, 64, 192)


def _pin_to_one_core(core: int) -> None:
  """Before numpy / jax are imported: one core, single-threaded XLA and BLAS."""
  flags = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
  os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + flags).strip()
  for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = "1"
  os.sched_setaffinity(0, {core})


if __name__ == "__main__":
  _pre = argparse.ArgumentParser(add_help=False)
  _pre.add_argument("--core", type=int, default=0)
  _core = _pre.parse_known_args()[0].core
  if _core >= 0:
    _pin_to_one_core(_core)
  sys.path.insert(0, ROOT)

import jax  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from freqnoise.freq import dct, selection  # noqa: E402
from freqnoise.freq.jpeg import read_jpeg_dct  # noqa: E402
from freqnoise.freq.transform import DCTTransform  # noqa: E402


# ----------------------------------------------------------------------------- the pipelines
def decode(path: str, size: int) -> np.ndarray:
  """PIL decode to uint8 RGB `[size, size, 3]`, bilinear resize only when the file is another size."""
  with Image.open(path) as img:
    img = img.convert("RGB")
    if img.size != (size, size):
      img = img.resize((size, size), Image.BILINEAR)
    return np.asarray(img)


def make_pixel_pipeline(channels: int, chroma: str = "420", size: int = 224):
  """(a): paths -> float32 `[B, size/8, size/8, C]` jax array (ready): decode, stack, jitted DCT."""
  coefficients = jax.jit(DCTTransform(channels=channels, chroma=chroma, normalize=False).coefficients)

  def run(paths):
    batch = np.stack([decode(p, size) for p in paths])
    return coefficients(batch).block_until_ready()

  return run


def make_coefficient_pipeline(channels: int, grid: int = 28):
  """(b): paths -> float32 `[B, grid, grid, C]` jax array (ready), read from the files' coefficients."""
  index = selection.preset_channels(channels)

  def run(paths):
    out = []
    for p in paths:
      c = read_jpeg_dct(p)
      if c.shape[:2] != (grid, grid):
        raise ValueError(f"{p}: a {c.shape[0]}x{c.shape[1]} block grid, expected {grid}x{grid} "
                         f"(the coefficient read cannot resize)")
      out.append(c[..., index])
    return jax.device_put(np.stack(out)).block_until_ready()

  return run


def make_dctnet_pipeline(channels: int, size: int = 448, quality: int = 95, tmp_dir: str | None = None):
  """(c) with size 448, (c') with size 224: decode, bilinear resize to `size` (DCTNet's `Upscale`),
  JPEG re-encode at `quality` (4:2:0), coefficient read -> float32 `[B, size/8, size/8, C]` (ready)."""
  index = selection.preset_channels(channels)
  if tmp_dir is None:
    tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
  fd, tmp = tempfile.mkstemp(suffix=".jpg", dir=tmp_dir)  # one scratch file, rewritten per image
  os.close(fd)

  def run(paths):
    out = []
    for p in paths:
      with Image.open(p) as img:
        img = img.convert("RGB")
        if img.size != (size, size):
          img = img.resize((size, size), Image.BILINEAR)
        img.save(tmp, format="JPEG", quality=quality, subsampling=2)  # PIL: 2 = 4:2:0
      out.append(read_jpeg_dct(tmp)[..., index])
    return jax.device_put(np.stack(out)).block_until_ready()

  run.scratch = tmp
  return run


# ----------------------------------------------------------------------------- checks
def quant_steps(path: str) -> np.ndarray:
  """The file's quantisation step of each of the 192 channels (`64 * plane + 8v + u`), float32."""
  import jpeglib
  jpeg = jpeglib.read_dct(path)
  tables = np.asarray(jpeg.qt, np.float32).reshape(-1, dct.COEFFS_PER_PLANE)
  return np.concatenate([tables[t] for t in list(jpeg.quant_tbl_no)[:3]])


def agreement(x: np.ndarray, reference: np.ndarray, steps: np.ndarray, channels: np.ndarray,
              luma_only: bool = False) -> dict:
  """Mean |x - reference| over the selected channels (luma only if asked), and relative to the mean
  |reference| and to the mean quantisation step `steps[channels]` (steps: `[192]`)."""
  keep = channels < dct.COEFFS_PER_PLANE if luma_only else np.ones(len(channels), bool)
  diff = np.abs(np.asarray(x, np.float64) - np.asarray(reference, np.float64))[..., keep]
  mean_diff = float(diff.mean())
  return {"channels_compared": int(keep.sum()), "mean_abs_diff": mean_diff,
          "max_abs_diff": float(diff.max()),
          "rel_to_mean_abs_coefficient": mean_diff / float(np.abs(reference)[..., keep].mean()),
          "rel_to_mean_quant_step": mean_diff / float(steps[channels[keep]].mean())}


# ----------------------------------------------------------------------------- data
def extract_images(tar_path: str, n: int, dest: str, size: int = 224) -> tuple[list[str], dict]:
  """Writes `n` RGB `size`x`size` JPEGs of the archive, evenly spaced over the sorted member names,
  into `dest`; returns their paths and counts of what was skipped."""
  members = {}
  with tarfile.open(tar_path, "r:gz") as tar:
    for m in tar:
      if m.isfile() and m.name.lower().endswith((".jpeg", ".jpg")):
        members[m.name] = tar.extractfile(m).read()
  kept, skipped = [], {"grayscale_or_other_mode": 0, "other_size": 0}
  for name in sorted(members):
    with Image.open(io.BytesIO(members[name])) as img:  # header only
      if img.mode != "RGB":
        skipped["grayscale_or_other_mode"] += 1
      elif img.size != (size, size):
        skipped["other_size"] += 1
      else:
        kept.append(name)
  if len(kept) < n:
    raise ValueError(f"{tar_path}: only {len(kept)} RGB {size}x{size} JPEGs, {n} asked for")
  chosen = [kept[i] for i in np.linspace(0, len(kept) - 1, n).round().astype(int)]
  paths = []
  for i, name in enumerate(chosen):
    path = os.path.join(dest, f"{i:05d}_{os.path.basename(name)}")
    with open(path, "wb") as f:
      f.write(members[name])
    paths.append(path)
  return paths, {"members": len(members), **skipped}


def _batches(paths: list[str], batch: int) -> list[list[str]]:
  return [paths[i:i + batch] for i in range(0, len(paths), batch)]


def _machine() -> dict:
  cpu = platform.processor() or platform.machine()
  try:
    with open("/proc/cpuinfo") as f:
      cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
  except (OSError, StopIteration):
    pass
  versions = {"python": platform.python_version(), "jax": jax.__version__, "numpy": np.__version__,
              "pillow": Image.__version__}
  try:
    import jpeglib
    versions["jpeglib"] = jpeglib.__version__
  except ImportError:
    pass
  return {"cpu": cpu, "machine": platform.machine(), "os_cpu_count": os.cpu_count(),
          "backend": jax.default_backend(), "versions": versions}


# ----------------------------------------------------------------------------- main
def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--images", type=int, default=256,
                      help="JPEGs timed (rounded down to a multiple of --batch)")
  parser.add_argument("--batch", type=int, default=32, help="images per batch")
  parser.add_argument("--channels", type=int, default=24, choices=PRESET_SIZES,
                      help="channel preset (freqnoise.freq.selection); 192 = all")
  parser.add_argument("--chroma", default="420", choices=("420", "444"), help="chroma mode of (a)")
  parser.add_argument("--repeats", type=int, default=5, help="timed passes per pipeline (median reported)")
  parser.add_argument("--check", type=int, default=8, help="images in the (a) vs (b) agreement check")
  parser.add_argument("--core", type=int, default=0,
                      help="core to pin to; -1: all cores, images/s divided by their number")
  parser.add_argument("--data", default=DATA, help="tar.gz with SPLIT/CLASS/*.JPEG members")
  parser.add_argument("--quick", action="store_true", help="8 images, batch 4, one repeat: a smoke test")
  parser.add_argument("--out", default=None, help="raw figures (JSON); default results/input[_cN].json")
  args = parser.parse_args()
  if args.quick:
    args.images, args.batch, args.repeats, args.check = 8, 4, 1, 4
  n = args.images // args.batch * args.batch
  if n == 0:
    raise ValueError(f"--images {args.images} < --batch {args.batch}")
  default_out = os.path.join(ROOT, "experiments", "benchmarks", "results",
                             "input.json" if args.channels == 24 else f"input_c{args.channels}.json")
  out = None if args.quick and args.out is None else (args.out or default_out)
  cores = sorted(os.sched_getaffinity(0))
  pinned = args.core >= 0
  if pinned and cores != [args.core]:
    raise RuntimeError(f"expected to run on core {args.core} only, affinity is {cores}")
  channels = selection.preset_channels(args.channels)
  c = len(channels)

  with tempfile.TemporaryDirectory(prefix="bench_input_") as tmp:
    t = time.perf_counter()
    paths, data_counts = extract_images(args.data, n, tmp)
    print(f"extracted {n} RGB 224x224 JPEGs of {data_counts['members']} in {args.data} "
          f"({data_counts['grayscale_or_other_mode']} grayscale, {data_counts['other_size']} other "
          f"sizes skipped) in {time.perf_counter() - t:.1f} s")
    pipelines = {  # key: (label, paths -> ready batch, output grid)
        "a": ("(a) PIL decode + our jitted YCbCr/DCT/selection",
              make_pixel_pipeline(args.channels, args.chroma), 28),
        "b": ("(b) JPEG coefficients read directly (jpeglib)", make_coefficient_pipeline(args.channels), 28),
        "c": ("(c) DCTNet: decode, upscale 448, re-encode q95, read",
              make_dctnet_pipeline(args.channels, 448), 56),
        "c'": ("(c') same without the upscale: re-encode q95 at 224",
               make_dctnet_pipeline(args.channels, 224), 28),
    }
    try:
      # Correctness first, on the same files.
      check = paths[:max(1, min(args.check, n))]
      outs = {k: np.asarray(fn(check)) for k, (_, fn, _) in pipelines.items()}
      for k, (_, _, grid) in pipelines.items():
        if outs[k].shape != (len(check), grid, grid, c):
          raise AssertionError(f"pipeline {k}: shape {outs[k].shape}, expected {(len(check), grid, grid, c)}")
      steps = np.mean([quant_steps(p) for p in check], axis=0)
      luma_only = args.chroma == "444"
      agree = {"a_vs_b": agreement(outs["a"], outs["b"], steps, channels, luma_only),
               "c'_vs_a": agreement(outs["c'"], outs["a"], steps, channels, luma_only)}
      scope = "luma channels" if luma_only else "all selected channels"
      for name, a in agree.items():
        print(f"agreement {name.replace('_', ' ')} on {len(check)} images ({scope}, "
              f"{a['channels_compared']}): mean |diff| {a['mean_abs_diff']:.3f} = "
              f"{a['rel_to_mean_abs_coefficient']:.4f} x mean |coefficient| = "
              f"{a['rel_to_mean_quant_step']:.3f} x mean quantisation step of the files; "
              f"max {a['max_abs_diff']:.1f}")
      if agree["a_vs_b"]["rel_to_mean_quant_step"] > CHECK_TOLERANCE:
        raise AssertionError(f"(a) and (b) differ by {agree['a_vs_b']['rel_to_mean_quant_step']:.3f} mean "
                             f"quantisation steps (> {CHECK_TOLERANCE}): they do not compute the same input")

      # Warm-up (compiles (a) for the batch shape), then round-robin timed passes.
      batches = _batches(paths, args.batch)
      for _, fn, _ in pipelines.values():
        fn(batches[0])
      load_before = os.getloadavg()
      times = {k: [] for k in pipelines}
      for _ in range(args.repeats):
        for k, (_, fn, _) in pipelines.items():
          t = time.perf_counter()
          for b in batches:
            fn(b)
          times[k].append(time.perf_counter() - t)
      load_after = os.getloadavg()
    finally:
      for k in ("c", "c'"):
        os.remove(pipelines[k][1].scratch)

  cores_used = 1 if pinned else len(cores)
  rows = []
  for k, (label, _, grid) in pipelines.items():
    median = statistics.median(times[k])
    ips = n / median
    rows.append({"pipeline": k, "label": label, "output": [args.batch, grid, grid, c], "seconds": times[k],
                 "median_s": median, "images_per_s": ips, "images_per_s_per_core": ips / cores_used})
  ref = next(r for r in rows if r["pipeline"] == "c")["images_per_s"]
  for r in rows:
    r["ratio_to_c"] = r["images_per_s"] / ref
  ratio = {r["pipeline"]: r["ratio_to_c"] for r in rows}
  met = max(ratio["a"], ratio["b"]) >= 2.0

  machine = _machine()
  where = (f"pinned to core {args.core} (1 core)" if pinned
           else f"{len(cores)} cores, images/s divided by {len(cores)}")
  print(f"\n{machine['cpu']}, {where}, jax {jax.__version__} ({jax.default_backend()}), "
        f"load {load_before[0]:.1f}; {n} Imagenette val JPEGs, batch {args.batch}, {c} channels, (a) chroma "
        f"{args.chroma}; median of {args.repeats} passes{' [quick]' if args.quick else ''}\n")
  print("| pipeline | output | images/s | images/s per core | ratio to (c) |\n|---|---|---|---|---|")
  for r in rows:
    print(f"| {r['label']} | {r['output'][1]}x{r['output'][2]}x{c} | {r['images_per_s']:.1f} | "
          f"{r['images_per_s_per_core']:.1f} | {r['ratio_to_c']:.2f}x |")
  upscale = ratio["c'"]  # time of (c) / time of (c')
  print(f"\ngoal (a) or (b) >= 2x (c): {'met' if met else 'not met'} "
        f"((a) {ratio['a']:.2f}x, (b) {ratio['b']:.2f}x); with the upscale to 448, (c) takes "
        f"{upscale:.2f}x the time of (c') at 224")

  if out:
    record = {"date_utc": time.strftime("%Y-%m-%dT%H:%MZ", time.gmtime()), "quick": args.quick,
              "images": n, "batch": args.batch, "channels": args.channels, "chroma_a": args.chroma,
              "repeats": args.repeats, "data": os.path.relpath(args.data, ROOT), "data_counts": data_counts,
              "pinned_core": args.core if pinned else None, "cores_used": cores_used,
              "xla_flags": os.environ.get("XLA_FLAGS", ""), **machine,
              "load_before": load_before, "load_after": load_after, "agreement": agree,
              "check_tolerance_quant_steps": CHECK_TOLERANCE, "rows": rows,
              "goal": "(a) or (b) >= 2x (c)", "goal_met": met,
              "dctnet_reencode": "PIL (libjpeg) quality 95, 4:2:0: OpenCV imencode's defaults"}
    from freqnoise.workdir import write_atomically
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    write_atomically(out, json.dumps(record, indent=1) + "\n")
    print(f"raw figures: {out}")


if __name__ == "__main__":
  main()
