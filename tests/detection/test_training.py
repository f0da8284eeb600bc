"""Mask R-CNN through the one trainer (`train_and_evaluate`, config.loss='maskrcnn') on a tiny
YOLO-seg folder: it trains, logs the five losses, scores COCO AP and draws its detections; a run
stopped and resumed ends bitwise where an uninterrupted one does; the DCT variant trains on its
32x32x24 input; the input statistics are those of the images' content, not of their padding; and
bad configs fail before any data is read or file written.

Every `train_and_evaluate` jits its steps afresh; the module turns on JAX's persistent compilation
cache (in a temporary folder) so that runs of one config compile once (~1 min each on CPU).
"""

import contextlib
import io
import json
import pathlib

import flax.linen as nn
import jax
import numpy as np
import pytest
from jax.experimental.compilation_cache import compilation_cache
from PIL import Image, ImageDraw
from pycocotools.coco import COCO

from configs import maskrcnn_coco
from freqnoise.detection.model import LOSS_NAMES
from freqnoise.evaluators import detection
from freqnoise.experiment import INPUT_STATS, Experiment, check_config
from freqnoise.metrics import read_metrics
from freqnoise.train import train_and_evaluate

# pycocotools' Cython decode warns under NumPy 2; COCOeval and loadRes call it directly.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

CLASS_NAMES = ("red", "green", "blue")
COLOURS = ((230, 60, 60), (60, 230, 60), (60, 60, 230))
# Per image (96 high x 128 wide): (YOLO class, shape, x1, y1, x2, y2) in pixels.
SHAPES = ([(0, "rect", 10, 12, 60, 70), (2, "triangle", 70, 10, 120, 60)],
          [(1, "rect", 30, 30, 100, 90)],
          [(0, "rect", 5, 50, 40, 90), (1, "triangle", 50, 5, 110, 45), (2, "rect", 80, 55, 124, 92)],
          [(2, "triangle", 20, 10, 90, 80)])


def write_yolo_seg(root: pathlib.Path) -> pathlib.Path:
  """`root/images/train2017/00000000000{1..4}.jpg` with coloured rectangles and triangles on a dark
  background, their polygons in `root/labels/train2017/*.txt`, and `root/classes.txt`."""
  (root / "images" / "train2017").mkdir(parents=True)
  (root / "labels" / "train2017").mkdir(parents=True)
  h, w = 96, 128
  for i, shapes in enumerate(SHAPES):
    image = Image.new("RGB", (w, h), (20, 20, 20))
    draw, lines = ImageDraw.Draw(image), []
    for cls, kind, x1, y1, x2, y2 in shapes:
      polygon = ([(x1, y1), (x2, y1), (x2, y2), (x1, y2)] if kind == "rect"
                 else [(x1, y2), ((x1 + x2) / 2, y1), (x2, y2)])
      draw.polygon(polygon, fill=COLOURS[cls])
      lines.append(" ".join([str(cls)] + [f"{x / w:.6f} {y / h:.6f}" for x, y in polygon]))
    image.save(root / f"images/train2017/{i + 1:012d}.jpg", quality=95)
    (root / f"labels/train2017/{i + 1:012d}.txt").write_text("\n".join(lines) + "\n")
  (root / "classes.txt").write_text("".join(f"{n}\n" for n in CLASS_NAMES))
  return root


@pytest.fixture(scope="module", autouse=True)
def compile_once(tmp_path_factory):
  """The persistent compilation cache, so a config's steps compile once in this module; and
  non-partitionable threefry, whose parameter initialisers XLA:CPU compiles ~3x faster (the
  values differ; nothing here depends on them)."""
  fields = ("jax_compilation_cache_dir", "jax_persistent_cache_min_compile_time_secs",
            "jax_persistent_cache_min_entry_size_bytes", "jax_threefry_partitionable")
  saved = {k: getattr(jax.config, k) for k in fields}
  jax.config.update("jax_compilation_cache_dir", str(tmp_path_factory.mktemp("xla_cache")))
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
  jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
  jax.config.update("jax_threefry_partitionable", False)
  compilation_cache.reset_cache()  # (the cache is set up once per process, at the first compile)
  yield
  for k, v in saved.items():
    jax.config.update(k, v)
  compilation_cache.reset_cache()


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> pathlib.Path:
  return write_yolo_seg(tmp_path_factory.mktemp("data") / "shapes")


