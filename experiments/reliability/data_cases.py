"""Issue 25's bad data and settings, added to run.py's case table (`cases.CASES`): detection
folders and COCO files that used to train on nothing or fail with a bare KeyError, a transfer set
crafted on other data, a DCT image size off its block, ε outside [0, 1], a short run below the
warm-up, a malformed DCT channel list and a bad cache bound. Each is refused (or, for the short
run and the label without an image, handled and said) before any training step. Then the other
user paths issue 25 fixed where a user's input could lose or fake results: an evaluation output
named again, a second bare evaluate, a language model and a detector evaluated as they are,
`--record` under changed settings, a misspelt sweep field.

Detection cases run `configs/maskrcnn_coco.py:tiny` on a folder the case writes (5 images of
64x48 pixels, one rectangle each); training it takes minutes on a loaded CPU, so the case where
it must start (a label file whose image was deleted) reads the output up to the dataset summary
line and stops the run there.
"""

from __future__ import annotations

import json
import os

import numpy as np
from PIL import Image

from cases import MNIST, NOTHING_WRITTEN, _fresh_error, case, outcome, skip
from harness import REPO

MASKRCNN = "configs/maskrcnn_coco.py:tiny"
FREQ = "configs/freq_cifar10.py:variant=dct24,tiny"
DATA_REFUSED = ("error names the file / folder (and the annotation id); exit != 0; no .lock, "
                "statistics or checkpoint")


def _yolo(root: str, images=(1, 2, 3, 4, 5), labels=(1, 2, 3, 4, 5)) -> str:
  """A YOLO-seg folder: `images/train2017/00000000000K.png` (64x48, a white rectangle) for K in
  `images`, its label `labels/train2017/00000000000K.txt` (class 0) for K in `labels`."""
  for sub in ("images", "labels"):
    os.makedirs(os.path.join(root, sub, "train2017"))
  for k in sorted(set(images) | set(labels)):
    x1, y1, x2, y2 = 8 + k, 8, 40 + k, 30
    if k in images:
      pixels = np.zeros((48, 64, 3), np.uint8)
      pixels[y1:y2, x1:x2] = 255
      Image.fromarray(pixels).save(os.path.join(root, "images", "train2017", f"{k:012d}.png"))
    if k in labels:
      poly = np.array([[x1, y1], [x2, y1], [x2, y2], [x1, y2]], float) / [64, 48]
      with open(os.path.join(root, "labels", "train2017", f"{k:012d}.txt"), "w") as f:
        f.write("0 " + " ".join(f"{v:.6f}" for v in poly.ravel()) + "\n")
  return root


def _data_refused(h, source: str, names, config=MASKRCNN, flags=()) -> dict:
  """The run on a bad data source: refused naming `names`, before any step (no .lock left, no
  statistics, no checkpoint)."""
  wd = h.path("run")
  p = h.train(wd, f"--config.data.source={source}", *flags, config=config)
  left = sorted(os.listdir(wd)) if os.path.isdir(wd) else []
  return outcome(p, [("exit != 0", p.rc != 0),
                     *[(f"message names {n!r}", n in p.block()) for n in names],
                     ("not a bare KeyError / TypeError / AttributeError", not any(
                         e in p.block() for e in ("KeyError", "TypeError", "AttributeError"))),
                     ("no .lock, stats or checkpoint", not {".lock", "input_stats.npz",
                                                            "checkpoints"} & set(left))],
                 lost=f"nothing; left {', '.join(left)}" if left else "nothing")


# ----------------------------------------------------------------------------- detection data
@case("yolo_seg_without_labels_folder", "data", DATA_REFUSED + " (it trained on zero instances: "
      "AP nan)")
def _(h):
  root = _yolo(h.path("yolo"))
  os.rename(os.path.join(root, "labels"), os.path.join(root, "labels_old"))
  return _data_refused(h, f"yolo-seg:{root}", [os.path.join(root, "labels", "train2017")])


@case("yolo_seg_every_label_empty", "data", DATA_REFUSED + " (no instances in the slice)")
def _(h):
  root = _yolo(h.path("yolo"))
  for name in os.listdir(os.path.join(root, "labels", "train2017")):
    open(os.path.join(root, "labels", "train2017", name), "w").close()
  return _data_refused(h, f"yolo-seg:{root}", ["no instances", "train2017"])


@case("yolo_seg_label_without_image", "data", "image 2 deleted, its label kept: a warning names "
      "the label; the slice (0, 4) keeps images 1, 3, 4 (image 5 does not move in); the summary "
      "counts 3 / 3 instances (the run is stopped after its summary line)")
