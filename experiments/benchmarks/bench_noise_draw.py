"""Gaussian noise draws: speed of one float32 draw and whether it is a function of the key alone.

    python experiments/benchmarks/bench_noise_draw.py [--repeats 25] [--warmup 2]
        [--shape 28,128,512] [--json experiments/benchmarks/results/noise_draw.json]

Options (all jitted, one [28, 128, 512] float32 draw per call):
  a    jax.random.normal, partitionable Threefry (JAX 0.10's default)
  b    jax.random.normal under jax.threefry_partitionable(False)
  c1   jax.random.normal with an rbg key          c2  ... with an unsafe_rbg key
  d-*  partitionable jax.random.bits, uint32 for half the elements, each word two 16-bit
       uniforms u = (k + 0.5) / 2^16, turned into normals by
       d-bm Box-Muller (a pair -> two normals), d-icdf sqrt(2) erf_inv(2u - 1),
       d-tab the 2^16-entry conditional-mean table of freqnoise.analog.gaussian
  e-*  the Threefry-2x32 block function called directly on a partitionable counter grid: both
       32-bit words of every hash are used, 64 bits = four 16-bit uniforms per hash (half the
       hashes of d), then e-bm / e-icdf / e-tab as above. e-tab is
       freqnoise.analog.gaussian.standard_normal itself.

Timing runs in a subprocess with 1 CPU device (XLA_FLAGS=''): per round every option is called
once (rounds interleave the options, so a load change hits all of them alike), `--warmup` rounds
are dropped, the table shows the median over `--repeats` rounds of the call to block_until_ready.

Key-only check: two more subprocesses, XLA_FLAGS='' (1 device) and
XLA_FLAGS=--xla_force_host_platform_device_count=4 (4 fake CPU devices), draw every option for a
fixed key at the timed shape and at an odd shape [12, 5, 37]: on 1 device jitted (replicated
output), on 4 devices jitted with the output sharded over a ('data',) mesh on axis 0 (both shapes)
and replicated (the odd shape). The table says 'yes' when all of an option's arrays of a shape
are bitwise equal (compared by SHA-256 of the bytes, which the workers save).

max |z|: the largest |z| the option can produce at all, from its float32 transform evaluated at
its extreme inputs (32-bit options: JAX's 23-bit uniform on (-1, 1) fed to erf_inv).

The machine may be shared (another job training on the same cores): the header prints
os.getloadavg() before and after, and absolute times are then inflated.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

ODD_SHAPE = (12, 5, 37)
ORDER = ("a", "b", "c1", "c2", "d-bm", "d-icdf", "d-tab", "e-bm", "e-icdf", "e-tab")
DESCRIPTION = {
    "a": "jax.random.normal, partitionable Threefry",
    "b": "jax.random.normal, threefry_partitionable(False)",
    "c1": "jax.random.normal, rbg key",
    "c2": "jax.random.normal, unsafe_rbg key",
    "d-bm": "random.bits u32 -> 2x16-bit, Box-Muller",
    "d-icdf": "random.bits u32 -> 2x16-bit, erf_inv",
    "d-tab": "random.bits u32 -> 2x16-bit, 2^16 table",
    "e-bm": "Threefry 64-bit hash -> 4x16-bit, Box-Muller",
    "e-icdf": "Threefry 64-bit hash -> 4x16-bit, erf_inv",
    "e-tab": "Threefry 64-bit hash -> 4x16-bit, 2^16 table (gaussian.py)",
}


def _options():
  """name -> (fn(key, shape) -> float32 array, key maker(seed), context-manager factory)."""
  import contextlib

  import jax
  import jax.numpy as jnp
  import numpy as np
  from jax import lax

  from freqnoise.analog import gaussian

  inv = np.float32(1.0 / 65536)
  half = np.float32(0.5 / 65536)
  sqrt2 = np.float32(np.sqrt(2.0))
  two_pi = np.float32(2.0 * np.pi)

  def icdf(k):  # k uint32 in [0, 2^16): sqrt(2) erf_inv(2u - 1), u = (k + 0.5) / 2^16 (exact)
    return sqrt2 * lax.erf_inv((2.0 * k.astype(jnp.float32) + 1.0) * inv - 1.0)

  def box_muller(k1, k2):  # two 16-bit uniforms -> two normals
    u1 = k1.astype(jnp.float32) * inv + half
    r = jnp.sqrt(-2.0 * jnp.log(u1))
    theta = two_pi * (k2.astype(jnp.float32) * inv + half)
    return r * jnp.cos(theta), r * jnp.sin(theta)

  def tab(k):
    return jnp.asarray(gaussian.table()).at[k].get(mode="promise_in_bounds")

  def halves(key, shape):  # d: partitionable jax.random.bits, one uint32 per two elements
    full = shape if shape else (1,)
    grid = (*full[:-1], -(-full[-1] // 2))
    w = jax.random.bits(key, grid, jnp.uint32)
    return [w & np.uint32(0xFFFF), w >> 16], grid

  def interleave(parts, grid, shape):
    x = jnp.stack(parts, axis=-1).reshape(*grid[:-1], grid[-1] * len(parts))
    return x[..., :(shape[-1] if shape else 1)].reshape(shape)

  def d_bm(key, shape):
    (k1, k2), grid = halves(key, shape)
    return interleave(list(box_muller(k1, k2)), grid, shape)

  def d_icdf(key, shape):
    parts, grid = halves(key, shape)
    return interleave([icdf(p) for p in parts], grid, shape)

  def d_tab(key, shape):
    parts, grid = halves(key, shape)
    return interleave([tab(p) for p in parts], grid, shape)

  def e_bm(key, shape):
    (k1, k2, k3, k4), grid = gaussian._quarters(key, shape)
    return gaussian._interleave([*box_muller(k1, k2), *box_muller(k3, k4)], grid, shape)

  def e_icdf(key, shape):
    parts, grid = gaussian._quarters(key, shape)
    return gaussian._interleave([icdf(p) for p in parts], grid, shape)

  def normal(key, shape):
    return jax.random.normal(key, shape, jnp.float32)

  raw = jax.random.PRNGKey
  none = contextlib.nullcontext
  return {
      "a": (normal, raw, none),
      "b": (normal, raw, lambda: jax.threefry_partitionable(False)),
      "c1": (normal, lambda s: jax.random.key(s, impl="rbg"), none),
      "c2": (normal, lambda s: jax.random.key(s, impl="unsafe_rbg"), none),
      "d-bm": (d_bm, raw, none),
      "d-icdf": (d_icdf, raw, none),
      "d-tab": (d_tab, raw, none),
      "e-bm": (e_bm, raw, none),
      "e-icdf": (e_icdf, raw, none),
      "e-tab": (gaussian.standard_normal, raw, none),
  }, (icdf, box_muller)


def _max_abs_z(transforms) -> dict[str, float]:
  """Largest |z| each option can produce: its float32 transform at its extreme inputs."""
  import jax.numpy as jnp
  import numpy as np
  from jax import lax

  from freqnoise.analog import gaussian
  icdf, box_muller = transforms
  # JAX's normal: f in {0, 1 - 2^-23} (23 random bits), u = max(lo, f (hi - lo) + lo) on
  # (lo, hi) = (nextafter(-1, 0), 1), z = sqrt(2) erf_inv(u).
  lo = np.nextafter(np.float32(-1), np.float32(0))
  f = jnp.asarray([0.0, 1.0 - 2.0**-23], jnp.float32)
  u = lax.max(jnp.float32(lo), f * (jnp.float32(1) - lo) + lo)
  jax_normal = float(jnp.max(jnp.abs(np.float32(np.sqrt(2)) * lax.erf_inv(u))))
  k = jnp.arange(65536, dtype=jnp.uint32)
  z_icdf = float(jnp.max(jnp.abs(icdf(k))))
  # Box-Muller: the radius is largest at k1 = 0; try every angle.
  c, s = box_muller(jnp.zeros_like(k), k)
  z_bm = float(max(jnp.max(jnp.abs(c)), jnp.max(jnp.abs(s))))
  z_tab = float(np.abs(gaussian.table()).max())
  out = {}
  for name in ORDER:
    out[name] = (jax_normal if name in ("a", "b", "c1", "c2") else
                 z_bm if name.endswith("bm") else z_icdf if name.endswith("icdf") else z_tab)
  return out


def _digest(x) -> str:
  import numpy as np
  a = np.ascontiguousarray(np.asarray(x))
  return f"{a.dtype}{list(a.shape)}:" + hashlib.sha256(a.tobytes()).hexdigest()[:32]


def worker(args) -> dict:
  """Runs in a subprocess whose XLA_FLAGS are already set: check digests and (optionally) time."""
  import jax
  import numpy as np
  from jax.sharding import Mesh, NamedSharding
  from jax.sharding import PartitionSpec as P

  options, transforms = _options()
  n = jax.device_count()
  mesh = Mesh(np.asarray(jax.devices()), ("data",))
  out = {"devices": n, "digests": {}, "errors": {}}
  shapes = {"timed": args.shape, "odd": ODD_SHAPE}
  calls = {}
  for name in ORDER:
    fn, make_key, ctx = options[name]
    key = make_key(1234)
    digests = {}
    try:
      with ctx():
        rep = jax.jit(fn, static_argnums=1)
        sharded = jax.jit(fn, static_argnums=1, out_shardings=NamedSharding(mesh, P("data")))
        for label, shape in shapes.items():
          if n == 1 or label == "odd":
            digests[f"{label}/jit"] = _digest(rep(key, shape))
          if n > 1:
            y = sharded(key, shape)
            assert len(y.sharding.device_set) == n
            digests[f"{label}/jit-sharded"] = _digest(y)
    except Exception as e:  # noqa: BLE001 - recorded, shown in the table
      out["errors"][name] = f"{type(e).__name__}: {e}"[:300]
    out["digests"][name] = digests
    calls[name] = (rep, [make_key(s) for s in range(3)], ctx)
  if not args.time:
    return out
  out["max_abs_z"] = _max_abs_z(transforms)
  while args.go_file and not os.path.exists(args.go_file):  # the 4-device check still running
    time.sleep(0.2)
  times = {name: [] for name in ORDER}
  for r in range(args.warmup + args.repeats):
    if r >= args.warmup + 3 and time.time() > args.deadline:
      break  # keep the whole run under its time budget; the JSON records the rounds done
    for name in ORDER:
      f, keys, ctx = calls[name]
      key = keys[r % len(keys)]
      with ctx():
        t0 = time.perf_counter()
        f(key, args.shape).block_until_ready()
        dt = time.perf_counter() - t0
      if r >= args.warmup:
        times[name].append(dt * 1e3)
  out["times_ms"] = times
  return out


def _worker_cmd(args, out_path: str, time_it: bool, go_file: str = "") -> list[str]:
  return [sys.executable, os.path.abspath(__file__), "--worker_out", out_path,
          "--shape", ",".join(map(str, args.shape)), "--repeats", str(args.repeats),
          "--warmup", str(args.warmup), "--deadline", str(args.deadline),
          "--go_file", go_file] + (["--time"] if time_it else [])


def _run_workers(args) -> tuple[dict, dict]:
  """The 4-device check runs while the 1-device worker compiles and checks; the 1-device worker
  starts timing only once the 4-device one has exited (a file says so)."""
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  with tempfile.TemporaryDirectory() as tmp:
    one_path, four_path = os.path.join(tmp, "one.json"), os.path.join(tmp, "four.json")
    go_file = os.path.join(tmp, "go")
    four = subprocess.Popen(_worker_cmd(args, four_path, False), cwd=ROOT,
                            env=dict(env, XLA_FLAGS="--xla_force_host_platform_device_count=4"))
    one = subprocess.Popen(_worker_cmd(args, one_path, True, go_file), cwd=ROOT,
                           env=dict(env, XLA_FLAGS=""))
    rc4 = four.wait()
    open(go_file, "w").close()
    rc1 = one.wait()
    if rc1 or rc4:
      raise SystemExit(f"worker failed: 1 device rc={rc1}, 4 devices rc={rc4}")
    with open(one_path) as f1, open(four_path) as f4:
      return json.load(f1), json.load(f4)


def _key_only(one: dict, four: dict, name: str) -> tuple[bool, str]:
  if name in one["errors"] or name in four["errors"]:
    return False, one["errors"].get(name) or four["errors"][name]
  digests = {f"1dev/{k}": v for k, v in one["digests"][name].items()}
  digests.update({f"4dev/{k}": v for k, v in four["digests"][name].items()})
  bad = []
  for label in ("timed", "odd"):
    ref = digests[f"1dev/{label}/jit"]
    bad += [k for k, v in digests.items() if k.split("/")[1] == label and v != ref]
  return not bad, ("differs: " + ", ".join(bad)) if bad else ""


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--repeats", type=int, default=25, help="timed rounds (median)")
  p.add_argument("--warmup", type=int, default=2, help="rounds dropped after compilation")
  p.add_argument("--shape", type=lambda s: tuple(int(x) for x in s.split(",")),
                 default=(28, 128, 512))
  p.add_argument("--json", default=os.path.join(ROOT, "experiments/benchmarks/results/noise_draw.json"),
                 help="raw numbers written here ('' = not written)")
  p.add_argument("--worker_out", default="", help=argparse.SUPPRESS)
  p.add_argument("--budget_s", type=float, default=120.0,
                 help="stop timing rounds (after at least 3) when the run has taken this long")
  p.add_argument("--time", action="store_true", help=argparse.SUPPRESS)
  p.add_argument("--go_file", default="", help=argparse.SUPPRESS)
  p.add_argument("--deadline", type=float, default=0.0, help=argparse.SUPPRESS)
  args = p.parse_args(argv)

  if args.worker_out:
    result = worker(args)
    with open(args.worker_out, "w") as fh:
      json.dump(result, fh)
    return

  import statistics
  t_start = time.time()
  load_before = os.getloadavg()
  args.deadline = t_start + args.budget_s
  one, four = _run_workers(args)
  load_after = os.getloadavg()
  import jax  # only for the version (the parent draws nothing)
  med = {k: statistics.median(v) for k, v in one["times_ms"].items()}
  now = datetime.datetime.now(datetime.timezone.utc)
  rounds = len(one["times_ms"]["a"])
  print(f"# one float32 {list(args.shape)} draw, jitted, median of {rounds} rounds "
        f"(warm-up {args.warmup} dropped); jax {jax.__version__}, {os.cpu_count()} CPUs, "
        f"{platform.processor() or platform.machine()}, {now:%Y-%m-%d %H:%M} UTC")
  print(f"# os.getloadavg() before {tuple(round(x, 2) for x in load_before)}, after "
        f"{tuple(round(x, 2) for x in load_after)}: the cores may be shared with another job "
        "(a training run), which inflates the times")
  print("| option | ms per draw | vs (a) | key-only on 1 vs 4 devices | max |z| reachable |")
  print("|---|---|---|---|---|")
  rows = {}
  for name in ORDER:
    ok, why = _key_only(one, four, name)
    rows[name] = {"description": DESCRIPTION[name], "ms_median": med[name],
                  "vs_a": med[name] / med["a"], "key_only": ok, "key_only_detail": why,
                  "max_abs_z": one["max_abs_z"][name], "times_ms": one["times_ms"][name],
                  "digests_1dev": one["digests"][name], "digests_4dev": four["digests"][name]}
    print(f"| {name}: {DESCRIPTION[name]} | {med[name]:.2f} | {med[name] / med['a']:.2f} | "
          f"{'yes' if ok else 'NO'}{(' (' + why + ')') if why else ''} | "
          f"{one['max_abs_z'][name]:.4f} |")
  key_only = [n for n in ORDER if rows[n]["key_only"]]
  chosen = min(key_only, key=lambda n: med[n]) if key_only else "a"
  print("(N(0,1) beyond those bounds: P(|Z| > 4.3249) = 1.5e-5, P(|Z| > 4.3875) = 1.1e-5, "
        "P(|Z| > 4.8546) = 1.2e-6, P(|Z| > 5.42) = 6.0e-8)")
  print(f"wall time {time.time() - t_start:.0f} s")
  print(f"chosen: {chosen}")
  if args.json:
    record = {"date_utc": now.isoformat(timespec="seconds"), "jax": jax.__version__,
              "cpus": os.cpu_count(), "shape": list(args.shape), "odd_shape": list(ODD_SHAPE),
              "repeats": args.repeats, "rounds_timed": rounds, "warmup": args.warmup, "loadavg_before": load_before,
              "loadavg_after": load_after, "options": rows, "chosen": chosen,
              "errors_1dev": one["errors"], "errors_4dev": four["errors"]}
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(args.json)), suffix=".tmp")
    with os.fdopen(fd, "w") as fh:
      json.dump(record, fh, indent=1)
    os.replace(tmp, args.json)


if __name__ == "__main__":
  main()
