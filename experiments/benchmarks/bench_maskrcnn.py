"""Mask R-CNN R50-FPN train-step and inference images/s on this CPU: ours (`maskrcnn`, spatial and
DCT input) against torchvision's `maskrcnn_resnet50_fpn`, same image size and batch, same run.

    .venv/bin/python experiments/benchmarks/bench_maskrcnn.py               # 320², batch 1
    .venv/bin/python experiments/benchmarks/bench_maskrcnn.py --image 512 --batch 2 \
        --variants spatial,dct24,dct64       # ~1.4 TFLOP a train step: about an hour on 2 cores
    .venv/bin/python experiments/benchmarks/bench_maskrcnn.py --smoke       # a functional check

Ours: `freqnoise.detection.model.MaskRCNN` built through the registry (`build_model`, name
'maskrcnn') at the published width: ResNet-50 (width 64, BatchNorm, nothing frozen), FPN 256, box
head 1024, 4 mask convs, 90 object classes (+ background = torchvision's num_classes=91), RPN
2000/2000 proposals (train, pre-NMS per level / post-NMS) and 1000/1000 (test), 512 RoIs a training
image, 100 detections, score threshold 0.05: torchvision's defaults, which the peer keeps.
* train step: one jitted function (params, batch_stats and the optimizer state donated): the input
  transform, `value_and_grad` of the sum of the five losses (`train=True`, `mutable=['batch_stats']`,
  rngs from `freqnoise.rng.stream_keys`, so 'sampling' drives the anchor and RoI samplers), and an
  `optax.sgd(lr, momentum=0.9)` update;
* inference: one jitted eval apply (`train=False, size=...`): boxes, scores, classes and the 28x28
  mask probabilities of 100 fixed detection slots per image.
Variants (`--variants`): 'spatial' (the step takes the uint8 pixels `[B, S, S, 3]` and normalises
them per channel), 'dct24' and 'dct64' (`stem='frequency'`: the step takes the same uint8 pixels
and computes `DCTTransform(channels=C, upscale=2)` on the device, inside the jitted function, so the
bilinear 2x upscale, the 8x8 block DCT of YCbCr and the per-channel normalisation are in the
timed step; the model input is then float32 `[B, S/4, S/4, C]`). Input bytes per image: the model's
input (uint8 S*S*3 for spatial, float32 (S/4)^2*C*4 for DCT) and the pixels the DCT is computed
from (uint8 S*S*3; on the device it goes through a float32 (2S)^2*3 upscaled image).

Peer: torchvision's `maskrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=91)`
(no pretrained weights, so its backbone has trainable BatchNorm as ours, all layers trainable),
with `min_size=max_size=S` so that GeneralizedRCNNTransform keeps the S x S images at S x S (it
still runs its normalisation and a scale-1 resize). Train step: `model.train()`, the sum of its
five losses, `backward`, `torch.optim.SGD(lr, momentum=0.9)`; inference: `model.eval()` under
`torch.no_grad()`; `torch.set_num_threads(--threads)` (default: the cores this process may use).
The peer runs in a subprocess of `--peer_python` (default: this Python; torch and torchvision are
no dependency of ours: `pip install torch torchvision`, or point it at another environment's Python) executing this file with `--peer_only`
and the same size flags; it imports neither JAX nor freqnoise and prints one JSON line. If it cannot
import torchvision, the table says 'not measured: <reason>' and ours is still recorded. Eager
PyTorch has no compile step: its 'compile' column is its first call (untimed).

Data (both models, the same arrays: numpy, seeded): `--batch` random uint8 S x S RGB images and
`--instances` random boxes per image (sides S/8..S/2, pixel-aligned, x1, y1, x2, y2), random classes
1..90, each instance an ellipse inscribed in its box; ours gets the mask cropped to its box at
`--mask_size`^2 (uint8 0/255, the data pipeline's format), torchvision the full-image S x S mask.
With random weights torchvision keeps only detections scoring above 0.05 (possibly none, which
skips its mask head), while ours always computes 100 slots; the mean number of valid detections
per image of both is recorded.

Timing: the JAX functions are compiled ahead (`lower().compile()`, the seconds reported apart),
then `--warmup` untimed calls each, then `--repeats` timed calls, variants round-robin within each
repeat (load from other processes hits all alike), `block_until_ready` on the outputs; medians.
images/s = batch / median seconds. The peer runs after ours, alone, the same way.

`--smoke`: 128^2, batch 1, 1 repeat, tiny models (ResNet-18 width 8, FPN 32, box head 64, 100
proposals, 64 RoIs; torchvision keeps its R50 backbone with the same proposal and RoI counts): a
check that everything runs end to end; its ratios mean nothing. It writes no results unless `--out`
is given.

Writes the table to stdout and the raw figures to `--out` (default
experiments/benchmarks/results/bench_maskrcnn.json; written through
`freqnoise.workdir.write_atomically`: a temporary file, then os.replace).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RESULTS = os.path.join(ROOT, "experiments", "benchmarks", "results", "bench_maskrcnn.json")
NUM_CLASSES = 90                       # object classes; torchvision's num_classes=91 counts background
PIXEL_MEAN = (123.675, 116.28, 103.53)  # ImageNet, in 0..255 (torchvision's image_mean x 255)
PIXEL_STD = (58.395, 57.12, 57.375)

# Model settings shared by ours and the peer (torchvision's defaults = ours).
FULL = {"depth": 50, "width": 64, "fpn_features": 256, "box_hidden": 1024, "mask_convs": 4,
        "rpn_pre_nms_train": 2000, "rpn_post_nms_train": 2000, "rpn_pre_nms_test": 1000,
        "rpn_post_nms_test": 1000, "roi_batch_per_image": 512, "detections_pre_nms": 1000,
        "max_detections": 100, "score_threshold": 0.05}
SMOKE = {**FULL, "depth": 18, "width": 8, "fpn_features": 32, "box_hidden": 64,
         "rpn_pre_nms_train": 100, "rpn_post_nms_train": 100, "rpn_pre_nms_test": 100,
         "rpn_post_nms_test": 100, "roi_batch_per_image": 64, "detections_pre_nms": 100}
VARIANTS = {"spatial": 0, "dct24": 24, "dct64": 64}  # name -> DCT channels (0: pixels)


# ----------------------------------------------------------------------------- shared (numpy only)
def synthetic_batch(image: int, batch: int, instances: int, mask_size: int, seed: int) -> dict:
  """Seeded numpy arrays both models train on: images uint8 [B, S, S, 3]; boxes float32 [B, N, 4]
  (x1, y1, x2, y2, pixel-aligned, sides S/8..S/2); classes int32 [B, N] in 1..90; masks uint8
  [B, N, M, M] (0/255, the box's inscribed ellipse sampled at the M x M cell centres of the box);
  full_masks uint8 [B, N, S, S] (0/1, the same ellipse at pixel centres); size int32 [B, 2]."""
  rng = np.random.default_rng(seed)
  images = rng.integers(0, 256, (batch, image, image, 3), dtype=np.uint8)
  lo, hi = max(1, image // 8), max(2, image // 2)
  wh = rng.integers(lo, hi + 1, (batch, instances, 2))
  xy = rng.integers(0, image - wh + 1)
  boxes = np.concatenate([xy, xy + wh], -1).astype(np.float32)
  classes = rng.integers(1, NUM_CLASSES + 1, (batch, instances)).astype(np.int32)
  cells = (np.arange(mask_size) + 0.5) / mask_size * 2 - 1            # cell centres in [-1, 1]
  crop = ((cells[:, None] ** 2 + cells[None, :] ** 2) <= 1).astype(np.uint8) * 255
  masks = np.broadcast_to(crop, (batch, instances, mask_size, mask_size)).copy()
  pix = np.arange(image) + 0.5
  full = np.zeros((batch, instances, image, image), np.uint8)
  for b in range(batch):
    for n in range(instances):
      x1, y1, x2, y2 = boxes[b, n]
      u = (pix - (x1 + x2) / 2) / ((x2 - x1) / 2)
      v = (pix - (y1 + y2) / 2) / ((y2 - y1) / 2)
      full[b, n] = (v[:, None] ** 2 + u[None, :] ** 2) <= 1
  size = np.full((batch, 2), image, np.int32)
  return {"images": images, "boxes": boxes, "classes": classes, "masks": masks,
          "full_masks": full, "size": size}


def cpu_model() -> str:
  try:
    with open("/proc/cpuinfo") as f:
      return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
  except (OSError, StopIteration):
    return platform.processor() or platform.machine()


def timed_median(fn, repeats: int) -> tuple[float, list[float]]:
  times = []
  for _ in range(repeats):
    t = time.perf_counter()
    fn()
    times.append(time.perf_counter() - t)
  return statistics.median(times), times


# ----------------------------------------------------------------------------- the peer (torch)
def peer_main(args, settings: dict) -> None:
  """--peer_only: torchvision's Mask R-CNN on the same data; prints `RESULT {json}`."""
  try:
    import torch
    import torchvision
    from torchvision.models.detection import maskrcnn_resnet50_fpn
    from torchvision.ops import nms  # noqa: F401  (the compiled ops load: a broken install fails here)
  except Exception as e:  # noqa: BLE001  (any import failure is a reason not to measure)
    print("RESULT " + json.dumps({"error": f"cannot import torchvision in {sys.executable}: "
                                           f"{type(e).__name__}: {e}"}), flush=True)
    return
  torch.manual_seed(args.seed)
  torch.set_num_threads(args.threads)
  s = settings
  model = maskrcnn_resnet50_fpn(
      weights=None, weights_backbone=None, num_classes=NUM_CLASSES + 1, min_size=args.image,
      max_size=args.image, rpn_pre_nms_top_n_train=s["rpn_pre_nms_train"],
      rpn_post_nms_top_n_train=s["rpn_post_nms_train"], rpn_pre_nms_top_n_test=s["rpn_pre_nms_test"],
      rpn_post_nms_top_n_test=s["rpn_post_nms_test"], box_batch_size_per_image=s["roi_batch_per_image"],
      box_score_thresh=s["score_threshold"], box_detections_per_img=s["max_detections"])
  data = synthetic_batch(args.image, args.batch, args.instances, args.mask_size, args.seed)
  targets = [{"boxes": torch.from_numpy(data["boxes"][b]),
              "labels": torch.from_numpy(data["classes"][b]).long(),
              "masks": torch.from_numpy(data["full_masks"][b])} for b in range(args.batch)]
  pixels = torch.from_numpy(data["images"])
  optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9)
  state = {"loss": None, "detections": None}

  def images():  # uint8 NHWC -> a list of float CHW in 0..1 (torchvision's input), in the timing
    return list(pixels.permute(0, 3, 1, 2).float().div_(255.0).unbind(0))

  def train():
    model.train()
    losses = model(images(), targets)
    loss = sum(losses.values())
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    state["loss"] = {k: float(v) for k, v in losses.items()}

  def infer():
    model.eval()
    with torch.no_grad():
      out = model(images())
    state["detections"] = [int(o["boxes"].shape[0]) for o in out]

  first = {}
  for name, fn in (("train", train), ("infer", infer)):
    t = time.perf_counter()
    fn()
    first[name] = time.perf_counter() - t
  for _ in range(max(0, args.warmup - 1)):
    train()
    infer()
  load_before = os.getloadavg()
  times = {"train": [], "infer": []}
  for _ in range(args.repeats):  # round-robin, as ours
    for name, fn in (("train", train), ("infer", infer)):
      t = time.perf_counter()
      fn()
      times[name].append(time.perf_counter() - t)
  result = {"torch": torch.__version__, "torchvision": torchvision.__version__,
            "python": platform.python_version(), "numpy": np.__version__,
            "threads": torch.get_num_threads(), "interop_threads": torch.get_num_interop_threads(),
            "first_call_s": first, "times_s": times,
            "median_s": {k: statistics.median(v) for k, v in times.items()},
            "losses_last": state["loss"], "detections_per_image_last": state["detections"],
            "load_before": load_before, "load_after": os.getloadavg()}
  print("RESULT " + json.dumps(result), flush=True)