def _(h):
  root = _yolo(h.path("yolo"), images=(1, 3, 4, 5))
  p = h.until(h.start(h.path("run"), f"--config.data.source=yolo-seg:{root}", config=MASKRCNN),
              r"instances\)")
  summary = [line for line in p.out.splitlines() if "instances)" in line]
  return outcome(p, [("warning names 000000000002.txt", "000000000002.txt" in p.block("warning")),
                     ("summary: 3 train / 3 test (3 / 3 instances)",
                      bool(summary) and "3 train / 3 test (3 / 3 instances)" in summary[0]),
                     ("stopped while training (no error)", p.rc == "stopped")],
                 key="warning",
                 note="summary: " + (h.short(summary[0])[:90] if summary else "none"))


def _coco(root: str, edit=None, text: str | None = None) -> str:
  """A COCO layout with `annotations/instances_train2017.json` of 2 images and 2 annotations
  (changed by `edit(data)`, or replaced by `text`); no image file is needed before the check."""
  os.makedirs(os.path.join(root, "annotations"))
  os.makedirs(os.path.join(root, "train2017"))
  data = {"images": [{"id": k, "file_name": f"{k:012d}.png", "height": 48, "width": 64}
                     for k in (1, 2)],
          "categories": [{"id": 1, "name": "box"}],
          "annotations": [{"id": 10 + k, "image_id": k, "category_id": 1, "iscrowd": 0,
                           "area": 704.0, "bbox": [8, 8, 32, 22],
                           "segmentation": [[8, 8, 40, 8, 40, 30, 8, 30]]} for k in (1, 2)]}
  if edit:
    edit(data)
  with open(os.path.join(root, "annotations", "instances_train2017.json"), "w") as f:
    f.write(text if text is not None else json.dumps(data))
  return root


for _name, _edit, _names in (
    ("coco_json_annotation_without_bbox", lambda d: d["annotations"][1].pop("bbox"),
     ["instances_train2017.json", "annotation id 12", "'bbox'"]),
    ("coco_json_unknown_image_id", lambda d: d["annotations"][0].update(image_id=7),
     ["instances_train2017.json", "annotation id 11", "image_id", "7"]),
    ("coco_json_bbox_of_three_numbers", lambda d: d["annotations"][0].update(bbox=[8, 8, 32]),
     ["instances_train2017.json", "annotation id 11", "bbox"]),
):
  case(_name, "data", DATA_REFUSED)(
      lambda h, e=_edit, n=_names: _data_refused(h, f"cocojson:{_coco(h.path('coco'), e)}", n))


@case("coco_json_truncated", "data", DATA_REFUSED + "; says where the JSON ends")
def _(h):
  root = _coco(h.path("coco"), text='{"images": [{"id": 1, "file_name": "0000')
  return _data_refused(h, f"cocojson:{root}", ["instances_train2017.json", "not valid JSON",
                                               "truncated"])


# ----------------------------------------------------------------------------- settings
@case("transfer_set_of_other_data", "data", "a target whose black-box sets were crafted on "
      "CIFAR-10: refused naming the set and both data sources before training; exit != 0")
def _(h):
  if not os.path.isdir(MNIST):
    return skip(f"{MNIST} absent")
  sub = h.path("substitute")
  os.makedirs(sub)
  for name in ("pgd.npz", "fgsm.npz"):
    np.savez(os.path.join(sub, name), x_adv=np.zeros((4, 32, 32, 3), np.float32),
             label=np.zeros(4, np.int32), index=np.arange(4))
    with open(os.path.join(sub, name + ".json"), "w") as f:
      json.dump({"data": "imagefolder:../shared/data/cifar10-jpeg", "split": "test", "seed": 1,
                 "workdir": "/runs/cifar10/substitute"}, f)
  config = f"configs/noisy_defense.py:data=mnist,role=target,substitute={sub}"
  return _fresh_error(h, [], [".npz was crafted on data", "cifar10-jpeg", "mnist"], config=config)


for _name, _flags, _names in (
    ("dct_image_size_not_multiple_of_8", ["--config.data.image_size=100"],
     ["config.data.image_size=100", "multiples of 8"]),
    ("dct_420_image_size_not_multiple_of_16",
     ["--config.data.image_size=24", "--config.input.chroma=420"],
     ["config.data.image_size=24", "multiples of 16"]),
    ("dct_channels_malformed_on_cli", ["--config.input.channels=[0,1,"],
     ["--config.input.channels", "[0,1,"]),
):
  case(_name, "config", NOTHING_WRITTEN + "; no image read (an empty folder)")(
      lambda h, f=_flags, n=_names: _fresh_error(
          h, [f"--config.data.source=imagefolder:{_empty(h)}", *f], n, config=FREQ))


