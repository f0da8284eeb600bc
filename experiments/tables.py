"""Writes the README tables from the result files in `experiments/<paper>/results/`.

    python experiments/tables.py          # rewrite every table in place
    python experiments/tables.py --check  # exit 1, naming the tables, if a README differs

A table lives in `README.md` or `experiments/*/README.md` between `<!-- table:NAME -->` and
`<!-- /table:NAME -->` (indented like its opening marker, e.g. inside a list item); NAME is a
function below, registered with `@table`, that reads only `results/*.json`. Files a table expects
but that do not exist yet (runs in progress) show as "pending" rows, and new result files that
match a table's pattern appear at the next rewrite, so `--check` fails until someone rewrites.
"""

from __future__ import annotations

import argparse
import glob
import json
import math
import os
import re
import sys
from typing import Callable

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Groups: 1 indentation, 2 name, 3 the table, 4 end marker.
MARKER = re.compile(r"^([ \t]*)<!-- table:([\w.-]+) -->\n(.*?)^[ \t]*(<!-- /table:\2 -->)",
                    re.S | re.M)
TABLES: dict[str, Callable[[], str]] = {}
# Rows of the top-level summary table added by experiments/<paper>/readme_tables.py modules.
SUMMARY_ROWS: list[Callable[[], list[str]]] = []


def table(name: str):
  def wrap(fn: Callable[[], str]) -> Callable[[], str]:
    TABLES[name] = fn
    return fn
  return wrap


def _results(paper: str, pattern: str = "*.json") -> list[str]:
  """Result files of `paper` matching `pattern`; its claims.json is not a run's result."""
  return sorted(p for p in glob.glob(os.path.join(ROOT, "experiments", paper, "results", pattern))
                if os.path.basename(p) != "claims.json")


def _read(path: str):
  with open(path) as f:
    return json.load(f)


def _load(paper: str, name: str):
  return _read(os.path.join(ROOT, "experiments", paper, "results", name))


def _markdown(header: list[str], rows: list[list[str]]) -> str:
  lines = ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
  return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def _snrs(mc: dict) -> list[float]:
  return [float(s) for s in mc["snrs_db"]]  # JSON holds inf as "inf"


def _snr_text(s) -> str:
  s = float(s)
  return "∞" if math.isinf(s) else f"{s:g} dB".replace("-", "−")


def _bold_lowest(rows: list[list[str]], values: list[list[float]], offset: int = 1) -> None:
  """Bolds the lowest of each column of `values` (row i, column c is rows[i][offset + c])."""
  for c in range(len(values[0]) if len(rows) > 1 else 0):
    best = min(v[c] for v in values)
    for row, v in zip(rows, values):
      if v[c] == best:
        row[offset + c] = f"**{row[offset + c]}**"


# ---------------------------------------------------------------- Deep Noise Injection
DNI = "deep_noise_injection"


def _seconds(run: dict) -> str:
  return f"{run['train_seconds']:.0f}" if run["train_seconds"] >= 1 else "—"  # re-evaluated runs


def _spread_high(snrs: list[float], mean: np.ndarray) -> float:
  """max - min of the mean over eval SNR ≥ 5 dB (where a usable model still works)."""
  high = mean[np.asarray(snrs) >= 5]
  return float(high.max() - high.min())


def _seqmnist(file: str, suffix: str = "") -> str:
  """Accuracy (%) per eval SNR (mean over draws), its spread, the majority vote at 0 dB."""
  runs = _load(DNI, file)
  snrs = _snrs(runs[0]["mc"])
  draws = len(runs[0]["mc"]["accuracy"][0])
  header = (["model, train SNR"] + [f"eval {_snr_text(s)}" for s in snrs]
            + ["spread over eval 5 dB…∞", f"majority vote ×{draws} at 0 dB", "train s"])
  rows = []
  for run in sorted(runs, key=lambda r: r["cell"] != "lstm"):  # LSTM first, order kept
    train = float(run["train_snr_db"])
    mean = 100 * np.asarray(run["mc"]["accuracy"]).mean(1)
    vote = 100 * np.asarray(run["mc"]["majority"])[snrs.index(0.0), -1]
    label = f"{run['cell'].upper()}, " + ("clean" if math.isinf(train) else f"DNI {train:g} dB")
    rows.append([label + suffix] + [f"{m:.2f}" for m in mean]
                + [f"{_spread_high(snrs, mean):.2f}", f"{vote:.2f}", _seconds(run)])
  return _markdown(header, rows)


