"""Adversarial examples in a run: PGD adversarial training (`config.adversarial`) and crafting a
stored set of adversarial examples from a trained model (the black-box transfer protocol).

    config.adversarial.epsilon = 0.3     # Madry et al.'s MNIST training: PGD-40, step 0.01
    config.adversarial.steps = 40        # (ε and step in units of the pixel range, see below)

Attacks act on what `Experiment.predict` receives: raw pixels, before the DCT / normalisation
inside it. ε and the step size are given as fractions of the pixel range, as papers state them
(MNIST ε = 0.3, CIFAR-10 ε = 8/255), and scaled by `pixel_scale` (255 for this repository's uint8
images; 1 for inputs already in [0, 1]); the valid range is [0, pixel_scale].

Training: at every step the first `round(fraction · batch)` rows of the batch are replaced by
adversarial examples of the model the step trains (with `config.quant.bits_schedule`: at its
stage's bits) in evaluation mode (no dropout, running batch statistics, the step's training noise,
EOT over `eot_draws` noise draws), crafted with the step's own 'attack' key; the loss is the usual
one on the mixed batch (Madry et al. 2018 use fraction 1). The step costs about `steps + 1`
forward/backward passes, which the progress line's steps/s shows.
"""

from __future__ import annotations

import json
import math
import os
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from freqnoise import rng
from freqnoise.robust.attacks import AttackConfig, attack

# Every field of `config.adversarial` (configs/common.py holds them with these values): one place.
DEFAULTS = {
    "epsilon": 0.0,        # radius of the threat ball, fraction of the pixel range (0 = off)
    "method": "pgd",       # pgd | fgsm
    "norm": "linf",        # linf | l2
    "step_size": 0.01,     # PGD step, fraction of the pixel range
    "steps": 40,           # PGD steps
    # None = the method decides, as foolbox and AttackConfig do: PGD starts at a uniform point of
    # the ball (Madry et al.), FGSM at the clean image (Goodfellow et al.). A random start weakens
    # a one-step attack, so FGSM never gets one unless asked for (fast adversarial training).
    "random_start": None,
    "eot_draws": 1,        # noise draws averaged per gradient (noisy models; 1 = one draw)
    "fraction": 1.0,       # fraction of each training batch replaced by adversarial examples
    "pixel_scale": 255.0,  # the raw value of a full-range pixel (255: uint8 images; 1: [0, 1])
}
ATTACK_FIELDS = ("epsilon", "method", "norm", "step_size", "steps", "random_start", "eot_draws",
                 "pixel_scale")


def attack_config(block: dict, where: str = "config.adversarial") -> AttackConfig:
  """The AttackConfig of a block holding ATTACK_FIELDS (ε and step in pixel-range fractions).
  Errors name the block's field and the value as the block holds it (never the scaled one): ε must
  lie in [0, 1] and a PGD step in (0, 1], fractions of the range (ε = 8 meant 8/255 = 0.0314)."""
  field = lambda name: f"{where}.{name}" if where else name
  scale = block["pixel_scale"]
  if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not scale > 0:
    raise ValueError(f"{field('pixel_scale')} must be a positive number, got {scale!r}")
  eps, step = block["epsilon"], block["step_size"]
  for name, value in (("epsilon", eps), ("step_size", step)):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
      raise ValueError(f"{field(name)} must be a finite number, got {value!r}")
  pgd = block["method"] == "pgd"  # (FGSM takes no step_size)
  for name, value, interval, bad in (("epsilon", eps, "[0, 1]", not 0 <= eps <= 1),
                                     ("step_size", step, "(0, 1]", pgd and not 0 < step <= 1)):
    if bad:
      raise ValueError(f"{field(name)}={value!r} must be in {interval}: a fraction of the pixel "
                       f"range (MNIST's 0.3, CIFAR-10's 8/255 = {8 / 255:.4f}), scaled by "
                       f"pixel_scale={scale}")
  try:
    return AttackConfig(method=block["method"], norm=block["norm"], epsilon=eps * scale,
                        step_size=step * scale, steps=block["steps"],
                        random_start=block["random_start"], eot_draws=block["eot_draws"],
                        bounds=(0.0, float(scale)))
  except (TypeError, ValueError) as e:
    raise type(e)(f"{where}: {e} (epsilon and step_size are fractions of the pixel range, "
                  f"scaled by pixel_scale={scale})") from None


def attack_record(block: dict) -> dict:
  """The attack fields of `block` as a result file records them: random_start as the attack
  used it (None resolved by the method), so a reader never has to know the default."""
  return {**{k: block[k] for k in ATTACK_FIELDS},
          "random_start": attack_config(block).random_start}