def _empty(h) -> str:
  folder = h.path("images")
  os.makedirs(folder, exist_ok=True)
  return folder


for _name, _flags, _names in (
    ("epsilon_above_one", ["--config.adversarial.epsilon=8"],
     ["config.adversarial.epsilon=8", "[0, 1]", "8/255"]),
    ("epsilon_error_quotes_the_typed_value", ["--config.adversarial.epsilon=-0.1"],
     ["config.adversarial.epsilon=-0.1"]),
):
  case(_name, "config", NOTHING_WRITTEN)(lambda h, f=_flags, n=_names: _fresh_error(h, f, n))


@case("short_run_below_warmup", "config", "--config.optimizer.warmup_steps=100 on the 20-step "
      "run trains (exit 0), warming up over 2 steps, and says so naming the flag")
def _(h):
  p = h.train(h.path("run"), "--config.optimizer.warmup_steps=100")
  return outcome(p, [("exit 0", p.rc == 0),
                     ("note: 2 steps", "warming up over 2 steps" in p.block("warmup_steps")),
                     ("names the flag", "--config.optimizer.warmup_steps" in p.block("warmup"))],
                 key="warmup_steps")


@case("cache_bound_not_a_number", "config", "FREQNOISE_CACHE_MAX_GB=lots: error names the "
      "variable before any image is decoded; exit != 0")
def _(h):
  folder = h.path("images")
  for split in ("train", "test"):
    os.makedirs(os.path.join(folder, split, "c0"))
    Image.new("RGB", (16, 16)).save(os.path.join(folder, split, "c0", "0.png"))
  wd = h.path("run")
  p = h.train(wd, f"--config.data.source=imagefolder:{folder}",
              f"--config.data.cache_dir={h.path('cache')}", config=FREQ,
              env={"FREQNOISE_CACHE_MAX_GB": "lots"})
  return outcome(p, [("exit != 0", p.rc != 0),
                     ("names FREQNOISE_CACHE_MAX_GB", "FREQNOISE_CACHE_MAX_GB" in p.block()),
                     ("no cache written", not os.path.exists(h.path("cache"))
                      or not os.listdir(h.path("cache")))])


# ----------------------------------------------------------------------------- evaluate, record
def _evaluated_earlier(h):
  """A copy of the base run holding an earlier evaluation's montecarlo.json, and its snapshot."""
  wd = h.copy_of("base")
  with open(os.path.join(wd, "montecarlo.json"), "w") as f:
    f.write('{"an": "earlier evaluation"}\n')
  return wd, h.snapshot(wd)


@case("evaluate_output_exists_named", "evaluate", "--config.evals.montecarlo.output= naming an "
      "existing file: refused before any computation, naming it and --overwrite; exit != 0; run "
      "folder unchanged")
def _(h):
  wd, before = _evaluated_earlier(h)
  p = h.evaluate(wd, "--num_draws=2", "--snrs_db=0,inf",
                 "--config.evals.montecarlo.output=montecarlo.json")
  lost = h.changes(before, h.snapshot(wd))
  return outcome(p, [("exit != 0", p.rc != 0), ("names montecarlo.json", "montecarlo.json exists"
                                                in p.block()),
                     ("names --overwrite", "--overwrite" in p.block()),
                     ("run folder unchanged", lost == "nothing")], lost=lost)


@case("evaluate_bare_workdir_again", "evaluate", "a bare --workdir on a clean run that was "
      "evaluated before: the default SNR grid with a note, its table, and montecarlo-2.json "
      "beside the earlier montecarlo.json (unchanged); exit 0")
def _(h):
  wd, before = _evaluated_earlier(h)
  p = h.evaluate(wd, "--num_draws=2")
  lost = h.changes(before, h.snapshot(wd))
  return outcome(p, [("exit 0", p.rc == 0), ("table printed", "checkpoint step 20" in p.out),
                     ("only montecarlo-2.json added", lost == "added: montecarlo-2.json")],
                 lost=lost, key="written:")


@case("evaluate_language_model", "evaluate", "a bare --workdir on a PTB LSTM run "
      "(configs/dni_ptb.py:tiny, state carried across batches, trained clean): mc_perplexity on the "
      "default SNR grid with a note, a progress line with ETA per SNR, a table whose noiseless row is "
      "the run's test perplexity; exit 0")