@table("dni_seqmnist")
def dni_seqmnist() -> str:
  return _seqmnist("seqmnist.json")


@table("dni_seqmnist_pgrad")
def dni_seqmnist_pgrad() -> str:
  return _seqmnist("seqmnist_pgrad.json", ", P-gradient")


def _perplexity(x: float) -> str:
  if x >= 1e7:
    exponent = int(math.floor(math.log10(x)))
    sup = str(exponent).translate(str.maketrans("0123456789", "⁰¹²³⁴⁵⁶⁷⁸⁹"))
    return f"{x / 10 ** exponent:.1f} × 10{sup}"
  return f"{x:,.0f}" if x >= 100 else f"{x:.1f}"


def _ptb(*sources: tuple[str, bool, str]) -> str:
  """Test perplexity per eval SNR (mean over draws) and its spread; lowest of each column bold.
  `sources`: (file, only the clean-trained run?, label suffix)."""
  rows, values, snrs = [], [], []
  for file, clean_only, suffix in sources:
    for run in _load(DNI, file):
      train = float(run["train_snr_db"])
      if clean_only and not math.isinf(train):
        continue
      snrs = _snrs(run["mc"])
      mean = np.asarray(run["mc"]["perplexity"]).mean(1)
      values.append(list(mean) + [_spread_high(snrs, mean)])
      label = "∞ (clean)" if math.isinf(train) else _snr_text(train)
      rows.append([label + suffix] + [_perplexity(v) for v in values[-1]] + [_seconds(run)])
  header = (["train SNR"] + [f"eval {_snr_text(s)}" for s in snrs]
            + ["spread over eval ≥ 5 dB", "train s"])
  _bold_lowest(rows, values)
  return _markdown(header, rows)


@table("dni_ptb")
def dni_ptb() -> str:
  return _ptb(("ptb.json", False, ""))


@table("dni_ptb_lstm_only")
def dni_ptb_lstm_only() -> str:
  return _ptb(("ptb_lstm_only.json", False, ""))


@table("dni_ptb_pgrad")
def dni_ptb_pgrad() -> str:
  return _ptb(("ptb.json", True, ", from the first table"),
              ("ptb_pgrad.json", False, ", P-gradient"))


# ---------------------------------------------------------------- frequency domain
FREQ = "frequency_domain"
FREQ_ORDER = ("spatial32", "dct24", "dct48", "dct64", "dct192", "gate", "learned24", "spatial64",
              "gate_lambda0.02", "learned24_lambda0.02")
FREQ_LABELS = {"dct24": "dct24 (0.5× input)", "dct48": "dct48 (1× input)",
               "gate": "gate (λ = 0.2, all 192 gated)",
               "learned24": "learned24 (gate's top-24, static)",
               "gate_lambda0.02": "gate, λ = 0.02 (ablation)",
               "learned24_lambda0.02": "learned24 from the λ = 0.02 gate"}
CIFAR_LABELS = {**FREQ_LABELS, "dct24": "dct24 (of the image upscaled to 64²)"}
SEEDED = "_seededstats"  # reruns with input statistics from a seeded sample (commit e976007)
FREQ_PENDING = {"tiny_imagenet": tuple(v + SEEDED for v in ("spatial32", "dct24", "gate",
                                                            "learned24"))}


