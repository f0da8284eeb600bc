"""configs/: one parser for config arguments (configs.common.parse_arg), every config and variant
builds, the PTB recipes are Zaremba et al.'s, and a renamed data field is a clear error."""

import importlib
import math
import pathlib
import re

import ml_collections
import pytest

from configs import dni_ptb, dni_seqmnist
from configs.common import parse_arg

CONFIGS = sorted(p.stem for p in (pathlib.Path(__file__).parents[2] / "configs").glob("*.py")
                 if p.stem not in ("__init__", "common"))


def test_parse_arg_types_bare_tokens_and_defaults():
  args = parse_arg("snr=inf, tiny,steps=3,name=b,lr=1e-3", snr=0.0, tiny=False, steps=1, name="a",
                   lr=1.0, short=True)
  assert isinstance(args, ml_collections.ConfigDict)
  assert args.to_dict() == {"snr": math.inf, "tiny": True, "steps": 3, "name": "b", "lr": 1e-3,
                            "short": True}
  assert parse_arg(None, tiny=False).tiny is False and parse_arg("", x=2).x == 2
  for text, value in (("true", True), ("1", True), ("False", False), ("0", False)):
    assert parse_arg(f"tiny={text}", tiny=True if not value else False).tiny is value
  assert parse_arg("snr=-inf", snr=0.0).snr == -math.inf
  five = parse_arg("snr=5", snr=0.0).snr
  assert five == 5.0 and isinstance(five, float)


@pytest.mark.parametrize("arg, message", [
    ("tiyn", r"unknown config argument 'tiyn' in 'tiyn'; known keys: snr \(float, default 0.0\), "
             r"tiny \(bool, default False\)"),
    ("snr=abc", r"config argument snr='abc' cannot be read as float; known keys: snr"),
    ("tiny=yes", r"config argument tiny='yes' cannot be read as bool"),
    ("snr", r"config argument 'snr' needs a value \(snr=...\)"),
    ("tiny,tiny=0", r"config argument 'tiny' given twice"),
])
def test_parse_arg_errors_name_the_key_and_the_known_ones(arg, message):
  with pytest.raises(ValueError, match=message):
    parse_arg(arg, snr=0.0, tiny=False)


def test_parse_arg_int_rejects_fractions():
  with pytest.raises(ValueError, match="steps='1.5' cannot be read as int"):
    parse_arg("steps=1.5", steps=1)


def _variants(module):
  """Every argument a config documents, each with and without tiny."""
  if hasattr(module, "VARIANTS"):
    args = [f"variant={v}" for v in module.VARIANTS]
  elif hasattr(module, "TRAIN_SNRS"):
    args = [f"snr={s:g}" for s in module.TRAIN_SNRS]
  elif hasattr(module, "CELLS"):
    args = [f"cell={c}" for c in module.CELLS] + ["cell=rnn,short"]
  elif module is dni_ptb:
    args = ["size=small", "size=medium", "short", "quick", "size=medium,short"]
  else:
    args = []
  return [None, "tiny"] + args + [f"{a},tiny" for a in args]


@pytest.mark.parametrize("name", CONFIGS)
def test_every_config_and_variant_builds_commented_and_rejects_unknown_keys(name):
  module = importlib.import_module(f"configs.{name}")
  assert "Command" in module.__doc__ and "Arguments (" in module.__doc__
  for arg in _variants(module):
    c = module.get_config(arg)
    assert c.num_steps > 0 or c.num_epochs > 0, arg
    assert isinstance(c.evals, ml_collections.ConfigDict), arg
    for evaluator in c.evals.values():
      assert "type" in evaluator, arg
    assert "num_steps" not in c.data, arg  # renamed to data.seq_len
  with pytest.raises(ValueError, match="unknown config argument 'bogus'"):
    module.get_config("bogus")


def test_every_field_a_config_sets_is_commented():
  """A field assignment carries a comment on its line or the line above (blocks are exempt)."""
  assignment = re.compile(r"^\s*[a-z]\.[\w.]+(\s*=\s*[a-z]\.[\w.]+)*\s*=")
  missing = []
  for path in sorted((pathlib.Path(__file__).parents[2] / "configs").glob("*.py")):
    lines = path.read_text().splitlines()
    for i, line in enumerate(lines):
      if (assignment.match(line) and not line.endswith("ConfigDict()") and "#" not in line
          and not lines[i - 1].strip().startswith("#")):
        missing.append(f"{path.name}:{i + 1}: {line.strip()}")
  assert not missing, "\n".join(missing)