def run_peer(args, peer_python: str) -> dict:
  """The peer in a subprocess; {'error': reason} when it cannot be measured."""
  cmd = [peer_python, os.path.abspath(__file__), "--peer_only", f"--image={args.image}",
         f"--batch={args.batch}", f"--instances={args.instances}", f"--mask_size={args.mask_size}",
         f"--repeats={args.repeats}", f"--warmup={args.warmup}", f"--threads={args.threads}",
         f"--seed={args.seed}", f"--lr={args.lr}"] + (["--smoke"] if args.smoke else [])
  env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
  try:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.peer_timeout, env=env)
  except FileNotFoundError:
    return {"error": f"no peer Python at {peer_python}"}
  except subprocess.TimeoutExpired:
    return {"error": f"the peer did not finish within {args.peer_timeout} s"}
  lines = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")]
  if proc.returncode or not lines:
    tail = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
    return {"error": f"peer exited with status {proc.returncode}: {tail}"}
  return json.loads(lines[-1][len("RESULT "):])


# ----------------------------------------------------------------------------- ours (JAX)
def build_variant(name: str, settings: dict, data: dict, lr: float, seed: int) -> dict:
  """Compiled train step and inference of one variant, with its state; see the module docstring."""
  import jax
  import jax.numpy as jnp
  import optax
  from freqnoise.freq.transform import DCTTransform
  from freqnoise.detection import model as _maskrcnn  # noqa: F401 (registers 'maskrcnn')
  from freqnoise.models import build_model
  from freqnoise.rng import stream_keys

  channels = VARIANTS[name]
  fields = {k: settings[k] for k in settings}
  model = build_model({"name": "maskrcnn", **fields, "stem": "frequency" if channels else "spatial"},
                      num_classes=NUM_CLASSES)
  if channels:
    dct = DCTTransform(channels=channels, upscale=2, normalize=True)
    # Fixed per-channel statistics stand in for the fitted ones (passed as arguments: not folded).
    stats = {"mean": jnp.zeros((channels,), jnp.float32), "std": jnp.full((channels,), 8.0, jnp.float32)}
    transform = dct
  else:
    stats = {"mean": jnp.asarray(PIXEL_MEAN, jnp.float32), "std": jnp.asarray(PIXEL_STD, jnp.float32)}
    transform = lambda st, px: (px.astype(jnp.float32) - st["mean"]) / st["std"]

  pixels = jnp.asarray(data["images"])
  targets = {k: jnp.asarray(data[k]) for k in ("boxes", "classes", "masks", "size")}
  size = targets["size"]
  tx = optax.sgd(lr, momentum=0.9)

  t = time.perf_counter()
  init = jax.jit(lambda key, st, px: model.init(stream_keys(key), transform(st, px), train=False,
                                                size=size))
  variables = jax.block_until_ready(init(jax.random.PRNGKey(seed), stats, pixels))
  init_s = time.perf_counter() - t
  params, batch_stats = variables["params"], variables["batch_stats"]
  opt = tx.init(params)
  model_input = jax.eval_shape(transform, stats, pixels)

  def train_step(params, batch_stats, opt, st, px, tgt, key):
    x = transform(st, px)

    def loss_fn(p):
      losses, updates = model.apply({"params": p, "batch_stats": batch_stats}, x, train=True,
                                    targets=tgt, rngs=stream_keys(key), mutable=["batch_stats"])
      return sum(losses.values()), (losses, updates["batch_stats"])

    (_, (losses, new_stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
    deltas, opt = tx.update(grads, opt, params)
    return optax.apply_updates(params, deltas), new_stats, opt, losses

  def infer(params, batch_stats, st, px, sz):
    return model.apply({"params": params, "batch_stats": batch_stats}, transform(st, px),
                       train=False, size=sz)

  key = jax.random.PRNGKey(seed + 1)  # raw uint32 keys, as the trainer (root_key)
  t = time.perf_counter()
  train_c = jax.jit(train_step, donate_argnums=(0, 1, 2)).lower(
      params, batch_stats, opt, stats, pixels, targets, key).compile()
  train_compile = time.perf_counter() - t
  t = time.perf_counter()
  infer_c = jax.jit(infer).lower(params, batch_stats, stats, pixels, size).compile()
  infer_compile = time.perf_counter() - t
  state = {"params": params, "batch_stats": batch_stats, "opt": opt, "step": 0, "losses": None,
           "detections": None}

  def train():
    state["step"] += 1
    state["params"], state["batch_stats"], state["opt"], state["losses"] = train_c(
        state["params"], state["batch_stats"], state["opt"], stats, pixels, targets,
        jax.random.fold_in(key, state["step"]))
    jax.block_until_ready((state["params"], state["losses"]))

  def run_infer():
    state["detections"] = jax.block_until_ready(
        infer_c(state["params"], state["batch_stats"], stats, pixels, size))

  n_params = sum(int(np.prod(a.shape)) for a in jax.tree.leaves(params))
  return {"name": name, "channels": channels, "train": train, "infer": run_infer, "state": state,
          "init_s": init_s, "compile_s": {"train": train_compile, "infer": infer_compile},
          "model_input": [list(model_input.shape), str(model_input.dtype)], "params": n_params}


def input_bytes(image: int, channels: int) -> dict:
  """Bytes per image: the model's input, and the pixels it is computed from."""
  pixels = image * image * 3
  if not channels:
    return {"model_input": pixels, "model_input_dtype": "uint8", "computed_from_pixels": pixels,
            "device_upscaled_float32": 0}
  return {"model_input": (image // 4) ** 2 * channels * 4, "model_input_dtype": "float32",
          "computed_from_pixels": pixels, "device_upscaled_float32": (2 * image) ** 2 * 3 * 4}


def machine() -> dict:
  import flax
  import jax
  import jaxlib
  import optax
  return {"cpu": cpu_model(), "machine": platform.machine(), "nproc": os.cpu_count(),
          "cores_usable": len(os.sched_getaffinity(0)), "backend": jax.default_backend(),
          "versions": {"python": platform.python_version(), "jax": jax.__version__,
                       "jaxlib": jaxlib.__version__, "flax": flax.__version__,
                       "optax": optax.__version__, "numpy": np.__version__}}


def fmt_rate(batch: int, seconds: float | None) -> str:
  return "—" if seconds is None else f"{batch / seconds:.3f} ({seconds * 1e3:,.0f} ms)"


# ----------------------------------------------------------------------------- main
def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--image", type=int, default=320, help="image side S (multiple of 64)")
  parser.add_argument("--batch", type=int, default=1, help="images per step")
  parser.add_argument("--instances", type=int, default=4, help="GT boxes/masks per image")
  parser.add_argument("--mask_size", type=int, default=64, help="our box-cropped GT mask side M")
  parser.add_argument("--variants", default="spatial,dct24", help="ours: " + ", ".join(VARIANTS))
  parser.add_argument("--repeats", type=int, default=3, help="timed calls per function (median)")
  parser.add_argument("--warmup", type=int, default=1, help="untimed calls after compiling")
  parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)),
                      help="torch.set_num_threads for the peer (default: the usable cores)")
  parser.add_argument("--lr", type=float, default=0.0025, help="SGD learning rate (momentum 0.9)")
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--peer_python", default=sys.executable,
                      help="Python with torch and torchvision for the peer")
  parser.add_argument("--peer_timeout", type=int, default=7200, help="seconds before the peer is given up")
  parser.add_argument("--no_peer", action="store_true", help="ours only")
  parser.add_argument("--smoke", action="store_true",
                      help="128^2, batch 1, 1 repeat, tiny models: a functional check (no results file)")
  parser.add_argument("--out", default=None, help=f"raw figures (JSON); default {RESULTS}")
  parser.add_argument("--peer_only", action="store_true", help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args.smoke:
    args.image, args.batch, args.repeats, args.warmup, args.mask_size = 128, 1, 1, 1, 28
  settings = SMOKE if args.smoke else FULL
  if args.image % 64:
    parser.error(f"--image {args.image} is not a multiple of 64 (5 FPN levels)")
  if args.peer_only:
    return peer_main(args, settings)

  sys.path.insert(0, ROOT)
  import jax  # noqa: F401  (ours only: the peer never imports JAX)
  variants = args.variants.split(",")
  for v in variants:
    if v not in VARIANTS:
      parser.error(f"unknown variant {v!r}; known: {', '.join(VARIANTS)}")
  out = None if args.smoke and args.out is None else (args.out or RESULTS)
  data = synthetic_batch(args.image, args.batch, args.instances, args.mask_size, args.seed)
  mach = machine()
  print(f"{mach['cpu']}, {mach['cores_usable']} usable cores of {mach['nproc']}, jax "
        f"{mach['versions']['jax']} ({mach['backend']}), flax {mach['versions']['flax']}; "
        f"{args.image}x{args.image}, batch {args.batch}, {args.instances} instances/image, "
        f"median of {args.repeats}{' [smoke]' if args.smoke else ''}", flush=True)

  # The peer's Python first (seconds): a broken install is known before the long part.
  peer_reason = "--no_peer" if args.no_peer else None
  if peer_reason is None:
    try:
      probe = subprocess.run([args.peer_python, "-c", "import torch, torchvision; "
                              "from torchvision.ops import nms; print(torchvision.__version__)"],
                             capture_output=True, text=True, timeout=300)
      if probe.returncode:
        tail = (probe.stderr.strip().splitlines() or ["(no output)"])[-1]
        peer_reason = f"{args.peer_python} cannot import torchvision: {tail}"
    except (OSError, subprocess.TimeoutExpired) as e:
      peer_reason = f"{args.peer_python}: {type(e).__name__}: {e}"
  print(f"peer: {'not measured: ' + peer_reason if peer_reason else args.peer_python}", flush=True)

  ours = {}
  for v in variants:
    ours[v] = build_variant(v, settings, data, args.lr, args.seed)
    c = ours[v]["compile_s"]
    print(f"  {v}: step input {list(data['images'].shape)} uint8, model input "
          f"{ours[v]['model_input'][0]} {ours[v]['model_input'][1]}, {ours[v]['params']:,} params; init "
          f"{ours[v]['init_s']:.1f} s, compile train {c['train']:.1f} s, inference {c['infer']:.1f} s",
          flush=True)
  for _ in range(args.warmup):
    for o in ours.values():
      o["train"]()
      o["infer"]()
  load_before = os.getloadavg()
  times = {v: {"train": [], "infer": []} for v in ours}
  for _ in range(args.repeats):
    for v, o in ours.items():
      for kind in ("train", "infer"):
        t = time.perf_counter()
        o[kind]()
        times[v][kind].append(time.perf_counter() - t)
  load_after = os.getloadavg()
  print(f"  ours timed (load {load_before[0]:.1f} -> {load_after[0]:.1f})", flush=True)

  peer = {"error": peer_reason} if peer_reason else run_peer(args, args.peer_python)
  peer_ok = "error" not in peer
  print(f"  peer: {'done' if peer_ok else 'not measured: ' + peer['error']}", flush=True)

  rows = []
  for v, o in ours.items():
    med = {k: statistics.median(t) for k, t in times[v].items()}
    st = o["state"]
    losses = {k: float(x) for k, x in st["losses"].items()}
    rows.append({"variant": v, "channels": o["channels"],
                 "step_input": [list(data["images"].shape), "uint8"], "model_input": o["model_input"],
                 "params": o["params"], "input_bytes_per_image": input_bytes(args.image, o["channels"]),
                 "transform_in_step": ("per-channel pixel normalisation" if not o["channels"] else
                                       "2x bilinear upscale, 8x8 block DCT (YCbCr 4:4:4), channel "
                                       "selection, per-channel normalisation"),
                 "init_s": o["init_s"], "compile_s": o["compile_s"], "times_s": times[v],
                 "median_s": med, "images_per_s": {k: args.batch / s for k, s in med.items()},
                 "losses_last": losses, "losses_finite": bool(np.all(np.isfinite(list(losses.values())))),
                 "valid_detections_per_image_last":
                     np.asarray(st["detections"]["valid"]).sum(-1).tolist()})
  by = {r["variant"]: r for r in rows}

  # ---- table 1: ours spatial vs torchvision
  ref = by.get("spatial") or rows[0]
  label = f"ours {ref['variant']}"
  print(f"\n{args.image}x{args.image}, batch {args.batch}: images/s (ms per call), median of "
        f"{args.repeats}{' [smoke: ratios mean nothing]' if args.smoke else ''}\n")
  print(f"| measure | {label} | torchvision maskrcnn_resnet50_fpn | ours / torchvision |\n|---|---|---|---|")
  ratios = {}
  for kind, title in (("train", "train step images/s"), ("infer", "inference images/s")):
    if peer_ok:
      ratios[kind] = peer["median_s"][kind] / ref["median_s"][kind]
      print(f"| {title} | {fmt_rate(args.batch, ref['median_s'][kind])} | "
            f"{fmt_rate(args.batch, peer['median_s'][kind])} | {ratios[kind]:.2f}x |")
    else:
      print(f"| {title} | {fmt_rate(args.batch, ref['median_s'][kind])} | not measured: "
            f"{peer['error']} | — |")
  if peer_ok:
    print(f"| compile s (train, inference); torchvision: first call | {ref['compile_s']['train']:.1f}, "
          f"{ref['compile_s']['infer']:.1f} | {peer['first_call_s']['train']:.1f}, "
          f"{peer['first_call_s']['infer']:.1f} | — |")
    print(f"| valid detections / image (last inference) | {ref['valid_detections_per_image_last']} "
          f"(of {settings['max_detections']} computed) | {peer['detections_per_image_last']} | — |")
  else:
    print(f"| compile s (train, inference) | {ref['compile_s']['train']:.1f}, "
          f"{ref['compile_s']['infer']:.1f} | — | — |")

  # ---- table 2: frequency input vs spatial (ours)
  print(f"\n| ours | model input | input bytes/image | computed from | train images/s | vs {ref['variant']} "
        f"| inference images/s | vs {ref['variant']} | compile s (train, inference) |\n"
        "|---|---|---|---|---|---|---|---|---|")
  for r in rows:
    b = r["input_bytes_per_image"]
    shape = ("x".join(str(d) for d in r["model_input"][0][1:]) if r["channels"]
             else f"{args.image}x{args.image}x3")  # spatial: the uint8 pixels the step takes
    src = (f"{b['computed_from_pixels']:,} B uint8 pixels (DCT in the step, via "
           f"{b['device_upscaled_float32']:,} B float32 2x image)" if r["channels"] else "—")
    print(f"| {r['variant']} | {shape} {b['model_input_dtype']} | {b['model_input']:,} | {src} | "
          f"{fmt_rate(args.batch, r['median_s']['train'])} | "
          f"{r['images_per_s']['train'] / ref['images_per_s']['train']:.2f}x | "
          f"{fmt_rate(args.batch, r['median_s']['infer'])} | "
          f"{r['images_per_s']['infer'] / ref['images_per_s']['infer']:.2f}x | "
          f"{r['compile_s']['train']:.1f}, {r['compile_s']['infer']:.1f} |")
  bad = [r["variant"] for r in rows if not r["losses_finite"]]
  if bad:
    print(f"\nwarning: non-finite losses after the timed steps in {bad}")

  if out:
    from freqnoise.workdir import write_atomically
    record = {"date_utc": time.strftime("%Y-%m-%dT%H:%MZ", time.gmtime()), "command": " ".join(sys.argv),
              "smoke": args.smoke, **mach,
              "settings": {"image": args.image, "batch": args.batch, "instances": args.instances,
                           "mask_size": args.mask_size, "repeats": args.repeats, "warmup": args.warmup,
                           "peer_threads": args.threads, "lr": args.lr, "seed": args.seed,
                           "num_classes": NUM_CLASSES, "model": settings, "variants": variants,
                           "peer_python": args.peer_python},
              "load_before": load_before, "load_after": load_after, "rows": rows, "peer": peer,
              "ratio_ours_spatial_over_torchvision_images_per_s": ratios or None,
              "notes": "DCT variants: the transform runs inside the jitted step and is timed; "
                       "torchvision: eager, 'first_call_s' stands for compile."}
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    write_atomically(out, json.dumps(record, indent=1) + "\n")
    print(f"raw figures: {out}")


if __name__ == "__main__":
  main()