def _freq(config: str, labels: dict) -> str:
  """One row per results/<config>_<variant>.json, the columns of frequency_domain/run.py."""
  runs = {r["variant"]: r for r in map(_read, _results(FREQ, f"{config}_*.json"))}
  pending = FREQ_PENDING.get(config, ())
  order = [v for v in FREQ_ORDER + pending if v in runs or v in pending]
  order += sorted(set(runs) - set(order))
  header = ["variant", "top-1 (%)", "input per image (elements)", "input bytes (float32)",
            "forward MFLOPs", "params", "steps (epochs)", "train wall (min)", "steps/s"]
  rows = []
  for v in order:
    base = v.removesuffix(SEEDED)
    label = labels.get(base, base) + (", rerun with seeded input statistics" if v != base else "")
    r = runs.get(v)
    if r is None:
      rows.append([label, f"pending: `results/{config}_{v}.json`"] + ["—"] * 7)
      continue
    shape = "x".join(str(s) for s in r["input_shape"])
    rows.append([label, f"{100 * r['test_top1']:.2f}", f"{shape} = {r['input_elements']:,}",
                 f"{r['input_bytes_float32']:,}", f"{r['forward_flops'] / 1e6:.1f}",
                 f"{r['params']:,}", f"{r['steps']} ({r['epochs']})",
                 f"{r['train_seconds'] / 60:.1f}", f"{r['train_steps_per_sec']:.2f}"])
  return _markdown(header, rows)


@table("freq_tiny_imagenet")
def freq_tiny_imagenet() -> str:
  return _freq("tiny_imagenet", FREQ_LABELS)


@table("freq_cifar10")
def freq_cifar10() -> str:
  return _freq("cifar10", CIFAR_LABELS)


# ---------------------------------------------------------------- noisy inference
MNIST_SNR0 = "mnist_snr0_*.json"  # Monte Carlo of the 0 dB-trained MNIST CNN (freqnoise.evaluate)
VOTE_KS = (1, 2, 4, 8, 16, 24, 32)


def _mc(record: dict) -> dict:
  """The Monte Carlo arrays (evaluators.result_to_json: snrs_db, accuracy[S, D], majority[S, K],
  mean_prob[S, K]) of a result file, at its top level or under one of these keys."""
  for block in (record, *(record.get(k) for k in ("montecarlo", "mc", "result"))):
    if isinstance(block, dict) and "accuracy" in block:
      return block
  raise ValueError("no Monte Carlo arrays (snrs_db, accuracy, majority, mean_prob) in the file")


def _mnist_snr0() -> list[tuple[str, dict]]:
  return [(os.path.basename(p), _mc(_read(p)))
          for p in _results("noisy_inference", MNIST_SNR0)]


def _pending(what: str, columns: int) -> list[list[str]]:
  return [[f"pending: `results/{MNIST_SNR0}` ({what})"] + ["—"] * (columns - 1)]


@table("noisy_mnist_snr0")
def noisy_mnist_snr0() -> str:
  """Per file and eval SNR: one pass, mean ± std (ddof 1) over draws; votes over all draws (%)."""
  header = ["result file", "eval SNR", "draws", "1 pass, mean ± std", "majority vote, all draws",
            "mean-prob vote, all draws"]
  rows = []
  for name, mc in _mnist_snr0():
    acc = 100 * np.asarray(mc["accuracy"])
    for i, s in enumerate(mc["snrs_db"]):
      std = acc[i].std(ddof=1) if acc.shape[1] > 1 else 0.0
      rows.append([f"`{name}`", _snr_text(s), str(acc.shape[1]),
                   f"{acc[i].mean():.2f} ± {std:.2f}",
                   f"{100 * mc['majority'][i][-1]:.2f}", f"{100 * mc['mean_prob'][i][-1]:.2f}"])
  return _markdown(header, rows or _pending("0 dB-trained model, 32 draws at 0 dB", len(header)))


@table("noisy_mnist_snr0_k")
def noisy_mnist_snr0_k() -> str:
  """Voting accuracy (%) against the number of passes K, all K from the same draws."""
  header = ["result file, eval SNR, vote"] + [f"K={k}" for k in VOTE_KS]
  rows = []
  for name, mc in _mnist_snr0():
    for i, s in enumerate(mc["snrs_db"]):
      for vote in ("majority", "mean_prob"):
        by_k = mc[vote][i]
        rows.append([f"`{name}`, {_snr_text(s)}, {vote.replace('_', '-')}"]
                    + [f"{100 * by_k[k - 1]:.2f}" if k <= len(by_k) else "—" for k in VOTE_KS])
  return _markdown(header, rows or _pending("votes for K = 1…32", len(header)))


