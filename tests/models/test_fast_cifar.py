"""The fast CIFAR-10 network: its whitening init against a NumPy reference, exact parameter count,
Dirac init, the BatchNorm shift's reparametrisation, the frozen whitening kernel, analog
products."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from freqnoise.analog.noise import NoiseConfig
from freqnoise.models import build_model
from freqnoise.models.fast_cifar import dirac_uniform, whitening_kernel


def reference_whitening(images: np.ndarray, size: int, eps: float):
  """airbench's recipe by loops: every size x size patch (row, column, channel order), their
  uncentred covariance, its eigenpairs by decreasing eigenvalue, eigenvector / sqrt(value + eps)."""
  n, h, w, c = images.shape
  patches = [images[i, y:y + size, x:x + size].reshape(-1).astype(np.float64)
             for i in range(n) for y in range(h - size + 1) for x in range(w - size + 1)]
  p = np.stack(patches)
  values, vectors = np.linalg.eigh(p.T @ p / len(p))
  order = np.argsort(values)[::-1]
  return values[order], vectors[:, order] / np.sqrt(values[order] + eps)


@pytest.fixture(scope="module")
def images():
  rng = np.random.default_rng(0)
  base = rng.normal(size=(6, 9, 9, 3))
  return (base + 0.8 * np.roll(base, 1, axis=2) + 0.5 * base[..., :1]).astype(np.float32)


def test_whitening_kernel_matches_numpy_reference(images):
  kernel = whitening_kernel(images, size=2, eps=5e-4)
  assert kernel.shape == (2, 2, 3, 24) and kernel.dtype == np.float32
  values, ref = reference_whitening(images, 2, 5e-4)
  flat = kernel.reshape(12, 24)
  for j in range(12):  # an eigenvector's sign is arbitrary: filter j is ±ref_j, filter j+12 -ref_j
    sign = np.sign(flat[:, j] @ ref[:, j])
    np.testing.assert_allclose(flat[:, j], sign * ref[:, j], rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(flat[:, 12 + j], -flat[:, j])
  # Whitened: the filters' responses to the patches have covariance diag(λ / (λ + eps)).
  out = jax.lax.conv_general_dilated(jnp.asarray(images), jnp.asarray(kernel), (1, 1), "VALID",
                                     dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                     precision="highest")
  r = np.asarray(out, np.float64).reshape(-1, 24)[:, :12]
  np.testing.assert_allclose(r.T @ r / len(r), np.diag(values / (values + 5e-4)), atol=2e-5)


def test_whitening_kernel_rejects_small_or_flat_input():
  with pytest.raises(ValueError, match=r"at least 2x2 pixels, got shape \(4, 1, 5, 3\)"):
    whitening_kernel(np.zeros((4, 1, 5, 3), np.float32))


def test_parameter_count_and_output():
  # whiten 2*2*3*24 + 24; groups: 3x3 convs 24->64->64, 64->256->256, 256->256->256 and two
  # BatchNorm shifts each; classifier 256*10 without bias.
  expected = (288 + 24 + 9 * (24 * 64 + 64 * 64 + 64 * 256 + 256 * 256 + 2 * 256 * 256)
              + 2 * (64 + 256 + 256) + 2560)
  assert expected == 1_971_640
  model = build_model({"name": "fast_cifar"}, num_classes=10)
  shapes = jax.eval_shape(lambda: model.init({"params": jax.random.key(0)},
                                             jnp.zeros((1, 32, 32, 3)), train=False))
  assert sum(np.prod(x.shape) for x in jax.tree.leaves(shapes["params"])) == expected
  with pytest.raises(ValueError, match=r"at least 16x16 pixels, got shape \(1, 8, 8, 3\)"):
    model.init({"params": jax.random.key(0)}, jnp.zeros((1, 8, 8, 3)), train=False)


def test_dirac_init_passes_the_first_channels_through():
  kernel = np.asarray(jax.jit(dirac_uniform, static_argnums=1)(jax.random.key(0), (3, 3, 4, 6)))
  identity = np.zeros((3, 3, 4, 4), np.float32)
  identity[1, 1] = np.eye(4)  # filter o < 4: 1 at the centre tap of input channel o
  np.testing.assert_array_equal(kernel[..., :4], identity)
  rest = kernel[..., 4:]  # PyTorch's default: U(±1/sqrt(fan_in)), fan_in = 36
  assert np.abs(rest).max() <= 1 / 6 and rest.std() > 0.05


def tiny_model(**kw):
  return build_model({"name": "fast_cifar", "widths": (4, 8, 8), **kw}, num_classes=3)


@pytest.fixture(scope="module")
def tiny():
  """(model, variables, x): a narrow network initialised once (one compile) for the tests below."""
  model = tiny_model()
  x = jax.random.normal(jax.random.key(0), (4, 16, 16, 3))
  variables = jax.jit(lambda: model.init({"params": jax.random.key(1)}, x, train=False))()
  return model, variables, x


def test_batchnorm_shift_moves_64_times_faster_under_sgd(tiny):
  """shift = 8 * param: d loss / d param = 8 * d loss / d shift, so one SGD step moves the
  shift by 64 x lr x its gradient (airbench's bias_scaler)."""
  model, variables, x = tiny
  loss = lambda p: model.apply({**variables, "params": p}, x, train=True,
                               mutable=["batch_stats"])[0].sum()

  @jax.jit
  def both(params):
    shift = 8 * params["group0_norm0"]["bias"]
    of_shift = lambda b: loss({**params, "group0_norm0": {"bias": b / 8}})
    return jax.grad(loss)(params)["group0_norm0"]["bias"], jax.grad(of_shift)(shift)

  param_grad, shift_grad = both(variables["params"])
  np.testing.assert_allclose(param_grad, 8 * shift_grad, rtol=1e-5, atol=1e-7)
  assert np.abs(np.asarray(shift_grad)).max() > 0


def test_frozen_mask_marks_the_whitening_kernel_only(tiny):
  model, variables, _ = tiny
  params = variables["params"]
  mask = model.frozen_mask(params)
  assert mask["whiten"] == {"kernel": True, "bias": False}
  assert sum(jax.tree.leaves(mask)) == 1
  assert not any(jax.tree.leaves(tiny_model(train_whiten=True).frozen_mask(params)))


def test_init_from_data_sets_the_whitening_kernel(tiny, images):
  model = tiny[0].clone(whiten_examples=4)
  params = tiny[1]["params"]
  asked = []
  new = model.init_from_data(params, lambda n: asked.append(n) or images[:n])
  assert asked == [4]
  np.testing.assert_array_equal(new["whiten"]["kernel"], whitening_kernel(images[:4]))
  np.testing.assert_array_equal(new["whiten"]["bias"], params["whiten"]["bias"])
  assert new["group0_conv0"] is params["group0_conv0"]


def test_every_product_is_analog(tiny):
  """Output noise on every product changes the logits; the products are the 8 layers, and with
  layers='all_but_first_last' the six middle ones alone are noisy (traced, not compiled)."""
  model, variables, x = tiny
  run = lambda noise: model.clone(noise=noise).apply(variables, x, train=False,
                                                     rngs={"noise": jax.random.key(2)})
  clean, noisy = jax.jit(lambda: (run(None), run(NoiseConfig(snr_db=0.0))))()
  assert np.abs(np.asarray(noisy - clean)).max() > 1e-3

  def noisy_products(layers):
    calls = []

    def count(next_fun, args, kwargs, context):
      if context.method_name == "__call__" and type(context.module).__name__ == "AnalogProduct":
        calls.append("/".join(context.module.scope.path))
      return next_fun(*args, **kwargs)

    with nn.intercept_methods(count):
      jax.eval_shape(lambda: run(NoiseConfig(snr_db=0.0, layers=layers)))
    return calls

  assert len(noisy_products("all")) == 8
  middle = noisy_products("all_but_first_last")
  assert len(middle) == 6 and not any("whiten" in p or "classifier" in p for p in middle)