def tiny(folder, variant: str = "spatial"):
  c = maskrcnn_coco.get_config(f"variant={variant},scale=tiny")
  c.data.source = f"yolo-seg:{folder}"
  c.num_devices = 1  # one device compiles faster; sharding is the trainer's own tests' business
  return c


@pytest.fixture(scope="module")
def spatial_run(tmp_path_factory, folder):
  workdir = tmp_path_factory.mktemp("spatial")
  return workdir, train_and_evaluate(tiny(folder), str(workdir))


def test_trains_logs_the_five_losses_and_scores_coco_ap(spatial_run, folder):
  workdir, result = spatial_run
  assert result["steps"] == 4
  with open(workdir / "final_metrics.json") as f:
    final = json.load(f)
  for key in ("test_box_AP", "test_box_AP50", "test_mask_AP", "test_mask_AP50", "coco/box_AP",
              "coco/box_AP50", "coco/mask_AP", "coco/mask_AP50"):
    assert final[key] == pytest.approx(result[key])
  # The evaluation is noiseless (config.eval_noise off), so the `coco` evaluator's own key draws
  # nothing and it scores what the trainer's last eval scored (under noise each draws its own
  # chip: tests/evaluators/test_detection.py).
  assert final["coco/box_AP"] == final["test_box_AP"]
  assert final["coco/mask_AP"] == final["test_mask_AP"]
  # The scale of those numbers, on a constructed case: the split's own ground truth (boxes and
  # masks, original pixels) scored as detections is exactly 1.0 box and mask AP.
  experiment = Experiment(tiny(folder), str(workdir))
  assert exact_ap(experiment) == {"box_AP": 1.0, "box_AP50": 1.0, "mask_AP": 1.0, "mask_AP50": 1.0}
  rows = read_metrics(str(workdir))
  train = [r for r in rows if r["split"] == "train"]
  assert [r["step"] for r in train] == [2, 4]
  for r in train:
    assert {"loss", *LOSS_NAMES} <= set(r)
    assert all(np.isfinite(r[k]) and r[k] >= 0 for k in LOSS_NAMES), r
    assert r["loss"] == pytest.approx(sum(r[k] for k in LOSS_NAMES), rel=1e-5)
  assert 0.6 < train[0]["rpn_cls"] < 0.75  # ~log 2: the RPN starts near chance
  test = [r for r in rows if r["split"] == "test"]
  assert [r["step"] for r in test] == [4] and test[0]["box_AP"] == final["test_box_AP"]
  with Image.open(workdir / "detections_test.png") as picture:
    assert picture.format == "PNG" and picture.size == (2 * 128, 128)  # 2 images side by side


def exact_ap(experiment) -> dict[str, float]:
  """`freqnoise.evaluators.detection.score` of the test split's ground truth as detections."""
  gt = experiment.splits.meta["coco_gt"]["test"]
  coco = COCO()
  coco.dataset = gt
  with contextlib.redirect_stdout(io.StringIO()):
    coco.createIndex()
  results = [{"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"],
              "score": 1.0, "segmentation": coco.annToRLE(a)} for a in gt["annotations"]]
  for r in results:
    r["segmentation"]["counts"] = r["segmentation"]["counts"].decode()
  assert len(results) == sum(len(shapes) for shapes in SHAPES)
  scores = detection.score(experiment, "test", results)
  return {k: scores[k] for k in ("box_AP", "box_AP50", "mask_AP", "mask_AP50")}


def test_input_statistics_are_fitted_on_the_content_and_padding_is_zero(tmp_path, folder):
  """The 96x128 images letterboxed to 128²: statistics of their content pixels only (NumPy), and
  the padding rows 0 after normalisation, in evaluation (`size`) and training (`targets`)."""
  experiment = Experiment(tiny(folder), str(tmp_path))
  train = experiment.splits.train.head(len(experiment.splits.train))
  images, size = train["image"], train["size"]
  np.testing.assert_array_equal(size, np.tile([96, 128], (4, 1)))
  content = images[:, :96].reshape(-1, 3) / 255.0
  np.testing.assert_allclose(experiment.stats["mean"], content.mean(0), rtol=1e-6)
  np.testing.assert_allclose(experiment.stats["std"], content.std(0), rtol=1e-6)
  variables = {INPUT_STATS: experiment.stats}
  for kwargs in ({"size": size}, {"targets": {"size": size}}):
    x = np.asarray(experiment.forward(variables, images, train=False, noise=None, rngs={},
                                      model=Echo(), **kwargs))
    assert np.all(x[:, 96:] == 0.0)
    np.testing.assert_allclose(x[:, :96], (images[:, :96] / 255.0 - experiment.stats["mean"])
                               / experiment.stats["std"], rtol=1e-5, atol=1e-5)


