"""A bad COCO instances file is one ValueError naming the file and the annotation / image /
category id, raised before any image is read (issue 25: it used to be `KeyError: 'bbox'`,
`AttributeError` or `TypeError` from deep in the loader, and a truncated file named itself only in
the traceback)."""

from __future__ import annotations

import copy
import json
import re

import pytest

from freqnoise.detection.annotations import index_detection
from freqnoise.detection.coco_json import read_instances

POLY = [8, 8, 24, 8, 24, 16, 8, 16]
GOOD = {
    "images": [{"id": 5, "file_name": "b.png", "height": 48, "width": 64},
               {"id": 9, "file_name": "a.png", "height": 80, "width": 40}],
    "categories": [{"id": 18, "name": "dog"}, {"id": 1, "name": "person"}],
    "annotations": [
        {"id": 11, "image_id": 5, "category_id": 18, "iscrowd": 0, "area": 128.0,
         "bbox": [8, 8, 16, 8], "segmentation": [POLY]},
        {"id": 12, "image_id": 9, "category_id": 1, "iscrowd": 1, "area": 4.0,
         "bbox": [0, 0, 2, 2], "segmentation": {"size": [80, 40], "counts": [0, 2, 78, 2, 3118]}}]}


def _write(tmp_path, data) -> str:
  """`tmp_path/coco/annotations/instances_val2017.json` holding `data` (a dict, or raw text);
  no image files (nothing may be read before the file is checked)."""
  folder = tmp_path / "coco" / "annotations"
  folder.mkdir(parents=True, exist_ok=True)
  path = folder / "instances_val2017.json"
  path.write_text(data if isinstance(data, str) else json.dumps(data))
  return str(path)


def _change(edit):
  data = copy.deepcopy(GOOD)
  edit(data)
  return data


@pytest.mark.parametrize("edit,message", [
    (lambda d: d["annotations"][0].pop("bbox"), "annotation id 11 has no 'bbox'"),
    (lambda d: d["annotations"][0].update(bbox=[8, 8, 16]),
     "annotation id 11: bbox must be [x, y, width, height] (4 numbers), got [8, 8, 16]"),
    (lambda d: d["annotations"][0].update(bbox=[8, "8", 16, 8]), "annotation id 11: bbox must be"),
    (lambda d: d["annotations"][1].update(image_id=77),
     "annotation id 12: image_id must be the id of an image in the file, got 77"),
    (lambda d: d["annotations"][0].update(category_id=3),
     "annotation id 11: category_id must be the id of a category in the file, got 3"),
    (lambda d: d["annotations"][0].update(category_id=[18]),
     "annotation id 11: category_id must be the id of a category in the file, got [18]"),
    (lambda d: d["annotations"][0].pop("area"), "annotation id 11 has no 'area'"),
    (lambda d: d["annotations"][1].update(id=11), "annotation id 11 appears twice"),
    (lambda d: d["annotations"][0].pop("id"), "annotation #0 (no id) has no 'id'"),
    (lambda d: d["annotations"].append(None), "annotation #2 is a NoneType, not an object"),
    (lambda d: d["annotations"][0].update(iscrowd=2),
     "annotation id 11 (image_id 5): iscrowd must be 0 or 1, got 2"),
    (lambda d: d["annotations"][0].update(segmentation=[[8, 8, 24, 8]]),
     "annotation id 11 (image_id 5): segmentation polygons must be lists of an even number >= 6"),
    (lambda d: d["annotations"][0].update(segmentation=[]),
     "annotation id 11 (image_id 5): segmentation holds no polygon"),
    (lambda d: d["annotations"][0].update(segmentation="x"),
     "annotation id 11 (image_id 5): segmentation must be a list of polygons or an RLE dict"),
    (lambda d: d["annotations"][1]["segmentation"].update(size=[48, 64]),
     "annotation id 12 (image_id 9): RLE size [48, 64] is not its image's [height, width] = "
     "[80, 40]"),
    (lambda d: d["images"][0].update(height=0),
     "image id 5: height must be a positive integer, got 0"),
    (lambda d: d["images"][1].pop("file_name"), "image id 9 has no 'file_name'"),
    (lambda d: d["categories"][0].update(id="18"), "category id '18': id must be an integer"),
    (lambda d: d.pop("annotations"), "no 'annotations' list (not a COCO instances file)"),
])
def test_a_bad_field_names_the_file_and_the_id(tmp_path, edit, message):
  path = _write(tmp_path, _change(edit))
  with pytest.raises(ValueError, match=re.escape(f"{path}: {message}")):
    index_detection(f"cocojson:{tmp_path / 'coco'}", "val2017")


def test_a_truncated_or_non_json_file_names_the_file_and_where(tmp_path):
  text = json.dumps(GOOD)
  path = _write(tmp_path, text[:100])
  with pytest.raises(ValueError, match=re.escape(f"{path}: not valid JSON: ") +
                     r"Unterminated string starting at: line 1 column 96 \(byte 95 of 100\); it "
                     r"does not end with } or \]: truncated\?"):
    index_detection(f"cocojson:{tmp_path / 'coco'}", "val2017")
  _write(tmp_path, "[1, 2]")
  with pytest.raises(ValueError, match=re.escape(f"{path}: holds a JSON list, not a COCO")):
    read_instances(path)
  (tmp_path / "coco/annotations/instances_val2017.json").write_bytes(b'{"images": "caf\xe9"}')
  with pytest.raises(ValueError, match=re.escape(f"{path}: not UTF-8 text (byte 15: ")):
    read_instances(path)


def test_a_coordinate_that_is_no_number_names_the_annotation_when_used(tmp_path):
  path = _write(tmp_path, _change(lambda d: d["annotations"][0].update(
      segmentation=[[8, 8, 24, 8, 24, "x"]])))
  with pytest.raises(ValueError, match=re.escape(
      f"{path}: annotation id 11: segmentation polygons must hold finite numbers")):
    index_detection(f"cocojson:{tmp_path / 'coco'}", "val2017")


def test_a_good_file_passes_and_a_slice_of_crowds_only_is_refused(tmp_path):
  path = _write(tmp_path, GOOD)
  assert read_instances(path) == GOOD
  entries, gt, meta = index_detection(f"cocojson:{tmp_path / 'coco'}", "val2017", 1, 2)  # b.png
  assert [len(e.targets) for e in entries] == [1] and meta["class_names"] == ["person", "dog"]
  with pytest.raises(ValueError, match=r"val2017' \[0:1\]: no instances in its 1 images \(the "
                                       r"file has no annotation of them that is a training target"):
    index_detection(f"cocojson:{tmp_path / 'coco'}", "val2017", 0, 1)  # a.png: a crowd only
