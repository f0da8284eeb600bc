"""freqnoise/cli.py: a DCT channel list given on the command line, as the README says it can be."""

import pathlib

import pytest
from absl import flags
from ml_collections import config_flags

from freqnoise.data.transforms import build_transform

# ml_collections loads a config file with importlib's load_module (its own deprecation).
pytestmark = pytest.mark.filterwarnings("ignore:the load_module:DeprecationWarning")
CONFIG = str(pathlib.Path(__file__).parents[1] / "configs" / "freq_imagenette.py")


def _parse(*overrides: str):
  """The config `freqnoise.main` would get from `--config=freq_imagenette.py:tiny OVERRIDES`."""
  argv = ["prog", f"--config={CONFIG}:tiny", *overrides]
  values = flags.FlagValues()
  holder = config_flags.DEFINE_config_file("config", None, "", flag_values=values,
                                           lock_config=True, sys_argv=argv)
  values(argv)
  return holder.value


@pytest.mark.parametrize("text, channels, count", [
    ("[0,1,8]", (0, 1, 8), 3), ("(64, 0)", (64, 0), 2), ("8,1,0", (8, 1, 0), 3), ("6", 6, 6),
    ("192", 192, 192)])
def test_channel_list_or_preset_on_the_command_line(text, channels, count):
  c = _parse(f"--config.input.channels={text}")
  assert c.input.channels == channels
  transform = build_transform(c.input)
  assert transform.num_channels == count
  if count == 3:
    assert transform.channels.tolist() == [0, 1, 8]


def test_the_config_default_and_a_python_assignment_keep_working():
  c = _parse()
  assert c.input.channels == 24
  c.input.channels = [3, 2]  # a list in Python, as experiments' --set and run.py assign it
  assert build_transform(c.input).channels.tolist() == [2, 3]
  assert c.to_dict()["input"]["channels"] == [3, 2]


@pytest.mark.parametrize("text, message", [
    ("[0,1,", r"'\[0,1,' is neither a preset size \(e.g. 24\) nor a list of channel indices"),
    ("[0,1.5]", r"'\[0,1.5\]' is neither a preset size"),
    ("true", r"'true' is neither a preset size"),
    ("[0,1,300]", r"channels must be unique indices in \[0, 192\), got \[0, 1, 300\]"),
    ("[1,1]", r"channels must be unique indices"),
    ("7", r"no published channel preset with 7 channels; available: \[6, 24, 32, 48, 64, 192\]"),
])
def test_a_malformed_channel_list_is_a_flag_error_naming_it(text, message):
  with pytest.raises(flags.IllegalFlagValueError,
                     match=r"flag --config.input.channels=.*: " + message):
    _parse(f"--config.input.channels={text}")
