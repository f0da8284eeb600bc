"""Writes the golden files of the detection tests: torch / torchvision's outputs for fixed inputs.

The detection tests compare freqnoise.detection against its peers live where torch and
torchvision are installed, and against these stored outputs everywhere else (CI has no torch), so
a regression in RoIAlign, NMS, IoU, the box coder, anchors, the matcher, mask targets, the losses
or mask pasting fails without them. Each file `<case>.npz` holds the inputs (NumPy, fixed seeds),
the peer's outputs and `torch_version` / `torchvision_version`; the tests read the inputs from it.

Run it with the python of an environment holding torch and torchvision (no jax, no freqnoise):
    python -m venv /work/torchvenv
    /work/torchvenv/bin/pip install torch==2.14.1 torchvision==0.29.1 numpy
    /work/torchvenv/bin/python tests/detection/golden/make_golden.py [case ...]
It is deterministic: with the same torch it rewrites byte-identical files (np.savez stores fixed
zip timestamps; the peers run on the CPU). The tests' live cross-checks call `outputs(case)` too.
"""

from __future__ import annotations

import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


def _torch():
  import torch
  import torchvision
  import torchvision.ops  # noqa: F401
  torch.set_num_threads(1)  # one summation order
  return torch, torchvision


def _random_boxes(rng, n, lo, hi, wh_lo, wh_hi):
  xy = rng.uniform(lo, hi, (n, 2))
  return np.concatenate([xy, xy + rng.uniform(wh_lo, wh_hi, (n, 2))], 1).astype(np.float32)


# ---- inputs: NumPy only, fixed seeds --------------------------------------------------------

def _anchors_inputs():
  return {"image_sizes": np.array([[64, 128], [128, 64]], np.int64),
          "strides": np.array([4, 8, 16, 32, 64], np.int64)}


def _boxes_inputs():
  rng = np.random.default_rng(2)
  out = {"iou_a": _random_boxes(rng, 30, -10, 100, 0.5, 50),
         "iou_b": _random_boxes(rng, 20, -10, 100, 0.5, 50)}
  rng = np.random.default_rng(3)
  out["coder_anchors"] = _random_boxes(rng, 40, -10, 100, 0.5, 50)
  out["coder_boxes"] = _random_boxes(rng, 40, -10, 100, 0.5, 50)
  out["coder_deltas"] = rng.normal(0, 3, (40, 4)).astype(np.float32)
  out["coder_weights"] = np.array([10.0, 10.0, 5.0, 5.0], np.float32)
  return out


def _nms_inputs():
  out = {}
  for seed in range(3):
    rng = np.random.default_rng(seed)
    out[f"boxes_{seed}"] = _random_boxes(rng, 200, 0, 60, 5, 40)
    out[f"scores_{seed}"] = rng.random(200).astype(np.float32)
    out[f"classes_{seed}"] = np.random.default_rng(seed).integers(0, 5, 200)
  out["iou_threshold"] = np.float32(0.5)
  return out


def _roi_boxes(seed, n, h, w):
  """Random boxes over and around an h x w image, plus awkward ones (partly / wholly outside,
  tiny, padding, the whole image)."""
  rng = np.random.default_rng(seed)
  xy = rng.uniform([-0.3 * w, -0.3 * h], [w, h], (n, 2))
  wh = rng.uniform(0.2, [0.8 * w, 0.8 * h], (n, 2))
  special = [[-5, -5, 3, 4], [w - 2, h - 3, w + 6, h + 9], [w + 3, h + 3, w + 9, h + 9],
             [2.3, 1.7, 2.4, 1.75], [0, 0, 0, 0], [0, 0, w, h]]
  return np.concatenate([np.concatenate([xy, xy + wh], 1), special]).astype(np.float32)