def training_settings(config: ml_collections.ConfigDict) -> dict | None:
  """`config.adversarial` with its defaults, checked; None when adversarial training is off."""
  block = config.get("adversarial")
  if block is None:
    return None
  block = dict(block.to_dict() if hasattr(block, "to_dict") else block)
  unknown = sorted(set(block) - set(DEFAULTS))
  if unknown:
    raise ValueError(f"config.adversarial has unknown field(s) {unknown}; known: "
                     f"{sorted(DEFAULTS)}")
  block = {**DEFAULTS, **block}
  attack_config(block)  # every attack field checked, also when off
  fraction = block["fraction"]
  if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction <= 1:
    raise ValueError(f"config.adversarial.fraction must be in (0, 1], got {fraction!r}")
  if block["epsilon"] <= 0:
    return None
  check_pixel_input(config, f"config.adversarial (epsilon={block['epsilon']})")
  return block


def check_pixel_input(config: ml_collections.ConfigDict, what: str) -> None:
  """Attacks perturb pixels and clip them to [0, pixel_scale] (`attack_config`'s bounds); JPEG
  DCT coefficients (`config.data.jpeg_coefficients`) are no pixels (signed, up to ±1024·q), so a
  run that reads them cannot be attacked: a ValueError naming `what` and that field."""
  if (config.get("data") or {}).get("jpeg_coefficients", False):
    raise ValueError(f"{what} perturbs pixels and clips them to [0, pixel_scale], but "
                     "config.data.jpeg_coefficients=True feeds the model JPEG DCT coefficients, "
                     "which that would clip: attack a run on decoded pixels "
                     "(config.data.jpeg_coefficients=False; config.input.name='dct' computes the "
                     "same DCT from them inside predict, after the attack)")


def unroll(config: AttackConfig) -> bool | int:
  """The attack loop's `unroll`: on CPU, where XLA runs convolutions inside a while loop about 2x
  slower (jax-ml/jax#12868; experiments/benchmarks/bench_attacks.py), short attacks (steps x EOT
  draws <= 16) are unrolled; longer ones stay a loop, whose memory does not grow with the steps
  (PGD-40 with 4 EOT draws on 500 MNIST images unrolled asked for 43 GB)."""
  short = config.num_steps * config.eot_draws <= 16
  return True if jax.default_backend() == "cpu" and short else 1


def adversarial_rows(batch_size: int, fraction: float) -> int:
  """How many rows of a training batch are adversarial (at least one)."""
  return max(1, min(batch_size, round(fraction * batch_size)))


def training_inputs(experiment, settings: dict | None, variables: dict, batch: dict, noise,
                    step_key: jax.Array, model=None) -> jax.Array:
  """The train step's model input: `batch[experiment.input_key]`, or, with `settings`
  (`training_settings`: adversarial training on), that with its first rows replaced by
  adversarial examples (`perturb_batch`) of the model the step trains, `model` (a bits-schedule
  stage's; None: the configured one), crafted with the step's 'attack' key (Madry et al.)."""
  x = batch[experiment.input_key]
  if settings is None:
    return x
  return perturb_batch(experiment, variables, x, batch[experiment.label_key], noise,
                       rng.named_key(step_key, "attack"), settings, model)


def perturb_batch(experiment, variables: dict, x: jax.Array, labels: jax.Array, noise,
                  key: jax.Array, settings: dict, model=None) -> jax.Array:
  """`x` (float32) with its first rows replaced by adversarial examples of the evaluation-mode
  `model` (None: the experiment's; else e.g. a bits-schedule stage's, `Experiment.forward`) under
  `noise` (traced inside the train step; nothing here is differentiated further)."""
  rows = adversarial_rows(x.shape[0], settings["fraction"])
  config = attack_config(settings)

  def logits_fn(inputs, k):
    return experiment.forward(variables, inputs, train=False, noise=noise,
                              rngs=rng.stream_keys(k), model=model)

  x = x.astype(jnp.float32)
  x_adv = attack(logits_fn, x[:rows], labels[:rows], config, key, unroll=unroll(config))
  return jax.lax.stop_gradient(jnp.concatenate([x_adv, x[rows:]]))