def test_seqmnist_cells():
  assert [dni_seqmnist.get_config(f"cell={c}").model.cell for c in ("lstm", "rnn", "gru")] == \
      ["lstm", "rnn", "gru"]
  c = dni_seqmnist.get_config("cell=rnn,tiny,short")
  assert (c.model.cell, c.data.source, c.num_steps) == ("rnn", "seq:digits", 6)
  with pytest.raises(ValueError, match="cell='lstmm' is not one of: lstm, rnn, gru"):
    dni_seqmnist.get_config("cell=lstmm")


def _zaremba(c):
  o, m = c.optimizer, c.model
  t = c.data.seq_len
  # The trainer's loss is the mean over B*T tokens: their lr 1 and clip 5 on the loss summed over
  # a row's T steps are lr T and clip 5/T here.
  return dict(layers=m.num_layers, hidden=m.hidden, embed=m.embed_dim, dropout=m.dropout,
              init=m.init_scale, tied=m.tie_weights, opt=o.name, momentum=o.momentum,
              lr=o.learning_rate / t, clip=o.grad_clip_norm * t, schedule=o.schedule,
              decay=o.decay_factor, begin=o.decay_begin_epochs, every=o.decay_every_epochs,
              epochs=c.num_epochs, batch=c.data.batch_size, seq_len=t, carry=m.carry_state)


def test_ptb_recipes_are_zarembas():
  common = dict(layers=2, tied=False, opt="sgd", momentum=0.0, lr=1.0, clip=5.0,
                schedule="exponential", every=1.0, batch=20, carry=True)
  small = dict(common, hidden=200, embed=200, dropout=0.0, init=0.1, decay=0.5, begin=4.0,
               epochs=13, seq_len=20)
  medium = dict(common, hidden=650, embed=650, dropout=0.5, init=0.05, decay=1 / 1.2, begin=6.0,
                epochs=39, seq_len=35)
  assert _zaremba(dni_ptb.get_config()) == pytest.approx(small)
  assert _zaremba(dni_ptb.get_config("size=medium")) == pytest.approx(medium)
  assert dni_ptb.get_config("size=small,short").num_epochs == 2
  quick = dni_ptb.get_config("quick")
  assert (quick.optimizer.name, quick.data.seq_len, quick.num_epochs) == ("adam", 35, 1)
  with pytest.raises(ValueError, match="config argument size='large' is not one of: small, medium"):
    dni_ptb.get_config("size=large")
  with pytest.raises(ValueError, match="pick one"):
    dni_ptb.get_config("short,quick")


def test_renamed_data_num_steps_is_a_clear_error():
  from freqnoise.data.sequences import load_sequence_splits
  data = dni_ptb.get_config("tiny").data
  data.num_steps = 35
  with pytest.raises(ValueError, match="data.num_steps was renamed to config.data.seq_len"):
    load_sequence_splits(data)


def test_pyproject_installs_configs_beside_freqnoise():
  """`pip install -e .` maps the packages pyproject's find rule selects: configs must be one, so
  notebooks (cwd colab/) and scripts import it from any directory without PYTHONPATH."""
  import tomllib

  import setuptools
  repo = pathlib.Path(__file__).parents[2]
  rule = tomllib.loads((repo / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
  found = setuptools.find_packages(str(repo), include=rule["find"]["include"])
  assert "configs" in found and "freqnoise" in found
  assert not [p for p in found if p.startswith(("tests", "experiments", "colab"))], found


def test_data_paths_name_the_same_folder_from_any_working_directory(tmp_path, monkeypatch):
  from configs import freq_imagenette, noisy_defense
  repo = pathlib.Path(__file__).parents[2]
  shared = (repo.parent / "shared" / "data").resolve()
  monkeypatch.chdir(repo)  # the text recorded by every result so far
  assert freq_imagenette.get_config().data.source == "imagefolder:../shared/data/imagenette"
  for cwd in (tmp_path, repo / "colab"):
    monkeypatch.chdir(cwd)
    for config, name in ((freq_imagenette.get_config(), "imagenette"),
                         (dni_seqmnist.get_config(), "mnist"), (dni_ptb.get_config(), "ptb"),
                         (noisy_defense.get_config("data=cifar10"), "cifar10-jpeg")):
      folder = config.data.source.rpartition(":")[2]
      assert (cwd / folder).resolve() == shared / name, (cwd, config.data.source)


def test_configs_import_without_pythonpath_from_another_directory(tmp_path):
  """The installed package, as a user runs it: `cd /tmp && python -c 'import configs.X'`."""
  import os
  import subprocess
  import sys
  env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
  code = "import configs.freq_imagenette as m; print(m.get_config().data.source)"
  out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True,
                       text=True, timeout=60)
  assert out.returncode == 0, out.stderr[-2000:]
  folder = out.stdout.strip().rpartition(":")[2]
  repo = pathlib.Path(__file__).parents[2]
  assert (tmp_path / folder).resolve() == (repo.parent / "shared" / "data" / "imagenette").resolve()
