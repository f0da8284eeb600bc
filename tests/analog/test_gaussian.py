"""freqnoise.analog.gaussian: the N(0, 1) draw is the documented 2^16-level distribution, and a
function of the key alone (1 or 4 devices, jit or eager, sharded or replicated, vmap or loop)."""

import json
import math
import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.integrate
import scipy.special
import scipy.stats
from hypothesis import given, settings
from hypothesis import strategies as st
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from freqnoise.analog import gaussian, noise

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
N = 1 << 20  # samples for the distribution tests
KEY = jax.random.PRNGKey(20261201)


@pytest.fixture(scope="module")
def sample() -> np.ndarray:
  z = np.asarray(gaussian.standard_normal(KEY, (1024, 1024)), np.float64).ravel()
  assert z.size == N
  return z


# --- the table: exactly the documented distribution --------------------------------------------

def test_table_is_the_conditional_mean_quantisation():
  t = gaussian.table()
  assert t.dtype == np.float32 and t.shape == (1 << 16,)
  assert np.all(np.diff(t) > 0)
  np.testing.assert_array_equal(t, -t[::-1])  # exactly symmetric
  n = 1 << 16
  for k in (0, 1, 2, 100, 12345, 32767, 32768, 40000, 65534, 65535):
    a, b = scipy.special.ndtri(k / n), scipy.special.ndtri((k + 1) / n)
    mean, _ = scipy.integrate.quad(lambda z: z * scipy.stats.norm.pdf(z), a, b, epsabs=1e-14)
    np.testing.assert_allclose(t[k], mean * n, rtol=2e-7, atol=1e-9, err_msg=f"k={k}")


def test_tail_bound_is_the_exact_max_attainable():
  t = gaussian.table()
  # Computed again along another path: E[Z | Z < Phi^-1(2^-16)] = -phi(Phi^-1(2^-16)) / 2^-16.
  bound = np.float32(scipy.stats.norm.pdf(scipy.stats.norm.ppf(2.0**-16)) * 2.0**16)
  assert gaussian.TAIL_BOUND == float(bound) == float(np.abs(t).max()) == -float(t[0]) == float(t[-1])
  assert gaussian.TAIL_BOUND == pytest.approx(4.3875113, abs=1e-7)  # the module docstring's value
  assert f"{gaussian.TAIL_BOUND:.7f}" in gaussian.__doc__
  assert gaussian.table_moments()["tail_bound"] == gaussian.TAIL_BOUND
  # A draw reaches it: the 16-bit uniforms take the values 0 and 65535.
  u = np.asarray(gaussian.uniform16(KEY, (1024, 1024)))
  z = np.asarray(gaussian.standard_normal(KEY, (1024, 1024)))
  assert u.min() == 0 and u.max() == 65535
  assert np.abs(z).max() == np.float32(gaussian.TAIL_BOUND)


def test_table_moments_are_those_of_n01_up_to_the_documented_error():
  m = gaussian.table_moments()
  assert m["mean"] == 0.0 and m["m3"] == 0.0  # exact symmetry
  assert abs(m["var"] - 1) < 2e-6
  assert abs(m["m4"] - 3) < 2.5e-4


def test_draw_is_the_table_at_the_uniforms():
  for shape in [(3, 7), (2, 3, 9), (5,), ()]:
    u = np.asarray(gaussian.uniform16(KEY, shape))
    z = np.asarray(gaussian.standard_normal(KEY, shape))
    assert u.dtype == np.uint32 and u.shape == shape and np.all(u < 65536)
    np.testing.assert_array_equal(z, gaussian.table()[u])


# --- the sample: statistics of the exact discrete distribution ---------------------------------

def test_moments_against_closed_form_standard_errors(sample):
  m = gaussian.table_moments()
  var, m4 = m["var"], m["m4"]
  n = sample.size
  c = sample - sample.mean()
  s2 = np.mean(c**2)
  skew = np.mean(c**3) / s2**1.5
  kurt = np.mean(c**4) / s2**2
  # Standard errors of the sample mean, variance, skewness and kurtosis (normal-theory for the
  # last two: 6/n and 24/n; the discrete law's moments differ from N(0, 1)'s by < 3e-4).
  assert abs(sample.mean()) < 5 * math.sqrt(var / n)
  assert abs(s2 - var) < 5 * math.sqrt((m4 - var**2) / n)
  assert abs(skew) < 5 * math.sqrt(6 / n)
  assert abs(kurt - m4 / var**2) < 5 * math.sqrt(24 / n)
  # and against N(0, 1) itself
  assert abs(s2 - 1) < 5 * math.sqrt(2 / n)
  assert abs(kurt - 3) < 5 * math.sqrt(24 / n)


def test_ks_against_the_normal(sample):
  result = scipy.stats.kstest(sample, "norm")
  assert result.pvalue > 1e-3, result


