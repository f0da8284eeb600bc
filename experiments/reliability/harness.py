"""What run.py's cases use: subprocesses of the command line as a user runs them (`Proc`), and a
`Harness` per session with each case's temporary folder, the shared finished runs, and the checks of
a run folder (file hashes, stray files, metrics rows, checkpoints, bitwise comparison).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
TINY = "configs/digits_mlp.py:tiny"
# 60 steps; a train row every 10, test eval at 30 and 60, checkpoints at 20, 40, 60.
KILL = ("--config.num_steps=60", "--config.log_every=10", "--config.eval_every=30",
        "--config.checkpoint_every=20")
ERROR_LINE = re.compile(r"^\s*(\S*(Error|Exception)\b.*?:|FATAL |error: )")
EXIT_NOISE = re.compile(r"Event loop is closed|sys\.meta_path is None|Exception ignored in|"
                        r"coroutine .* was never awaited")
STRAY = re.compile(r"(^\.lock$|\.tmp$|orbax-checkpoint-tmp|^\.evaluate-probe-)")


class Proc:
  """A finished subprocess: exit code, output, wall seconds."""

  def __init__(self, cmd: str, rc, out: str, err: str, seconds: float, short):
    self.cmd, self.rc, self.out, self.err, self.seconds = cmd, rc, out, err, seconds
    self._short = short  # shortens temporary paths

  @property
  def text(self) -> str:
    return self.out + "\n" + self.err

  def block(self, key: str | None = None) -> str:
    """What the user reads, whole: the first line matching `key`; else for a failure the last
    error line of stderr and what follows it (a multi-line message), else the last stderr line;
    for a success 'test accuracy ...' or the last output line."""
    if key:
      lines = [l for l in self.text.splitlines() if re.search(key, l)][:1]
    elif self.rc == 0:
      lines = [l for l in self.out.splitlines() if l.strip()][-1:]
      lines = [l for l in self.out.splitlines() if l.startswith("test accuracy")] or lines
    else:
      err = [l for l in self.err.splitlines() if l.strip() and not l.startswith("Pass --help")]
      starts = [i for i, l in enumerate(err) if ERROR_LINE.search(l)]
      lines = err[starts[-1]:] if starts else err[-1:]
    return " ".join(" ".join(lines).split())

  def message(self, key: str | None = None) -> str:
    """`block`, temp paths shortened, trimmed to 160 characters."""
    text = self._short(self.block(key))
    return text[:160] + ("…" if len(text) > 160 else "")

  def noise(self) -> list[str]:
    """Exit noise on stderr (orbax's event loops and coroutines torn down at interpreter exit)."""
    return sorted({m.group(0) for m in EXIT_NOISE.finditer(self.err)})

  def last_line(self) -> str:
    """The last line it printed to stdout (where a killed run got to)."""
    lines = [l for l in self.out.splitlines() if l.strip()] or [""]
    return self._short(" ".join(lines[-1].split()))[:160]


class Harness:
  """What a case uses: commands, its temp folder, shared prepared runs, and folder checks."""

  def __init__(self, root: str):
    self.root = root  # every case folder and the shared runs live below it
    self.tmp = ""
    self.env = {**os.environ, "XLA_FLAGS": "", "PYTHONUNBUFFERED": "1"}
    self.env.pop("FREQNOISE_FAULT", None)
    self._shared: dict[str, str] = {}
    self.mounts: list[str] = []  # mount points of the current case, unmounted after it

  def mount(self, *args: str) -> bool:
    """`mount ARGS... TARGET` (root only); whether it worked. A new mount point is registered
    for `unmount_all`."""
    ok = subprocess.run(["mount", *args], capture_output=True).returncode == 0
    if ok and args[-1] not in self.mounts:
      self.mounts.append(args[-1])
    return ok

  def unmount_all(self) -> None:
    for target in reversed(self.mounts):
      subprocess.run(["umount", "-l", target], capture_output=True)
    self.mounts = []

  def begin(self, name: str) -> None:
    self.tmp = tempfile.mkdtemp(prefix=f"{name}-", dir=self.root)

  def short(self, text: str) -> str:
    """`text` with this case's folder as $T and the session's (shared runs) as $S."""
    return (text.replace(self.tmp, "$T") if self.tmp else text).replace(self.root, "$S")

  def path(self, *parts: str) -> str:
    return os.path.join(self.tmp, *parts)

  # --------------------------------------------------------------------------- commands
  def _argv(self, module: str, workdir: str | None, flags, fault: str | None) -> list[str]:
    head = ([sys.executable, os.path.join(HERE, "inject.py")] if fault
            else [sys.executable, module] if module.endswith(".py")  # a script of the repository
            else [sys.executable, "-m", module])
    return head + ([f"--workdir={workdir}"] if workdir is not None else []) + list(flags)

  def start(self, workdir, *flags, config=TINY, cwd=REPO, fault=None,
            module="freqnoise.main", env=None) -> subprocess.Popen:
    """The command as a subprocess; `env`: variables set for it (shown before the command)."""
    argv = self._argv(module, workdir, ([f"--config={config}"] if config else []) + list(flags),
                      fault)
    head = 2 if fault or module.endswith(".py") else 3  # python X.py | python -m module
    env = {**(env or {}), **({"FREQNOISE_FAULT": fault} if fault else {})}
    p = subprocess.Popen(argv, cwd=cwd, env={**self.env, **env}, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    shown = ([f"{k}={v}" for k, v in env.items()]
             + (["inject.py"] if fault else [f"python {module}" if head == 2 else module])
             + argv[head:])
    p.t0, p.shown = time.perf_counter(), self.short(" ".join(shown))
    return p

  def wait(self, p: subprocess.Popen, timeout: float = 300) -> Proc:
    try:
      out, err = p.communicate(timeout=timeout)
      rc = p.returncode
    except subprocess.TimeoutExpired:
      p.kill()
      out, err = p.communicate()
      rc = f"timeout {timeout:g} s"
    rc = "killed (-9)" if rc == -9 else rc
    return Proc(p.shown, rc, out, err, time.perf_counter() - p.t0, self.short)

  def until(self, p: subprocess.Popen, pattern: str, timeout: float = 120) -> Proc:
    """`p`'s output up to the first stdout line matching `pattern`, then `p` killed: for a case
    whose evidence comes before a long training. rc 'stopped' when it was killed here."""
    out, err, hit = [], [], threading.Event()

    def read(stream, lines, watch):
      for line in stream:
        lines.append(line)
        if watch and re.search(pattern, line):
          hit.set()
      if watch:
        hit.set()  # ended without the line

    readers = [threading.Thread(target=read, args=a, daemon=True)
               for a in ((p.stdout, out, True), (p.stderr, err, False))]
    for r in readers:
      r.start()
    hit.wait(timeout)
    running = p.poll() is None
    if running:
      p.kill()
    p.wait()
    for r in readers:
      r.join()
    return Proc(p.shown, "stopped" if running else p.returncode, "".join(out), "".join(err),
                time.perf_counter() - p.t0, self.short)

  def train(self, workdir, *flags, timeout=300, **kw) -> Proc:
    return self.wait(self.start(workdir, *flags, **kw), timeout)

  def evaluate(self, workdir, *flags, timeout=300) -> Proc:
    return self.train(workdir, *flags, config=None, module="freqnoise.evaluate", timeout=timeout)

  def wait_for(self, path: str, timeout: float = 120) -> bool:
    t_end = time.time() + timeout
    while time.time() < t_end:
      if os.path.exists(path):
        return True
      time.sleep(0.005)
    return False

  # --------------------------------------------------------------------------- shared runs
  def shared(self, name: str, *flags, config=TINY) -> str:
    """A finished run made once per session (name -> folder); cases copy it, never change it."""
    if name not in self._shared:
      folder = os.path.join(self.root, "shared", name)
      p = self.train(folder, *flags, config=config)
      if p.rc != 0:
        raise RuntimeError(f"preparing {name} failed: {p.err[-2000:]}")
      print(f"  (prepared {name} in {p.seconds:.1f} s)", flush=True)
      self._shared[name] = folder
    return self._shared[name]

  def copy_of(self, name: str, *flags, config=TINY) -> str:
    dst = self.path("run")
    shutil.copytree(self.shared(name, *flags, config=config), dst, symlinks=True)
    return dst

  # --------------------------------------------------------------------------- folder checks
  @staticmethod
  def snapshot(folder: str) -> dict[str, str]:
    """{relative path: sha256} of every file below `folder`."""
    out = {}
    for base, _, files in os.walk(folder):
      for f in files:
        p = os.path.join(base, f)
        with open(p, "rb") as fh:
          out[os.path.relpath(p, folder)] = hashlib.sha256(fh.read()).hexdigest()
    return out

  @staticmethod
  def changes(before: dict, after: dict) -> str:
    """'nothing' or what changed between two snapshots (checkpoint files grouped by step)."""
    def short(paths):
      return sorted({"/".join(p.split("/")[:2]) if p.startswith("checkpoints/") else p
                     for p in paths})
    parts = [f"{what}: {', '.join(short(paths))}" for what, paths in (
        ("changed", [p for p in before if p in after and before[p] != after[p]]),
        ("removed", [p for p in before if p not in after]),
        ("added", [p for p in after if p not in before])) if paths]
    return "; ".join(parts) or "nothing"

  @staticmethod
  def stray(folder: str) -> list[str]:
    """Leftovers no finished or failed command should leave: .lock, *.tmp, orbax temp folders."""
    found = []
    for base, dirs, files in os.walk(folder):
      found += [os.path.relpath(os.path.join(base, n), folder) for n in dirs + files
                if STRAY.search(n)]
    return sorted(found)

  @staticmethod
  def rows(workdir: str) -> list[dict]:
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
      return [json.loads(l, parse_constant=_reject) for l in f.read().split("\n") if l.strip()]

  @staticmethod
  def final(workdir: str) -> dict:
    with open(os.path.join(workdir, "final_metrics.json")) as f:
      return json.loads(f.read(), parse_constant=_reject)

  @staticmethod
  def checkpoints(workdir: str) -> list[int]:
    folder = os.path.join(workdir, "checkpoints")
    if not os.path.isdir(folder):
      return []
    return sorted(int(n) for n in os.listdir(folder) if n.isdigit())

  def finite_checkpoints(self, workdir: str) -> dict[int, bool]:
    """{step: every floating array finite} of each checkpoint, read without a target."""
    script = ("import json, sys, numpy as np, jax, orbax.checkpoint as ocp\n"
              "m = ocp.CheckpointManager(sys.argv[1])\n"
              "print(json.dumps({s: all(bool(np.isfinite(x).all()) for x in map(np.asarray, "
              "jax.tree.leaves(m.restore(s, args=ocp.args.StandardRestore()))) if "
              "np.issubdtype(x.dtype, np.inexact)) for s in m.all_steps()}))\n")
    out = subprocess.run([sys.executable, "-c", script, os.path.join(workdir, "checkpoints")],
                         cwd=REPO, env=self.env, capture_output=True, text=True, timeout=300)
    return {int(k): v for k, v in json.loads(out.stdout.strip().splitlines()[-1]).items()}

  def unique_steps(self, workdir: str) -> bool:
    keys = [(r["step"], r["split"]) for r in self.rows(workdir)]
    return len(keys) == len(set(keys))

  def bitwise(self, workdir: str) -> list[str]:
    """Differences from the uninterrupted reference run of the kill config ([] = bitwise equal
    final metrics and metrics.jsonl rows)."""
    ref = self.shared("reference", *KILL)
    diff = [f"final {k}" for k in ("test_loss", "test_accuracy", "steps")
            if self.final(workdir).get(k) != self.final(ref)[k]]
    got, want = self.rows(workdir), self.rows(ref)
    if got != want:
      diff.append(f"metrics rows ({len(got)} vs {len(want)} in the reference)")
    return diff


def _reject(constant: str):
  raise ValueError(f"not strict JSON: {constant}")