def _(h):
  corpus = h.path("ptb")
  os.makedirs(corpus)
  words = np.array("the cat sat on the mat and the dog sat on the log".split())
  gen = np.random.default_rng(0)
  for name, n in (("train", 60), ("valid", 10), ("test", 10)):
    with open(os.path.join(corpus, f"ptb.{name}.txt"), "w") as f:
      f.writelines(" " + " ".join(gen.choice(words, 5)) + " \n" for _ in range(n))
  wd = h.path("run")
  trained = h.train(wd, f"--config.data.source=ptb:{corpus}", config="configs/dni_ptb.py:tiny")
  if trained.rc != 0:
    return outcome(trained, [("the run trains", False)])
  before = h.snapshot(wd)
  p = h.evaluate(wd, "--num_draws=2")
  lost = h.changes(before, h.snapshot(wd))
  with open(os.path.join(wd, "final_metrics.json")) as f:
    perplexity = json.load(f)["test_perplexity"]
  rows = [line.split() for line in p.out.splitlines()]
  return outcome(p, [("exit 0", p.rc == 0),
                     ("mc_perplexity chosen", "evaluator mc_perplexity" in p.out),
                     ("default grid said", "evaluating at -5,0,5,10,20,inf dB" in p.out),
                     ("6 progress lines with ETA", sum(line.startswith("draw ") and " | ETA " in line
                                                      for line in p.out.splitlines()) == 6),
                     ("noiseless row = the run's test perplexity",
                      ["inf", f"{perplexity:.4f}", "0.0000"] in rows),
                     ("only mc_perplexity.json added", lost == "added: mc_perplexity.json")],
                 lost=lost, key="written:",
                 cmd=f"{trained.cmd}; then {p.cmd}")


@case("evaluate_detector", "evaluate", "--eval=coco on a Mask R-CNN run (configs/maskrcnn_coco.py:"
      "tiny): scored, box and mask AP as a table equal to the end of training's coco/ numbers, the "
      "picture written beside the run's own (detections_test-2.png); exit 0")
def _(h):
  wd = h.path("run")
  trained = h.train(wd, f"--config.data.source=yolo-seg:{_yolo(h.path('shapes'))}",
                    config=MASKRCNN, timeout=900)
  if trained.rc != 0:
    return outcome(trained, [("the run trains", False)])
  before = h.snapshot(wd)
  p = h.evaluate(wd, "--eval=coco", timeout=900)
  lost = h.changes(before, h.snapshot(wd))
  with open(os.path.join(wd, "final_metrics.json")) as f:
    final = json.load(f)
  cells = {line.split()[0]: line.split()[1] for line in p.out.splitlines()
           if line.split()[:1] in (["box"], ["mask"])}
  number = lambda v: "nan" if v is None else f"{v:.4f}"
  return outcome(p, [("exit 0", p.rc == 0),
                     ("box and mask AP rows", set(cells) == {"box", "mask"}),
                     ("AP = the end of training's", cells == {
                         "box": number(final["coco/box_AP"]),
                         "mask": number(final["coco/mask_AP"])}),
                     ("only detections_test-2.png added", lost == "added: detections_test-2.png")],
                 lost=lost, key="checkpoint step",
                 cmd=f"{trained.cmd}; then {p.cmd}")


@case("record_with_changed_settings", "other", "experiments/maskrcnn/run.py --record with --set "
      "num_steps=2: refused naming the setting before any work; its results/ unchanged")
def _(h):
  results = os.path.join(REPO, "experiments", "maskrcnn", "results")
  before = h.snapshot(results)
  runs = h.path("runs")
  p = h.train(None, "--record", "--set", "num_steps=2", f"--workroot={runs}", config=None,
              module="experiments/maskrcnn/run.py")
  lost = h.changes(before, h.snapshot(results))
  return outcome(p, [("exit != 0", p.rc != 0), ("says refused", "--record refused" in p.err),
                     ("names num_steps=2", "num_steps=2" in p.err),
                     ("results unchanged, nothing run", lost == "nothing"
                      and not os.path.exists(runs))], lost=lost, key="--record refused")


@case("sweep_unknown_grid_field", "other", "python -m freqnoise.sweep with a misspelt --grid "
      "field: error names the cell and the field before any cell runs; the root not created")
def _(h):
  root = h.path("sweep")
  p = h.train(None, "--grid", "optimizer.learning_rat=0.1,0.2", f"--root={root}",
              module="freqnoise.sweep")
  return outcome(p, [("exit != 0", p.rc != 0), ("names the field", "learning_rat" in p.block()),
                     ("nothing written", not os.path.exists(root))])