class Echo(nn.Module):
  """A model that returns its (transformed) input."""

  noise: object = None

  def __call__(self, x, *, train, size=None, targets=None):
    return x


def test_dct24_trains_on_its_grid_and_resumes_bitwise(tmp_path, folder):
  """variant=dct24: the DCT of the 2x image (256² -> 32x32 blocks, 24 channels) goes straight into
  layer1. A run stopped after 2 of its 4 steps and resumed ends with the parameters, BN statistics
  and logged losses of an uninterrupted run, bit for bit."""
  config = tiny(folder, "dct24")
  straight = train_and_evaluate(config, str(tmp_path / "a"))
  first = train_and_evaluate(config, str(tmp_path / "b"), stop_after=2)
  assert first["steps"] == 2
  resumed = train_and_evaluate(config, str(tmp_path / "b"))
  assert resumed["steps"] == 4
  for key in ("test_box_AP", "test_mask_AP", "coco/box_AP", "coco/box_AP50"):
    assert resumed[key] == straight[key], key
  experiment = Experiment(config, str(tmp_path / "a"))
  a, b = experiment.restore(), experiment.restore(str(tmp_path / "b"))
  assert int(a.step) == int(b.step) == 4
  for x, y in zip(jax.tree.leaves((a.params, a.model_state)),
                  jax.tree.leaves((b.params, b.model_state))):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
  losses = lambda d: [r["loss"] for r in read_metrics(str(tmp_path / d)) if r["split"] == "train"]
  assert losses("a") == losses("b") and len(losses("a")) == 2
  # the input: 24 DCT channels on a 32x32 grid, into layer1's 3x3 conv (no stem); 3 classes
  assert experiment.splits.num_classes == 3 and experiment.splits.meta["class_names"] == list(
      CLASS_NAMES)
  images = experiment.splits.train.head(2)["image"]
  assert images.shape == (2, 128, 128, 3)
  assert experiment.transform(experiment.stats, images).shape == (2, 32, 32, 24)
  assert experiment.stats["channels"].shape == (24,)
  backbone = a.params["backbone"]
  assert "conv1" not in backbone and backbone["layer1_0"]["conv1"]["kernel"].shape == (3, 3, 24, 4)
  assert a.params["box_head"]["cls"]["kernel"].shape[-1] == 3 + 1


# ---------------------------------------------------------------------------------- config errors
def _bad(folder, change):
  c = tiny(folder)
  change(c)
  return c


@pytest.mark.parametrize("change, message", [
    (lambda c: setattr(c, "loss", "nonsense"),
     r"unknown config.loss 'nonsense'; known: .*maskrcnn"),
    (lambda c: setattr(c.data, "source", "digits"),
     r"config.loss='maskrcnn' .*boxes, classes, masks, size.*'digits'.*yolo-seg:DIR, cocojson:DIR"),
    (lambda c: setattr(c.data, "image_size", 100),
     r"config.data.image_size must be a positive multiple of 64 .*got 100"),
    (lambda c: setattr(c.adversarial, "epsilon", 0.1),
     r"config.adversarial .*needs config.loss='cross_entropy', not 'maskrcnn'"),
    (lambda c: setattr(c.data, "train_range", (3, 1)),
     r"config.data.train_range = \(3, 1\) is empty"),
], ids=["loss", "not-a-detection-source", "image_size", "adversarial", "train_range"])
def test_bad_configs_fail_before_any_work(tmp_path, folder, change, message):
  config = _bad(folder, change)
  with pytest.raises(ValueError, match=message):
    check_config(config)
  with pytest.raises(ValueError, match=message):
    train_and_evaluate(config, str(tmp_path / "run"))
  assert not (tmp_path / "run").exists()  # no workdir, no file