# ---------------------------------------------------------------- noisy defense
DEFENSE = "noisy_defense"
DEFENSE_PAPER_GAIN = {"mnist": 0.5, "cifar10": 1.13}  # points over no inference noise (paper 2)


def _ci_text(mc: dict, i: int) -> str:
  """'mean ± half-width of the 95% interval (Student t)' over the draws of row i, in %."""
  import scipy.stats
  acc = 100 * np.asarray(mc["accuracy"][i])
  half = scipy.stats.t.ppf(0.975, len(acc) - 1) * acc.std(ddof=1) / math.sqrt(len(acc))
  return f"{acc.mean():.2f} ± {half:.2f}"


@table("noisy_defense")
def noisy_defense() -> str:
  """Per dataset and evaluation: accuracy (%) per inference SNR, single pass (mean ± 95% CI over
  draws) and mean-probability vote over all draws, on the adversarial and the same clean inputs."""
  header = ["dataset, evaluation", "inference SNR", "draws", "adversarial: 1 pass",
            "adversarial: vote", "clean: 1 pass", "clean: vote"]
  rows = []
  for path in _results(DEFENSE):
    name = os.path.basename(path)[:-5]
    for label, e in _read(path)["evals"].items():
      adv, clean = e["adversarial"], e["clean"]
      for i, snr in enumerate(adv["snrs_db"]):
        rows.append([f"{name}, {label}", _snr_text(snr), str(len(adv["accuracy"][i])),
                     _ci_text(adv, i), f"{100 * adv['mean_prob'][i][-1]:.2f}", _ci_text(clean, i),
                     f"{100 * clean['mean_prob'][i][-1]:.2f}"])
  return _markdown(header, rows or [["pending"] + ["—"] * (len(header) - 1)])


@table("noisy_defense_gain")
def noisy_defense_gain() -> str:
  """The gain of the best inference SNR over no noise, beside the paper's and the run lengths."""
  header = ["dataset, evaluation", "no noise: vote", "best SNR", "best: vote", "gain (vote)",
            "gain (1 pass, ± 95% CI)", "paper's gain", "target: epochs, train s"]
  rows = []
  for path in _results(DEFENSE):
    name = os.path.basename(path)[:-5]
    record = _read(path)
    t = record["target"]
    for label, e in record["evals"].items():
      g = e["gain"]
      if not g:
        continue
      rows.append([f"{name}, {label}", f"{100 * g['noiseless_vote']:.2f}",
                   _snr_text(g["best_snr_db"]), f"{100 * g['best_vote']:.2f}",
                   f"{100 * g['vote_gain']:+.2f}",
                   f"{100 * g['single_pass_gain']:+.2f} ± {100 * g['single_pass_ci95']:.2f}",
                   f"+{DEFENSE_PAPER_GAIN.get(name.split('_')[0], math.nan):g}" if label.startswith("blackbox")
                   else "—", f"{t['epochs']}, " + (f"{t['train_seconds']:.0f}"
                                                   if t["train_seconds"] else "see note")])
  return _markdown(header, rows or [["pending"] + ["—"] * (len(header) - 1)])


# ---------------------------------------------------------------- quickstart and summary
@table("quickstart")
def quickstart() -> str:
  header = ["result file", "steps", "test accuracy", "train s", "run wall s", "machine",
            "date (UTC)"]
  rows = []
  for path in _results("quickstart"):
    r = _read(path)
    m, machine = r["final_metrics"], r["machine"]
    rows.append([f"`results/{os.path.basename(path)}`", f"{m['steps']:,}",
                 f"{m['test_accuracy']:.4f}", f"{m['train_seconds']:.1f}",
                 f"{r['run_wall_seconds']:.1f}",
                 f"{machine['cpu_count']} × {machine['cpu']} ({', '.join(machine['devices'])})",
                 r["date_utc"][:10]])
  return _markdown(header, rows)


