"""Our FGSM and PGD (L∞, L2, no random start) against foolbox 3.3.4's outputs stored in
tests/robust/golden/foolbox_attacks.npz (written by tests/robust/golden/make_golden.py), so the
peer check runs where foolbox is not installed; tests/robust/test_attacks.py runs foolbox live."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from freqnoise.robust.attacks import AttackConfig, attack
from tests.robust.golden.make_golden import ATTACKS, BOUNDS, PATH, inputs, logits


@pytest.fixture(scope="module")
def golden():
  with np.load(PATH, allow_pickle=False) as data:
    return {k: data[k] for k in data.files}


def test_the_golden_file_is_foolbox_3_3_4_on_the_scripts_inputs(golden):
  assert str(golden["foolbox_version"]) == "3.3.4"
  assert set(ATTACKS) <= set(golden)
  for name, value in inputs().items():  # the file is the script's, not a stale one
    np.testing.assert_array_equal(golden[name], value)


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_equals_foolbox_golden(golden, name):
  method, norm = ATTACKS[name][:2]
  eps = float(golden[f"{name}_epsilon"])
  config = AttackConfig(method=method, norm=norm, epsilon=eps, bounds=BOUNDS, random_start=False,
                        step_size=float(golden[f"{name}_step_size"]),
                        steps=int(golden[f"{name}_steps"]))
  params = {k: jnp.asarray(golden[k]) for k in ("w1", "b1", "w2", "b2")}
  x, theirs = golden["x"], golden[name]
  ours = np.asarray(jax.jit(lambda x, y: attack(lambda z, key=None: logits(params, z), x, y,
                                                config, jax.random.key(0)))(x, golden["y"]))
  if norm == "linf":  # the same floating-point operations: bit for bit
    np.testing.assert_array_equal(ours, theirs)
  else:  # the per-example norms are summed in another order: an ulp or so
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-6)
  moved = np.abs(theirs - x).reshape(len(x), -1)
  assert moved.max() > eps / 2  # the attack moved every example visibly, not a no-op