def test_each_level_equally_likely(sample):
  # The exact discrete law: P(z = T[k]) = 2^-16 for every k (chi-square, 16 expected per level).
  counts = np.bincount(np.searchsorted(gaussian.table(), sample.astype(np.float32)), minlength=1 << 16)
  assert counts.size == 1 << 16
  assert scipy.stats.chisquare(counts).pvalue > 1e-4
  # The empirical CDF at the quantisation points: P(z <= T[k]) = (k + 1) / 2^16.
  ecdf = np.cumsum(counts) / sample.size
  d = np.abs(ecdf - np.arange(1, (1 << 16) + 1) / (1 << 16)).max()
  assert d < 1.63 / math.sqrt(sample.size)  # Kolmogorov's 1% critical value


def test_neighbours_uncorrelated():
  z = np.asarray(gaussian.standard_normal(KEY, (256, 4096)), np.float64)
  n = z.size
  # the four quarters of one hash (lags 1..3 along the last axis), the next hash, the next row
  for lag in (1, 2, 3, 4):
    r = np.mean(z[:, lag:] * z[:, :-lag])
    assert abs(r) < 5 / math.sqrt(n), lag
  assert abs(np.mean(z[1:] * z[:-1])) < 5 / math.sqrt(n)
  # every position within a hash has the same law
  for t in range(4):
    assert abs(z[:, t::4].var() - 1) < 5 * math.sqrt(2 / (n / 4)), t


# --- a function of the key alone ---------------------------------------------------------------

def test_same_key_same_draw_different_keys_different_draws():
  a = gaussian.standard_normal(KEY, (64, 33))
  np.testing.assert_array_equal(a, gaussian.standard_normal(KEY, (64, 33)))
  k1, k2 = jax.random.split(KEY)
  b, c = gaussian.standard_normal(k1, (64, 33)), gaussian.standard_normal(k2, (64, 33))
  for x, y in [(a, b), (a, c), (b, c)]:
    assert np.mean(np.asarray(x) == np.asarray(y)) < 0.01
  # keys differing in one word
  d = gaussian.standard_normal(jnp.asarray(KEY).at[1].add(1), (64, 33))
  assert np.mean(np.asarray(a) == np.asarray(d)) < 0.01


def test_raw_and_typed_keys_agree():
  typed = jax.random.key(7)
  raw = jax.random.PRNGKey(7)
  np.testing.assert_array_equal(gaussian.standard_normal(typed, (5, 6)),
                                gaussian.standard_normal(raw, (5, 6)))
  np.testing.assert_array_equal(gaussian.standard_normal(jax.random.wrap_key_data(raw), (9,)),
                                gaussian.standard_normal(raw, (9,)))


def test_other_key_implementations_are_deterministic():
  for impl in ("rbg", "unsafe_rbg"):
    k = jax.random.key(3, impl=impl)
    a = gaussian.standard_normal(k, (4, 5))
    np.testing.assert_array_equal(a, gaussian.standard_normal(k, (4, 5)))
    np.testing.assert_array_equal(a, jax.jit(gaussian.standard_normal, static_argnums=1)(k, (4, 5)))
    assert np.all(np.isin(np.asarray(a), gaussian.table()))


def test_bad_keys_are_refused():
  with pytest.raises(TypeError):
    gaussian.standard_normal(jnp.zeros((2,), jnp.int32), (3,))
  with pytest.raises(TypeError):
    gaussian.standard_normal(jnp.zeros((2, 2), jnp.uint32), (3,))
  with pytest.raises(ValueError, match="vmap"):
    gaussian.standard_normal(jax.random.split(jax.random.key(0)), (3,))


def test_jit_equals_eager():
  f = jax.jit(gaussian.standard_normal, static_argnums=1)
  for shape in [(3, 7), (2, 5, 129), (1,), (), (4, 0)]:
    np.testing.assert_array_equal(f(KEY, shape), gaussian.standard_normal(KEY, shape))
    np.testing.assert_array_equal(f(jax.random.key(5), shape),
                                  gaussian.standard_normal(jax.random.key(5), shape))


def test_vmap_over_keys_equals_a_loop():
  for keys in (jax.random.split(KEY, 5), jax.random.split(jax.random.key(1), 5)):
    got = jax.vmap(lambda k: gaussian.standard_normal(k, (3, 10)))(keys)
    want = np.stack([gaussian.standard_normal(k, (3, 10)) for k in keys])
    np.testing.assert_array_equal(got, want)
    got = jax.jit(jax.vmap(lambda k: gaussian.standard_normal(k, (7,))))(keys)
    np.testing.assert_array_equal(got, np.stack([gaussian.standard_normal(k, (7,)) for k in keys]))


def test_independent_of_the_threefry_partitionable_flag():
  a = gaussian.standard_normal(KEY, (6, 11))
  with jax.threefry_partitionable(False):
    np.testing.assert_array_equal(gaussian.standard_normal(KEY, (6, 11)), a)
    np.testing.assert_array_equal(jax.jit(gaussian.standard_normal, static_argnums=1)(KEY, (6, 11)), a)


def test_noise_module_draws_through_here():
  np.testing.assert_array_equal(noise.standard_normal(KEY, (4, 9)),
                                gaussian.standard_normal(KEY, (4, 9)))


@settings(max_examples=25, deadline=None)
@given(shape=st.lists(st.integers(0, 9), min_size=0, max_size=3).map(tuple),
       seed=st.integers(0, 2**32 - 1))