def _dni(file: str, cell: str, train_snr: float) -> tuple[dict, Callable]:
  """The run, and `at(key, snr)`: its Monte Carlo row (over draws or K) at eval `snr`."""
  run = next(r for r in _load(DNI, file)
             if r["cell"] == cell and float(r["train_snr_db"]) == train_snr)
  return run, lambda key, snr: np.asarray(run["mc"][key])[_snrs(run["mc"]).index(snr)]


def _summary_noisy() -> str:
  with_0db = [(name, mc) for name, mc in _mnist_snr0() if 0.0 in _snrs(mc)]
  if not with_0db:
    return "pending (a 32-draw evaluation at 0 dB is being rerun)"
  _, mc = max(with_0db, key=lambda f: len(f[1]["accuracy"][0]))  # the most draws
  i = _snrs(mc).index(0.0)
  return (f"trained at 0 dB: 1 pass {100 * np.mean(mc['accuracy'][i]):.2f}%, vote over "
          f"{len(mc['accuracy'][i])} passes {100 * mc['majority'][i][-1]:.2f}% majority / "
          f"{100 * mc['mean_prob'][i][-1]:.2f}% mean-prob (paper 99.5%)")


@table("summary")
def summary() -> str:
  """The top-level README's one-line results, each from its experiment's results/."""
  qs = _load("quickstart", "digits_mlp.json")
  quick = (f"test accuracy {qs['final_metrics']['test_accuracy']:.4f}, "
           f"{qs['final_metrics']['train_seconds']:.1f} s of training "
           f"({qs['run_wall_seconds']:.0f} s in all)")
  (clean, c_at), (_, p_at) = _dni("seqmnist.json", "lstm", math.inf), _dni(
      "seqmnist_pgrad.json", "lstm", 0.0)
  seq = (f"{100 * clean['clean_test']:.2f}% clean; at eval 0 dB: clean-trained "
         f"{100 * c_at('accuracy', 0.0).mean():.2f}%, DNI-trained at 0 dB (gradient through the "
         f"noise power) {100 * p_at('accuracy', 0.0).mean():.2f}%, "
         f"{100 * p_at('majority', 0.0)[-1]:.2f}% with {len(p_at('majority', 0.0))}-pass "
         "majority voting")
  (clean, c_at), (_, p_at) = _dni("ptb.json", "lstm", math.inf), _dni("ptb_pgrad.json", "lstm", 0.0)
  ptb = (f"1 epoch (Adam): test perplexity {_perplexity(clean['clean_perplexity'])} clean; at "
         f"eval 0 dB on every product: clean-trained {_perplexity(c_at('perplexity', 0.0).mean())}"
         f", DNI-trained at 0 dB (P-gradient) {_perplexity(p_at('perplexity', 0.0).mean())}")
  top1 = {}
  for v in ("spatial32", "dct24", "spatial32" + SEEDED, "dct24" + SEEDED):
    path = _results(FREQ, f"tiny_imagenet_{v}.json")
    top1[v] = f"{100 * _read(path[0])['test_top1']:.2f}%" if path else "pending"
  tiny = (f"spatial 32² {top1['spatial32']}, DCT-24 {top1['dct24']}; rerun with seeded input "
          f"statistics: spatial 32² {top1['spatial32' + SEEDED]}, DCT-24 {top1['dct24' + SEEDED]}")
  return _markdown(["what", "result", "result files"], [
      ["quickstart, digits MLP, 1,000 steps", quick,
       "`experiments/quickstart/results/digits_mlp.json`"],
      ["MNIST at eval SNR 0 dB, LeNet (avg pool, 512 hidden), 20 epochs", _summary_noisy(),
       f"`experiments/noisy_inference/results/{MNIST_SNR0}`"],
      ["sequential MNIST, LSTM 128, 3 epochs", seq,
       f"`experiments/{DNI}/results/seqmnist.json`, `seqmnist_pgrad.json`"],
      ["PTB word LM, 2 × 200 LSTM, state carried across batches", ptb,
       f"`experiments/{DNI}/results/ptb.json`, `ptb_pgrad.json`"],
      ["Tiny-ImageNet, ResNet-18 at width 16, 3 epochs", tiny,
       f"`experiments/{FREQ}/results/tiny_imagenet_*.json`"],
      ["noise at inference vs black-box transfer PGD, adversarially trained LeNet / small CNN",
       _summary_defense(), f"`experiments/{DEFENSE}/results/*.json`"],
      *(row() for row in SUMMARY_ROWS)])


