"""The annotation index refuses YOLO-seg data that would train on nothing, and a label file whose
image is missing neither shifts a slice nor goes unmentioned (issue 25)."""

from __future__ import annotations

import numpy as np
import pytest

from freqnoise.detection.annotations import index_detection, index_yolo_seg
from tests.detection.test_coco_data import RECT_A, RECT_B, _write_png, _yolo_line


def _folder(tmp_path, labelled=(1, 2, 4, 5), images=(1, 2, 3, 4, 5)):
  """A YOLO-seg folder: images 00000000000K.png for K in `images` (64x48, 40x80 alternating),
  a one-rectangle label file for K in `labelled` (class K)."""
  root = tmp_path / "yolo"
  (root / "images/train2017").mkdir(parents=True)
  (root / "labels/train2017").mkdir(parents=True)
  for k in sorted(set(images) | set(labelled)):
    rect, h, w = (RECT_A, 48, 64) if k % 2 else (RECT_B, 80, 40)
    if k in images:
      _write_png(root / f"images/train2017/{k:012d}.png", [rect], h, w)
    if k in labelled:
      (root / f"labels/train2017/{k:012d}.txt").write_text(_yolo_line(k, rect, h, w) + "\n")
  return root


def test_no_label_folder_is_an_error_naming_it_not_zero_instances(tmp_path):
  root = _folder(tmp_path)
  (root / "labels/train2017").rename(root / "labels/other")
  with pytest.raises(FileNotFoundError, match=r"no label folder .*yolo/labels/train2017 for split "
                                              r"'train2017' \(YOLO-seg keeps the instances"):
    index_yolo_seg(str(root))


def test_a_slice_without_instances_is_refused(tmp_path):
  root = _folder(tmp_path, labelled=(1, 2))
  entries, _, _ = index_detection(f"yolo-seg:{root}", "train2017", 0, 2)
  assert [len(e.targets) for e in entries] == [1, 1]
  with pytest.raises(ValueError, match=r"split 'train2017' \[2:\]: no instances in its 3 images "
                                       r"\(every label file of the slice is missing or empty\)"):
    index_detection(f"yolo-seg:{root}", "train2017", 2, None)
  (root / "labels/train2017/000000000001.txt").write_text("")
  (root / "labels/train2017/000000000002.txt").write_text("\n")
  with pytest.raises(ValueError, match=r"\[0:\]: no instances in its 5 images"):
    index_detection(f"yolo-seg:{root}", "train2017")


def test_a_label_without_its_image_keeps_its_place_and_is_named(tmp_path, capsys):
  # Image 3 is background (no label: legal); image 2 was deleted but its label stayed. The slice
  # [2:5] must still be images 3, 4, 5 (it used to become 4, 5: every image moved up one place).
  whole = _folder(tmp_path / "a")
  gone = _folder(tmp_path / "b", images=(1, 3, 4, 5))
  ids = lambda root, a, b: [e.image_id for e in index_yolo_seg(str(root), "train2017", a, b)[0]]
  assert ids(whole, 2, 5) == ids(gone, 2, 5) == [3, 4, 5]
  assert capsys.readouterr().out == ""  # (the slice holds no orphan)
  assert ids(gone, 0, 2) == [1]
  out = capsys.readouterr().out
  assert out.startswith("warning: ") and out.count("\n") == 1
  assert ("labels/train2017: 1 label file(s) in the slice [0:2] have no image in" in out
          and out.rstrip().endswith("images/train2017 (their instances are not used; the other "
                                    "images keep their places): 000000000002.txt"))
  entries, gt = index_yolo_seg(str(gone))
  assert [e.image_id for e in entries] == [1, 3, 4, 5]
  assert sorted({a["image_id"] for a in gt["annotations"]}) == [1, 4, 5]


def test_two_images_of_one_stem_are_an_error(tmp_path):
  root = _folder(tmp_path)
  _write_png(root / "images/train2017/000000000004.jpg", [RECT_B], 80, 40)
  with pytest.raises(ValueError, match=r"000000000004.jpg and 000000000004.png share the label "
                                       r"file .*000000000004.txt; keep one of them"):
    index_yolo_seg(str(root))


def test_real_coco128_slices_are_unchanged_by_its_two_labels_without_images(shared_data, capsys):
  # Upstream coco128-seg ships labels 656 and 659 without images; they sort after all 128 images,
  # so the recorded (0, 96) / (96, 128) slices keep their images.
  root = shared_data / "coco128-seg"
  if not root.is_dir():
    pytest.skip(f"{root} is absent")
  files = sorted(p.name for p in (root / "images/train2017").iterdir())
  for a, b in ((0, 96), (96, 128)):
    entries, _ = index_yolo_seg(str(root), "train2017", a, b)
    assert [e.path.rsplit("/", 1)[1] for e in entries] == files[a:b]
  assert capsys.readouterr().out == ""
  entries, _ = index_yolo_seg(str(root), "train2017", 120, None)
  assert len(entries) == 8
  assert "2 label file(s) in the slice [120:]" in capsys.readouterr().out
  assert np.sum([len(e.targets) for e in entries]) > 0