def _roi_align_inputs():
  out = {"features": np.random.default_rng(2).normal(size=(12, 15, 4)).astype(np.float32)}
  for i, scale in enumerate((0.25, 0.5, 0.25)):
    out[f"boxes_{i}"] = _roi_boxes(3 + i, 16, 12 / scale, 15 / scale)
  out["scales"] = np.array([0.25, 0.5, 0.25], np.float32)
  out["aligned"] = np.array([True, True, False])
  strides = (4, 8, 16, 32)
  height, width = 128, 96
  for l, s in enumerate(strides):
    out[f"ms_features_{l}"] = np.random.default_rng(20 + l).normal(
        size=(height // s, width // s, 2)).astype(np.float32)
  rng = np.random.default_rng(6)
  xy = rng.uniform(-10, [width, height], (50, 2))
  out["ms_boxes"] = np.concatenate([xy, xy + rng.uniform(2, 500, (50, 2))], 1).astype(np.float32)
  out["ms_image_size"] = np.array([height, width], np.int64)
  out["ms_strides"] = np.array(strides, np.int64)
  return out


def _targets_inputs():
  rng = np.random.default_rng(1)
  anchors = _random_boxes(rng, 60, 0, 60, 4, 32).clip(0, 64)
  anchors = np.concatenate([anchors, anchors[:10]])  # duplicated anchors: tied best anchors
  gt = _random_boxes(rng, 6, 0, 60, 4, 32).clip(0, 64)
  valid = np.array([True, False, True, True, False, True])
  gt[~valid] = 0
  out = {"match_anchors": anchors, "match_gt": gt, "match_gt_valid": valid,
         "match_thresholds": np.array([0.7, 0.3], np.float32)}
  rng = np.random.default_rng(7)
  gt_box = np.float32([[20, 24, 52, 56]])  # 32 x 32 pixels: the crop holds them exactly
  out["mask_crop"] = (rng.random((32, 32)) < 0.5).astype(np.uint8) * 255
  out["mask_gt_box"] = gt_box
  out["mask_rois"] = np.concatenate([gt_box + rng.uniform(-8, 8, (7, 4)), gt_box]).astype(
      np.float32)
  out["mask_image_size"] = np.array([80, 80], np.int64)
  return out


def _detection_losses_inputs():
  rng = np.random.default_rng(1)
  a = 300
  out = {"rpn_labels": rng.choice([-1, 0, 1], a, p=[0.5, 0.4, 0.1]).astype(np.int32),
         "rpn_objectness": rng.normal(0, 3, a).astype(np.float32),
         "rpn_deltas": rng.normal(0, 0.3, (a, 4)).astype(np.float32),
         "rpn_targets": rng.normal(0, 0.3, (a, 4)).astype(np.float32)}
  rng = np.random.default_rng(3)
  r, k = 56, 5
  out["head_classes"] = np.where(rng.random(r) < 0.3, rng.integers(1, k + 1, r), 0).astype(
      np.int32)
  out["head_logits"] = rng.normal(0, 2, (r, k + 1)).astype(np.float32)
  out["head_deltas"] = rng.normal(0, 1, (r, k + 1, 4)).astype(np.float32)
  out["head_targets"] = rng.normal(0, 1, (r, 4)).astype(np.float32)
  # Mask loss over a batch of 2 images x 8 RoI slots: 1 foreground RoI in image 0, 7 in image 1.
  # K + 1 == S == 6 channels: the layout is ambiguous from the shapes alone.
  rng = np.random.default_rng(5)
  s = c = 6
  out["mask_is_fg"] = np.array([[0, 0, 1, 0, 0, 0, 0, 0], [1, 1, 1, 0, 1, 1, 1, 1]], bool)
  out["mask_classes"] = np.where(out["mask_is_fg"], rng.integers(1, c, (2, 8)), 0).astype(np.int32)
  out["mask_logits"] = rng.normal(0, 2, (2, 8, s, s, c)).astype(np.float32)  # channels last
  out["mask_targets"] = (rng.random((2, 8, s, s)) < 0.4).astype(np.float32)
  return out


def _paste_inputs():
  rng = np.random.default_rng(0)
  r, m, height, width = 6, 14, 40, 50
  x1, y1 = rng.uniform(-8, width - 5, r), rng.uniform(-8, height - 5, r)
  boxes = np.stack([x1, y1, x1 + rng.uniform(1.5, 40, r), y1 + rng.uniform(1.5, 30, r)], 1)
  boxes[0] = [0.0, 0.0, width, height]  # the whole image
  boxes[1] = [10.3, 12.6, 13.1, 14.2]   # a few pixels
  return {"mask_probs": rng.random((r, m, m)).astype(np.float32),
          "boxes": boxes.astype(np.float32), "image_size": np.array([height, width], np.int64)}


INPUTS = {"anchors": _anchors_inputs, "boxes": _boxes_inputs, "nms": _nms_inputs,
          "roi_align": _roi_align_inputs, "targets": _targets_inputs,
          "detection_losses": _detection_losses_inputs, "paste": _paste_inputs}


# ---- the peers --------------------------------------------------------------------------------

def _anchors_peer(x, torch, torchvision):
  from torchvision.models.detection.anchor_utils import AnchorGenerator
  from torchvision.models.detection.image_list import ImageList
  strides = [int(s) for s in x["strides"]]
  generator = AnchorGenerator(sizes=tuple((8 * s,) for s in strides),
                              aspect_ratios=((0.5, 1.0, 2.0),) * len(strides))
  out = {}
  for height, width in x["image_sizes"].tolist():
    images = ImageList(torch.zeros(1, 3, height, width), [(height, width)])
    features = [torch.zeros(1, 1, height // s, width // s) for s in strides]
    out[f"anchors_{height}x{width}"] = generator(images, features)[0].numpy()
  return out


def _boxes_peer(x, torch, torchvision):
  from torchvision.models.detection._utils import BoxCoder
  t = torch.from_numpy
  coder = BoxCoder(tuple(float(w) for w in x["coder_weights"]))
  return {"iou": torchvision.ops.box_iou(t(x["iou_a"]), t(x["iou_b"])).numpy(),
          "coder_encoded": coder.encode_single(t(x["coder_boxes"]), t(x["coder_anchors"])).numpy(),
          "coder_decoded": coder.decode_single(t(x["coder_deltas"]), t(x["coder_anchors"])).numpy()}


def _nms_peer(x, torch, torchvision):
  out, threshold = {}, float(x["iou_threshold"])
  for seed in range(3):
    b, s = torch.from_numpy(x[f"boxes_{seed}"]), torch.from_numpy(x[f"scores_{seed}"])
    out[f"keep_{seed}"] = torchvision.ops.nms(b, s, threshold).numpy()
    out[f"batched_keep_{seed}"] = torchvision.ops.batched_nms(
        b, s, torch.from_numpy(x[f"classes_{seed}"]), threshold).numpy()
  return out


def _roi_align_peer(x, torch, torchvision):
  from torchvision.ops import MultiScaleRoIAlign
  out = {}
  f = torch.from_numpy(x["features"]).permute(2, 0, 1)[None]
  for i, (scale, aligned) in enumerate(zip(x["scales"].tolist(), x["aligned"].tolist())):
    boxes = torch.from_numpy(x[f"boxes_{i}"])
    rois = torch.cat([torch.zeros(len(boxes), 1), boxes], 1)
    out[f"pooled_{i}"] = torchvision.ops.roi_align(
        f, rois, 7, spatial_scale=scale, sampling_ratio=2, aligned=aligned).permute(
            0, 2, 3, 1).numpy()
  names = [f"p{l}" for l in range(2, 6)]
  pooler = MultiScaleRoIAlign(names, output_size=7, sampling_ratio=2)  # aligned=False inside
  features = {n: torch.from_numpy(x[f"ms_features_{l}"]).permute(2, 0, 1)[None]
              for l, n in enumerate(names)}
  height, width = x["ms_image_size"].tolist()
  out["ms_pooled"] = pooler(features, [torch.from_numpy(x["ms_boxes"])],
                            [(height, width)]).permute(0, 2, 3, 1).numpy()
  return out


def _targets_peer(x, torch, torchvision):
  from torchvision.models.detection._utils import Matcher
  # the IoU is stored too: the matcher's ties are exact float comparisons of it
  iou = torchvision.ops.box_iou(torch.from_numpy(x["match_anchors"]),
                                torch.from_numpy(x["match_gt"]))  # [anchors, GT]
  quality = iou[:, torch.from_numpy(x["match_gt_valid"])].T.contiguous()  # [valid GT, anchors]
  fg, bg = x["match_thresholds"].tolist()
  out = {"match_iou": iou.numpy()}
  out.update({f"matcher_{lq}": Matcher(fg, bg, allow_low_quality_matches=bool(lq))(
      quality).numpy() for lq in (0, 1)})
  # Mask targets: RoIAlign(aligned=True, sampling_ratio=1) of the full-image mask (detectron2)
  full = np.zeros(x["mask_image_size"].tolist(), np.float32)
  gx1, gy1, gx2, gy2 = x["mask_gt_box"][0].astype(int)
  full[gy1:gy2, gx1:gx2] = x["mask_crop"] / 255
  out["mask_roi_align"] = torchvision.ops.roi_align(
      torch.from_numpy(full)[None, None], [torch.from_numpy(x["mask_rois"])], (28, 28), 1.0,
      sampling_ratio=1, aligned=True)[:, 0].numpy()
  return out


def _detection_losses_peer(x, torch, torchvision):
  import torch.nn.functional as F
  from torchvision.models.detection.roi_heads import fastrcnn_loss, maskrcnn_loss
  t = torch.from_numpy
  labels = x["rpn_labels"]
  s, p = t(labels >= 0), t(labels == 1)
  out = {"rpn_cls": F.binary_cross_entropy_with_logits(t(x["rpn_objectness"])[s],
                                                       p[s].float()).numpy(),
         "rpn_box": (F.smooth_l1_loss(t(x["rpn_deltas"])[p], t(x["rpn_targets"])[p], beta=1 / 9,
                                      reduction="sum") / s.sum()).numpy()}
  r = len(x["head_classes"])
  cls, box = fastrcnn_loss(t(x["head_logits"]), t(x["head_deltas"]).reshape(r, -1),
                           [t(x["head_classes"]).long()], [t(x["head_targets"])])
  out["head_cls"], out["head_box"] = cls.numpy(), box.numpy()
  # torchvision's maskrcnn_loss on the foreground RoIs of each image. It projects GT masks onto
  # the proposals with RoIAlign(aligned=False); boxes (-0.5, -0.5, S - 0.5, S - 0.5) over a "GT
  # mask" that is the target itself sample it at its integer cells, returning it exactly.
  size = x["mask_targets"].shape[-1]
  logits, proposals, gt_masks, gt_labels, matched = [], [], [], [], []
  for b in range(x["mask_is_fg"].shape[0]):
    fg = x["mask_is_fg"][b]
    n = int(fg.sum())
    logits.append(t(x["mask_logits"][b][fg]).permute(0, 3, 1, 2))
    proposals.append(torch.tensor([[-0.5, -0.5, size - 0.5, size - 0.5]]).repeat(n, 1))
    gt_masks.append(t(x["mask_targets"][b][fg]))
    gt_labels.append(t(x["mask_classes"][b][fg]).long())
    matched.append(torch.arange(n))
  out["mask"] = maskrcnn_loss(torch.cat(logits), proposals, gt_masks, gt_labels, matched).numpy()
  return out


def detectron2_paste_probs(masks, boxes, height, width, torch):
  """detectron2's `_do_paste_mask(masks[:, None], boxes, height, width, skip_empty=False)`
  (detectron2/layers/mask_ops.py): each pixel centre (x + 0.5, y + 0.5) mapped into its box as a
  grid_sample coordinate in [-1, 1], sampled bilinearly with align_corners=False and zeros
  outside. Returns float32 [R, height, width]."""
  import torch.nn.functional as F
  masks, boxes = torch.from_numpy(masks), torch.from_numpy(boxes)
  x0, y0, x1, y1 = torch.split(boxes, 1, dim=1)
  img_y = torch.arange(0, height, dtype=torch.float32) + 0.5
  img_x = torch.arange(0, width, dtype=torch.float32) + 0.5
  img_y = (img_y - y0) / (y1 - y0) * 2 - 1
  img_x = (img_x - x0) / (x1 - x0) * 2 - 1
  n = masks.shape[0]
  gx = img_x[:, None, :].expand(n, img_y.size(1), img_x.size(1))
  gy = img_y[:, :, None].expand(n, img_y.size(1), img_x.size(1))
  grid = torch.stack([gx, gy], dim=3)
  return F.grid_sample(masks[:, None], grid, align_corners=False)[:, 0].numpy()


def _paste_peer(x, torch, torchvision):
  height, width = x["image_size"].tolist()
  return {"pasted": detectron2_paste_probs(x["mask_probs"], x["boxes"], height, width, torch)}


PEERS = {"anchors": _anchors_peer, "boxes": _boxes_peer, "nms": _nms_peer,
         "roi_align": _roi_align_peer, "targets": _targets_peer,
         "detection_losses": _detection_losses_peer, "paste": _paste_peer}


def outputs(case: str) -> dict[str, np.ndarray]:
  """The case's inputs and the installed peer's outputs on them (needs torch, torchvision)."""
  torch, torchvision = _torch()
  x = INPUTS[case]()
  x.update(PEERS[case](x, torch, torchvision))
  x["torch_version"] = np.array(torch.__version__)
  x["torchvision_version"] = np.array(torchvision.__version__)
  return x


def write(case: str) -> str:
  path = os.path.join(HERE, f"{case}.npz")
  arrays = outputs(case)
  np.savez(path, **{k: arrays[k] for k in sorted(arrays)})
  return path


if __name__ == "__main__":
  for name in sys.argv[1:] or sorted(INPUTS):
    print(write(name), os.path.getsize(os.path.join(HERE, f"{name}.npz")), "bytes")