def _summary_defense() -> str:
  parts = []
  for path in _results(DEFENSE):
    name = os.path.basename(path)[:-5]
    g = _read(path)["evals"].get("blackbox_pgd", {}).get("gain")
    if g:
      parts.append(f"{name}: {100 * g['noiseless_vote']:.2f}% without noise, "
                   f"{100 * g['best_vote']:.2f}% at {_snr_text(g['best_snr_db'])} "
                   f"({100 * g['vote_gain']:+.2f}; paper +{DEFENSE_PAPER_GAIN.get(name.split('_')[0], math.nan):g})")
  return "; ".join(parts) or "pending"


# ---------------------------------------------------------------- per-paper table modules
@table("claims")
def claims_table() -> str:
  """Every paper's claims with our verdict (experiments/*/results/claims.json)."""
  sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
  import claims
  return claims.markdown_table(claims.load())


def _register_paper_tables() -> None:
  """Each experiments/<paper>/readme_tables.py registers its own tables through `register(kit)`
  (kit: this module's registry and helpers, which read ROOT at call time)."""
  import importlib.util
  import types
  kit = types.SimpleNamespace(table=table, _results=_results, _read=_read, _load=_load,
                              _markdown=_markdown, summary_row=SUMMARY_ROWS.append)
  here = os.path.dirname(os.path.abspath(__file__))
  for path in sorted(glob.glob(os.path.join(here, "*", "readme_tables.py"))):
    paper = os.path.basename(os.path.dirname(path))
    spec = importlib.util.spec_from_file_location(f"readme_tables_{paper}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.register(kit)


_register_paper_tables()


# ---------------------------------------------------------------- driver
def readmes(root: str | None = None) -> list[str]:
  root = root or ROOT
  return ([os.path.join(root, "README.md")]
          + sorted(glob.glob(os.path.join(root, "experiments", "*", "README.md"))))


def render(text: str, where: str = "README") -> str:
  """`text` with every marked table rewritten; an unknown or unclosed marker is an error."""
  names = re.findall(r"<!-- table:([\w.-]+) -->", text)
  closed = [m.group(2) for m in MARKER.finditer(text)]
  if names != closed:
    raise SystemExit(f"{where}: table marker(s) {sorted(set(names) - set(closed))} have no "
                     "matching <!-- /table:NAME -->")
  unknown = sorted(set(names) - set(TABLES))
  if unknown:
    raise SystemExit(f"{where}: unknown table(s) {unknown}; known: {sorted(TABLES)}")

  def rewrite(m: re.Match) -> str:
    indent, name = m.group(1), m.group(2)
    body = "".join(f"{indent}{line}\n" for line in TABLES[name]().splitlines())
    return f"{indent}<!-- table:{name} -->\n{body}{indent}{m.group(4)}"

  return MARKER.sub(rewrite, text)


def main(argv: list[str] | None = None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--check", action="store_true",
                      help="compare only; exit 1 if a table differs")
  args = parser.parse_args(argv)
  stale = []
  for path in readmes():
    if not os.path.isfile(path):
      continue
    with open(path) as f:
      text = f.read()
    where = os.path.relpath(path, ROOT)
    new = render(text, where)
    if new == text:
      continue
    if args.check:
      old = {m.group(2): m.group(3) for m in MARKER.finditer(text)}
      stale += [f"{where}: {m.group(2)}" for m in MARKER.finditer(new)
                if old[m.group(2)] != m.group(3)]
    else:
      with open(path + ".tmp", "w") as f:
        f.write(new)
      os.replace(path + ".tmp", path)
      print(f"rewrote {where}")
  if stale:
    print("README tables differ from results/*.json; run `python experiments/tables.py`:\n  "
          + "\n  ".join(stale), file=sys.stderr)
  return 1 if stale else 0


if __name__ == "__main__":
  sys.exit(main())