def test_any_shape(shape, seed):
  key = jax.random.PRNGKey(seed)
  z = gaussian.standard_normal(key, shape)
  assert z.shape == shape and z.dtype == jnp.float32
  assert np.all(np.isin(np.asarray(z), gaussian.table()))
  if math.prod(shape):
    # Row-major over the leading axes: only (rows, last axis) matters.
    flat = gaussian.standard_normal(key, (math.prod(shape[:-1]), shape[-1]) if shape else (1,))
    np.testing.assert_array_equal(np.asarray(z).reshape(flat.shape), flat)
    # Lengths in the same group of four share their first elements.
    if shape:
      longer = gaussian.standard_normal(key, (*shape[:-1], -(-shape[-1] // 4) * 4))
      np.testing.assert_array_equal(longer[..., :shape[-1]], z)


def test_shape_arguments():
  np.testing.assert_array_equal(gaussian.standard_normal(KEY, [np.int64(3), 4]),
                                gaussian.standard_normal(KEY, (3, 4)))
  assert gaussian.standard_normal(KEY, (0,)).shape == (0,)
  assert gaussian.standard_normal(KEY, (5, 0, 3)).shape == (5, 0, 3)
  assert gaussian.standard_normal(KEY, ()).shape == ()
  assert float(gaussian.standard_normal(KEY, ())) == float(gaussian.standard_normal(KEY, (1,))[0])


# --- 1 device vs 4 devices, replicated vs sharded ----------------------------------------------

CASES = [(1, (8, 5, 37)), (2, (4, 1)), (3, (28, 16, 512))]

_DRAW = textwrap.dedent("""
    import json, sys
    import jax, numpy as np
    from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
    from freqnoise.analog import gaussian
    out = {"devices": jax.device_count()}
    mesh = Mesh(np.asarray(jax.devices()), ("data",))
    for seed, shape in json.loads(sys.argv[1]):
      shape = tuple(shape)
      key = jax.random.PRNGKey(seed)
      rep = jax.jit(gaussian.standard_normal, static_argnums=1)(key, shape)
      sh = jax.jit(gaussian.standard_normal, static_argnums=1,
                   out_shardings=NamedSharding(mesh, P("data")))(key, shape)
      out[f"{seed}/replicated"] = np.asarray(rep)
      out[f"{seed}/sharded"] = np.asarray(sh)
    np.savez(sys.argv[2], **{k: v for k, v in out.items() if k != "devices"})
    print(json.dumps({"devices": out["devices"]}))
""")


def _draw_in_subprocess(xla_flags: str, path) -> tuple[int, dict]:
  env = dict(os.environ, XLA_FLAGS=xla_flags, JAX_PLATFORMS="cpu")
  cases = json.dumps([[seed, list(shape)] for seed, shape in CASES])
  proc = subprocess.run([sys.executable, "-c", _DRAW, cases, str(path)], env=env, cwd=REPO,
                        capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  devices = json.loads(proc.stdout.strip().splitlines()[-1])["devices"]
  with np.load(path) as f:
    return devices, dict(f)


def test_same_numbers_on_1_and_4_devices_replicated_and_sharded(tmp_path):
  here = jax.device_count()
  # The other device count in a subprocess: 1 there if 4 here (the default), 4 there if 1 here.
  other_flags = "" if here > 1 else "--xla_force_host_platform_device_count=4"
  there, drawn = _draw_in_subprocess(other_flags, tmp_path / "draws.npz")
  assert sorted([here, there]) == [1, 4], (here, there)
  mesh = Mesh(np.asarray(jax.devices()), ("data",))
  for seed, shape in CASES:
    key = jax.random.PRNGKey(seed)
    eager = np.asarray(gaussian.standard_normal(key, shape))
    sharded = jax.jit(gaussian.standard_normal, static_argnums=1,
                      out_shardings=NamedSharding(mesh, P("data")))(key, shape)
    assert len(sharded.sharding.device_set) == here
    for name, x in [("eager", eager), ("sharded here", np.asarray(sharded)),
                    ("replicated there", drawn[f"{seed}/replicated"]),
                    ("sharded there", drawn[f"{seed}/sharded"])]:
      assert x.dtype == np.float32 and x.shape == shape
      np.testing.assert_array_equal(x, eager, err_msg=f"{shape}: {name}")


def test_sharded_draw_inside_a_jitted_computation():
  if jax.device_count() < 2:
    pytest.skip("needs several devices (the default 4 fake CPU devices)")
  mesh = Mesh(np.asarray(jax.devices()), ("data",))
  keys = jax.random.split(KEY, jax.device_count() * 2)
  keys = jax.device_put(keys, NamedSharding(mesh, P("data")))  # keys sharded, draws per key

  @jax.jit
  def f(keys):
    return jax.vmap(lambda k: gaussian.standard_normal(k, (3, 17)))(keys)

  np.testing.assert_array_equal(
      f(keys), np.stack([gaussian.standard_normal(k, (3, 17)) for k in np.asarray(keys)]))