# ----------------------------------------------------------------------------- stored sets
def craft(logits_fn_of, variables: Any, images: np.ndarray, labels: np.ndarray,
          config: AttackConfig, key: jax.Array, batch_size: int,
          progress: str | None = None) -> np.ndarray:
  """Adversarial examples [N, ...] float32 of `images` under `config`, in batches (the last one
  padded by repeating rows, then cut), batch b with key `fold_in(key, b)`, one compilation.

  `logits_fn_of(variables)` builds the attacked `logits_fn` from the traced variables.
  """
  n = len(images)
  if n == 0 or len(labels) != n:
    raise ValueError(f"need labels [N] matching images [N, ...], got {np.shape(labels)} and "
                     f"{np.shape(images)}")

  @jax.jit
  def one(variables, x, y, k):
    return attack(logits_fn_of(variables), x, y, config, k, unroll=unroll(config))

  out = np.empty(images.shape, np.float32)
  batches = math.ceil(n / batch_size)
  for b in range(batches):
    idx = np.arange(b * batch_size, (b + 1) * batch_size) % n
    x_adv = one(variables, jnp.asarray(images[idx]), jnp.asarray(labels[idx]),
                jax.random.fold_in(key, b))
    real = min(batch_size, n - b * batch_size)
    out[b * batch_size: b * batch_size + real] = np.asarray(x_adv)[:real]
    if progress and (b + 1 == batches or (b + 1) % max(1, batches // 5) == 0):
      print(f"  {progress}: batch {b + 1}/{batches}", flush=True)
  return out


def save_set(path: str, x_adv: np.ndarray, labels: np.ndarray, indices: np.ndarray,
             provenance: dict) -> None:
  """Writes a crafted set (`path`: npz with x_adv, label, index) and `path + '.json'` (its
  provenance), each atomically, from process 0."""
  from freqnoise.workdir import write_atomically
  if jax.process_index() != 0:
    return
  write_atomically(path, lambda f: np.savez(f, x_adv=x_adv, label=labels, index=indices))
  write_atomically(path + ".json", json.dumps(provenance, indent=2, default=str))


def _npz_shapes(path: str) -> dict[str, tuple[int, ...]]:
  """{array name: shape} of an npz file, read from its members' headers (no array is loaded)."""
  import zipfile
  shapes = {}
  try:
    with zipfile.ZipFile(path) as z:
      for member in z.namelist():
        with z.open(member) as f:
          version = np.lib.format.read_magic(f)
          read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                  else np.lib.format.read_array_header_2_0)
          shapes[member.removesuffix(".npy")] = tuple(read(f)[0])
  except (zipfile.BadZipFile, ValueError, OSError) as e:
    raise ValueError(f"{path} is not an adversarial set (npz) that can be read: {e}") from None
  return shapes


def _data_name(source: str) -> tuple[str, str]:
  """(kind, dataset folder or name) of a `config.data.source`: the same data under another path
  (`idx:../shared/data/mnist`, `idx:/data/mnist`) gives the same pair."""
  kind, _, arg = source.partition(":")
  return kind, os.path.basename(os.path.normpath(arg)) if arg else ""


def check_stored_set(config: ml_collections.ConfigDict, path: str) -> None:
  """A crafted set against the run that will read it, before any data is read or any step trained
  (the set is read only after training): its arrays (from the npz headers: x_adv [N, ...], label
  and index [N]), the data its provenance names against config.data.source (by kind and dataset
  name), its image size against config.data.image_size when set, and its indices against
  config.data.limit_<split>. A ValueError naming the file and what differs."""
  path = os.path.expanduser(path)
  shapes = _npz_shapes(path)
  missing = {"x_adv", "label", "index"} - set(shapes)
  if missing:
    raise ValueError(f"{path} is not an adversarial set: it lacks {sorted(missing)}")
  n = shapes["x_adv"][0] if shapes["x_adv"] else -1
  if shapes["label"] != (n,) or shapes["index"] != (n,):
    raise ValueError(f"{path}: x_adv {shapes['x_adv']}, label {shapes['label']} and index "
                     f"{shapes['index']} do not hold the same N examples")
  provenance = {}
  if os.path.isfile(path + ".json"):
    with open(path + ".json") as f:
      try:
        provenance = json.load(f)
      except json.JSONDecodeError as e:
        raise ValueError(f"{path}.json (the set's provenance) is not valid JSON: {e}") from None
  data = config.data
  made_on = provenance.get("data")
  if made_on and _data_name(made_on) != _data_name(data.source):
    raise ValueError(f"{path} was crafted on data {made_on!r} (by {provenance.get('workdir')}), "
                     f"but this run reads config.data.source={data.source!r}: craft the set on a "
                     "substitute trained on this run's data")
  size = data.get("image_size", 0)
  if size and len(shapes["x_adv"]) == 4 and shapes["x_adv"][1:3] != (size, size):
    raise ValueError(f"{path}: examples of shape {shapes['x_adv'][1:]}, but this run resizes its "
                     f"images to {size}x{size} (config.data.image_size)")
  split = provenance.get("split", "test")
  limit = data.get(f"limit_{split}", 0)
  if limit and n > 0:  # the kept examples are a sample drawn with the seed: the same only if both
    with np.load(path) as z:  # runs drew it alike
      top = int(z["index"].max())
    seed = provenance.get("seed", config.seed)
    if top >= limit or seed != config.seed:
      raise ValueError(f"{path} indexes examples of the {split} split up to {top}, drawn under "
                       f"seed {seed}, but this run keeps a sample of {limit} "
                       f"(config.data.limit_{split}) drawn under seed {config.seed}: run with the "
                       "substitute's limit and seed, or craft the set again")


def load_set(path: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
  """(x_adv, labels, indices into the split, provenance) of a set written by `save_set`."""
  path = os.path.expanduser(path)
  if not os.path.isfile(path):
    raise FileNotFoundError(f"adversarial set {path} not found: craft it first with an evaluator "
                            "of type 'craft' on the substitute run")
  with np.load(path) as z:
    missing = {"x_adv", "label", "index"} - set(z.files)
    if missing:
      raise ValueError(f"{path} is not an adversarial set: it lacks {sorted(missing)}")
    x_adv, labels, indices = z["x_adv"], z["label"], z["index"]
  provenance = {}
  if os.path.isfile(path + ".json"):
    with open(path + ".json") as f:
      provenance = json.load(f)
  return x_adv, labels, indices, provenance
