"""Writes the golden file `foolbox_attacks.npz`: foolbox 3.3.4's FGSM and PGD (L∞ and L2) on a
fixed small model and fixed inputs, so `tests/robust/test_attacks_golden.py` checks our attacks
against foolbox without importing it (foolbox is a test extra that a plain install lacks).

    python tests/robust/golden/make_golden.py    # needs foolbox (pip install -e .[test])

Only attacks without a random start are stored: foolbox draws its start from eagerpy's global key,
which nothing here can reproduce. The file holds the inputs `x` [6, 4, 4, 1] in [0, 1] and labels
`y`, the model's weights (`w1`, `b1`, `w2`, `b2`: `logits`), foolbox's version, and per attack
`<name>` = x_adv with `<name>_epsilon`, `<name>_step_size`, `<name>_steps`. It is written byte for
byte deterministically (sorted uncompressed zip members with a fixed date), so running the script
again leaves it unchanged unless foolbox's outputs change.
"""

from __future__ import annotations

import io
import pathlib
import warnings
import zipfile

import jax.numpy as jnp
import numpy as np

PATH = pathlib.Path(__file__).resolve().parent / "foolbox_attacks.npz"
BOUNDS = (0.0, 1.0)
# name: (method, norm, epsilon, step_size, steps); FGSM is one step of size ε (step_size unused).
ATTACKS = {
    "fgsm_linf": ("fgsm", "linf", 0.1, 0.1, 1),
    "fgsm_l2": ("fgsm", "l2", 0.6, 0.6, 1),
    "pgd_linf": ("pgd", "linf", 0.1, 0.025, 10),
    "pgd_l2": ("pgd", "l2", 0.6, 0.15, 10),
}


def logits(params: dict, x: jnp.ndarray) -> jnp.ndarray:
  """The fixed model: x [B, 4, 4, 1] -> tanh(x·w1 + b1)·w2 + b2, logits [B, 3]."""
  h = jnp.tanh(x.reshape(x.shape[0], -1) @ params["w1"] + params["b1"])
  return h @ params["w2"] + params["b2"]


def inputs() -> dict[str, np.ndarray]:
  """x (some pixels on the bounds, so clipping is exercised), y and the model's weights."""
  gen = np.random.default_rng(2024)
  x = gen.uniform(0.0, 1.0, (6, 4, 4, 1)).astype(np.float32)
  x[:, 0, 0, 0], x[:, 1, 1, 0] = 0.0, 1.0
  return {"x": x, "y": gen.integers(0, 3, 6).astype(np.int32),
          "w1": (gen.standard_normal((16, 16)) / 2).astype(np.float32),
          "b1": (gen.standard_normal(16) / 4).astype(np.float32),
          "w2": gen.standard_normal((16, 3)).astype(np.float32),
          "b2": (gen.standard_normal(3) / 4).astype(np.float32)}


def foolbox_outputs(data: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
  """foolbox's x_adv of every attack in ATTACKS, with the attack's settings and foolbox's version."""
  import jax
  with warnings.catch_warnings():  # foolbox 3.3.4 imports from scipy.ndimage.filters (deprecated)
    warnings.simplefilter("ignore", DeprecationWarning)
    import foolbox
  params = {k: jnp.asarray(data[k]) for k in ("w1", "b1", "w2", "b2")}
  model = foolbox.JAXModel(jax.jit(lambda x: logits(params, x)), bounds=BOUNDS)
  x, criterion = jnp.asarray(data["x"]), foolbox.criteria.Misclassification(jnp.asarray(data["y"]))
  fa = foolbox.attacks
  out = {"foolbox_version": np.array(foolbox.__version__)}
  for name, (method, norm, eps, step, steps) in ATTACKS.items():
    if method == "fgsm":
      peer = (fa.FGSM if norm == "linf" else fa.L2FastGradientAttack)()
    else:
      peer = (fa.LinfPGD if norm == "linf" else fa.L2PGD)(abs_stepsize=step, steps=steps,
                                                          random_start=False)
    out[name] = np.asarray(peer.run(model, x, criterion, epsilon=eps), np.float32)
    out.update({f"{name}_epsilon": np.float64(eps), f"{name}_step_size": np.float64(step),
                f"{name}_steps": np.int32(steps)})
  return out


def write_npz(path: pathlib.Path, arrays: dict[str, np.ndarray]) -> None:
  """np.savez's format, but byte-for-byte reproducible (np.savez stamps each member's time)."""
  with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
    for name in sorted(arrays):
      buffer = io.BytesIO()
      np.lib.format.write_array(buffer, np.asarray(arrays[name]), allow_pickle=False)
      info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
      info.external_attr = 0o644 << 16
      z.writestr(info, buffer.getvalue())


def main() -> None:
  data = inputs()
  write_npz(PATH, {**data, **foolbox_outputs(data)})
  print(f"wrote {PATH}")


if __name__ == "__main__":
  main()
