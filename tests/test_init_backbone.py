"""`config.init_from` of a classification run into a detector: the ResNet's params and BN statistics
fill the Mask R-CNN's `backbone`, everything else starts fresh; a mismatched backbone is refused."""

from __future__ import annotations

import json
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest
from flax import traverse_util
from PIL import Image

from configs import freq_imagenette, maskrcnn_coco
from freqnoise import train
from freqnoise.checkpoint import CheckpointError
from freqnoise.detection.model import LOSS_NAMES
from freqnoise.experiment import Experiment
from freqnoise.init_from import initialize_from
from freqnoise.train import train_and_evaluate
from tests.conftest import write_image_folder

# pycocotools' Cython decode warns under NumPy 2 (the trainer's COCO evaluation calls it).
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


def write_yolo_seg(root, n: int = 4, size: int = 128):
  """`root/images/train2017/i.jpg` with one or two bright rectangles on noise, their YOLO-seg
  polygons in `root/labels/train2017/i.txt`, two classes in `root/classes.txt`."""
  rng = np.random.default_rng(0)
  (root / "images" / "train2017").mkdir(parents=True)
  (root / "labels" / "train2017").mkdir(parents=True)
  (root / "classes.txt").write_text("box\nbar\n")
  for i in range(n):
    img = (rng.random((size, size, 3)) * 60).astype(np.uint8)
    lines = []
    for k in range(1 + i % 2):
      x0, y0 = rng.integers(0, size // 2, 2)
      x1, y1 = x0 + rng.integers(24, size // 2), y0 + rng.integers(24, size // 2)
      img[y0:y1, x0:x1] = 200 + 40 * k
      poly = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float64) / size
      lines.append(" ".join([str(k)] + [f"{v:.6f}" for v in poly.ravel()]))
    Image.fromarray(img).save(root / "images" / "train2017" / f"{i:012d}.jpg")
    (root / "labels" / "train2017" / f"{i:012d}.txt").write_text("\n".join(lines) + "\n")
  return root


@pytest.fixture(scope="module", autouse=True)
def fast_initialisers():
  """Non-partitionable threefry, whose parameter initialisers XLA:CPU compiles ~3x faster (as
  tests/detection do): the values differ, and nothing here depends on which values they are."""
  saved = jax.config.jax_threefry_partitionable
  jax.config.update("jax_threefry_partitionable", False)
  yield
  jax.config.update("jax_threefry_partitionable", saved)


@pytest.fixture(scope="module")
def runs(tmp_path_factory, fast_initialisers):
  """(the workdir of a resnet18 classifier trained 2 steps on DCT input, the detector's yolo-seg
  folder, the module's temporary folder)."""
  tmp = tmp_path_factory.mktemp("init_backbone")
  write_image_folder(tmp / "images")
  c = freq_imagenette.get_config("variant=dct24,tiny=True")  # resnet18, width 4, frequency stem
  c.data.source = f"imagefolder:{tmp / 'images'}"
  c.data.cache_dir = str(tmp / "cache")
  c.num_steps = c.eval_every = c.checkpoint_every = 2
  c.log_every = 1
  c.num_devices = 1  # (one of the 4 fake CPU devices: less to compile and shard)
  train_and_evaluate(c, str(tmp / "classifier"))
  return tmp / "classifier", write_yolo_seg(tmp / "yolo"), tmp


def detector(runs, **fields):
  """The tiny dct24 Mask R-CNN config (ResNet-18 width 4, as the classifier) on the yolo-seg
  folder, init_from the classifier, 1 step; `fields` as {'model.width': 8, 'num_devices': 2}."""
  classifier, yolo, _ = runs
  c = maskrcnn_coco.get_config("variant=dct24,scale=tiny")  # resnet18 width 4, frequency stem
  c.data.source = f"yolo-seg:{yolo}"
  c.init_from = str(classifier)
  c.num_steps = 1
  c.num_devices = 1  # (2 images a step)
  c.log_every = c.eval_every = c.checkpoint_every = 1
  c.evals = {}
  for k, v in fields.items():
    *block, field = k.split(".")
    (c[block[0]] if block else c)[field] = v
  return c


def saved_variables(workdir) -> dict:
  """{('params' | 'batch_stats', *path): array} of a run's latest checkpoint, read as saved."""
  step = max(int(s.name) for s in (workdir / "checkpoints").iterdir() if s.name.isdigit())
  tree = ocp.PyTreeCheckpointer().restore(workdir / "checkpoints" / str(step) / "default")
  return {**{("params", *k): v for k, v in traverse_util.flatten_dict(tree["params"]).items()},
          **{("batch_stats", *k): v for k, v in
             traverse_util.flatten_dict(tree["model_state"]["batch_stats"]).items()}}


def stand_in_state(experiment, value: float = 0.25):
  """The detector's TrainState layout (traced, not compiled: seconds instead of a minute of init)
  with every array `value`, so the untouched ones are recognisable."""
  shapes = jax.eval_shape(experiment.init_state, experiment.key("init"))
  return jax.tree.map(lambda s: jnp.full(s.shape, value, s.dtype), shapes)


def backbone_of(state) -> dict:
  """{('params' | 'batch_stats', *path): array} of a detector state's `backbone`."""
  params = traverse_util.flatten_dict(state.params["backbone"])
  stats = traverse_util.flatten_dict(state.model_state["batch_stats"]["backbone"])
  return {**{("params", *k): v for k, v in params.items()},
          **{("batch_stats", *k): v for k, v in stats.items()}}


def assert_transferred(start, fresh, source) -> None:
  """`start`'s backbone is the classifier's (`source`) bit for bit, without its `fc`; the FPN, RPN,
  heads, the other collections, step and optimizer state are `fresh`'s."""
  got = backbone_of(start)
  assert ("params", "fc", "kernel") in source
  assert set(got) == {k for k in source if k[:2] != ("params", "fc")} and len(got) == 100
  for k, v in got.items():
    np.testing.assert_array_equal(np.asarray(v), np.asarray(source[k]), err_msg=str(k))
  assert sorted(k for k in start.params if k != "backbone") == ["box_head", "fpn", "mask_head",
                                                                "rpn"]
  rest = lambda s: (s.step, {k: v for k, v in s.params.items() if k != "backbone"},
                    {k: v for k, v in s.model_state.items() if k != "batch_stats"},
                    {k: v for k, v in s.model_state["batch_stats"].items() if k != "backbone"},
                    s.opt_state)
  jax.tree.map(lambda a, b: np.testing.assert_array_equal(np.asarray(a), np.asarray(b)),
               rest(start), rest(fresh))


def test_a_classifier_backbone_fills_the_detector_and_the_rest_stays_fresh(runs, capsys):
  classifier, _, tmp = runs
  experiment = Experiment(detector(runs), str(tmp / "probe"))
  fresh = stand_in_state(experiment)
  start = initialize_from(experiment, fresh, str(classifier))
  assert_transferred(start, fresh, saved_variables(classifier))
  assert (f"init_from: 100 backbone arrays (params and BN statistics) from resnet18 at step 2 of "
          f"{classifier}") in capsys.readouterr().out


def test_a_backbone_of_another_width_is_refused_naming_the_path(runs):
  classifier, _, tmp = runs
  experiment = Experiment(detector(runs, **{"model.width": 8}), str(tmp / "wide"))
  with pytest.raises(CheckpointError, match=r"(?s)first params/layer1_0/bn1/bias: source \(4,\) "
                                            r"float32, this run \(8,\) float32.*depth/width/stem "
                                            r"\(18/8/frequency\) must agree.*input channels"):
    initialize_from(experiment, stand_in_state(experiment), str(classifier))


def test_sources_that_cannot_give_a_backbone_are_refused_before_reading(runs):
  classifier, _, tmp = runs
  experiment = Experiment(detector(runs), str(tmp / "probe"))
  state = stand_in_state(experiment)
  other = tmp / "mobilenet"
  other.mkdir()
  (other / "config.json").write_text(json.dumps({"model": {"name": "mobilenet_v2"}}))
  with pytest.raises(CheckpointError, match="run of model 'mobilenet_v2': a maskrcnn backbone "
                                            "starts from a classification run of resnet18 or "
                                            "resnet50"):
    initialize_from(experiment, state, str(other))
  shuffled = tmp / "other_channels"
  shuffled.mkdir()
  shutil.copy(classifier / "config.json", shuffled)
  with np.load(classifier / "input_stats.npz") as z:
    stats = {k: z[k] for k in z.files}
  np.savez(shuffled / "input_stats.npz", **{**stats, "channels": stats["channels"][::-1]})
  with pytest.raises(CheckpointError, match=r"read the DCT channels \[137, 136.*this run reads "
                                            r"\[0, 1, 2"):
    initialize_from(experiment, state, str(shuffled))


def test_the_trainer_starts_a_detector_from_a_classifier(runs, monkeypatch, capsys):
  """The trainer's own fresh state (2 devices) goes through init_from and trains a step."""
  classifier, _, tmp = runs
  seen = []

  def spy(experiment, state, source):
    start = initialize_from(experiment, state, source)
    seen.append(jax.device_get((start, state)))  # (the train step donates the state)
    return start

  monkeypatch.setattr(train, "initialize_from", spy)
  result = train_and_evaluate(detector(runs, num_devices=2), str(tmp / "detector"))
  assert result["steps"] == 1
  assert_transferred(*seen[0], saved_variables(classifier))
  out = capsys.readouterr().out
  assert f"initialised from the latest checkpoint of {classifier}" in out
  rows = map(json.loads, (tmp / "detector" / "metrics.jsonl").read_text().splitlines())
  losses = [v for r in rows if r.get("split") == "train" for k, v in r.items() if k in LOSS_NAMES]
  assert len(losses) == len(LOSS_NAMES) and np.all(np.isfinite(losses))
