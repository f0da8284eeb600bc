"""Mask R-CNN targets: matching vs NumPy / torchvision, sampler counts, RPN and RoI targets that
decode back to the GT, mask targets vs NumPy, closed forms and torchvision's RoIAlign."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests.detection.peers import peer_outputs
from freqnoise.detection import boxes as box_ops
from freqnoise.detection import targets


def _np_iou(a, b):
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  w = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]),
              0, None)
  h = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]),
              0, None)
  area = lambda x: (x[:, 2] - x[:, 0]) * (x[:, 3] - x[:, 1])  # noqa: E731
  union = area(a)[:, None] + area(b)[None, :] - w * h
  return np.where(union > 0, w * h / np.where(union > 0, union, 1), 0)


def _np_match(iou, gt_valid, fg, bg, low_quality):
  """Reference matcher, loop by loop."""
  a, n = iou.shape
  matched, labels = np.zeros(a, np.int32), np.zeros(a, np.int32)
  for i in range(a):
    best, arg = -1.0, 0
    for j in range(n):
      if gt_valid[j] and iou[i, j] > best:
        best, arg = iou[i, j], j
    matched[i] = arg
    labels[i] = 1 if best >= fg else (0 if best < bg else -1)
  if low_quality:
    for j in range(n):
      if gt_valid[j] and iou[:, j].max() > 0:
        labels[iou[:, j] == iou[:, j].max()] = 1
  return matched, labels


def _random_boxes(rng, n, size=64.0, min_side=4.0):
  xy = rng.uniform(0, size - min_side, (n, 2))
  wh = rng.uniform(min_side, size / 2, (n, 2))
  return np.concatenate([xy, np.minimum(xy + wh, size)], 1).astype(np.float32)


@pytest.mark.parametrize("low_quality", [False, True])
def test_match_equals_numpy_reference_with_ties_and_padding(low_quality):
  rng = np.random.default_rng(0)
  fn = jax.jit(lambda i, v: targets.match(i, v, 0.7, 0.3, low_quality))
  for _ in range(20):
    # quantised IoUs: many exact ties, within a GT's column and across GTs
    iou = rng.choice(np.float32([0, 0.1, 0.3, 0.5, 0.6, 0.7, 0.9]), (40, 5))
    valid = rng.random(5) < 0.7
    iou[:, ~valid] = rng.choice([0.0, 0.95], (40, int((~valid).sum())))  # padding never wins
    got = fn(jnp.asarray(iou), jnp.asarray(valid))
    want = _np_match(iou, valid, 0.7, 0.3, low_quality)
    np.testing.assert_array_equal(got[1], want[1])
    fg = want[1] == 1
    np.testing.assert_array_equal(np.asarray(got[0])[fg], want[0][fg])
    assert np.all(valid[np.asarray(got[0])[fg]])


def test_match_low_quality_ties_and_no_gt():
  iou = np.float32([[0.4, 0.0], [0.4, 0.1], [0.2, 0.6], [0.1, 0.6], [0.0, 0.5], [0.9, 0.9]])
  valid = np.array([True, False])
  m, lab = targets.match(iou, valid, 0.7, 0.3)
  np.testing.assert_array_equal(lab, [-1, -1, 0, 0, 0, 1])
  np.testing.assert_array_equal(m[lab == 1], [0])
  m, lab = targets.match(iou[:5], np.array([True, True]), 0.7, 0.3, allow_low_quality=True)
  np.testing.assert_array_equal(lab, [1, 1, 1, 1, -1])  # both ties of GT 0 and of GT 1
  np.testing.assert_array_equal(m[:4], [0, 0, 1, 1])
  m, lab = targets.match(iou, np.array([False, False]), 0.7, 0.3, allow_low_quality=True)
  np.testing.assert_array_equal(lab, np.zeros(6))  # no GT: everything background


@pytest.mark.parametrize("source", ["golden", "live"])
def test_match_equals_torchvision_matcher(source):
  p = peer_outputs("targets", source)  # 70 anchors (10 duplicated: tied best anchors), 6 GT
  valid = p["match_gt_valid"]
  fg, bg = p["match_thresholds"].tolist()
  for low_quality in (0, 1):
    m, lab = jax.jit(targets.match, static_argnums=(2, 3, 4))(p["match_iou"], valid, fg, bg,
                                                              bool(low_quality))
    tv = p[f"matcher_{low_quality}"]
    np.testing.assert_array_equal(lab, np.where(tv >= 0, 1, np.where(tv == -1, 0, -1)))
    np.testing.assert_array_equal(np.asarray(m)[tv >= 0], np.flatnonzero(valid)[tv[tv >= 0]])

@pytest.mark.parametrize("num_pos,num_neg", [(300, 1000), (20, 1000), (20, 100), (0, 0)])
def test_sample_counts_exact_and_deterministic(num_pos, num_neg):
  labels = np.full(1500, -1, np.int32)
  perm = np.random.default_rng(2).permutation(1500)
  labels[perm[:num_pos]], labels[perm[num_pos:num_pos + num_neg]] = 1, 0
  fn = jax.jit(lambda l, k: targets.sample(l, k, 256, 0.5))
  pos, neg = map(np.asarray, fn(labels, jax.random.key(0)))
  want_pos = min(num_pos, 128)
  assert pos.sum() == want_pos and neg.sum() == min(num_neg, 256 - want_pos)
  assert np.all(labels[pos] == 1) and np.all(labels[neg] == 0)
  again = fn(labels, jax.random.key(0))
  np.testing.assert_array_equal(again[0], pos)
  np.testing.assert_array_equal(again[1], neg)
  other = fn(labels, jax.random.key(1))
  if num_pos > 128:
    assert not np.array_equal(other[0], pos)
  idx, is_pos, valid = map(np.asarray, targets.sample_indices(labels, jax.random.key(0), 256, 0.5))
  assert len(set(idx[valid])) == valid.sum() == pos.sum() + neg.sum()
  assert np.all(is_pos[valid] == (labels[idx[valid]] == 1))
  pos, neg = targets.sample(labels, jax.random.key(0), 16, 0.0)  # no positives wanted
  assert pos.sum() == 0 and neg.sum() == min(num_neg, 16)


def test_sample_is_uniform_over_candidates():
  labels = np.r_[np.ones(40, np.int32), np.zeros(60, np.int32)]
  keys = jax.random.split(jax.random.key(3), 400)
  pos, neg = jax.jit(jax.vmap(lambda k: targets.sample(labels, k, 32, 0.25)))(keys)
  freq_pos, freq_neg = np.asarray(pos).mean(0)[:40], np.asarray(neg).mean(0)[40:]
  np.testing.assert_allclose(freq_pos, 8 / 40, atol=0.08)
  np.testing.assert_allclose(freq_neg, 24 / 60, atol=0.1)


def _anchors(size=64, stride=4, sides=(8.0, 16.0, 32.0)):
  c = (np.arange(size // stride) + 0.5) * stride
  cx, cy, s = np.meshgrid(c, c, np.float32(sides), indexing="ij")
  return np.stack([cx - s / 2, cy - s / 2, cx + s / 2, cy + s / 2], -1).reshape(-1, 4)


def _gt(with_instances=True):
  boxes = np.float32([[4, 6, 30, 28], [0, 0, 0, 0], [30, 34, 60, 62], [0, 0, 0, 0]])
  classes = np.int32([3, 0, 1, 0]) if with_instances else np.zeros(4, np.int32)
  return boxes * (classes[:, None] > 0), classes


def test_rpn_targets_sample_and_decode_to_gt():
  anchors = _anchors().astype(np.float32)
  gt, classes = _gt()
  out = jax.jit(targets.rpn_targets)(anchors, gt, classes, jax.random.key(0))
  lab, tgt = np.asarray(out["labels"]), np.asarray(out["box_targets"])
  matched, want = _np_match(_np_iou(anchors, gt), classes > 0, 0.7, 0.3, True)
  assert 0 < (want == 1).sum() <= 128  # so every positive is sampled
  np.testing.assert_array_equal(lab == 1, want == 1)
  assert (lab >= 0).sum() == 256 and np.all(want[lab == 0] == 0)
  fg = lab == 1
  decoded = box_ops.decode(tgt[fg], anchors[fg], targets.RPN_BOX_WEIGHTS)
  np.testing.assert_allclose(decoded, gt[matched[fg]], atol=1e-3)
  assert set(matched[fg]) == {0, 2} and np.all(tgt[~fg] == 0)


def test_rpn_targets_without_instances_all_background():
  anchors = _anchors().astype(np.float32)
  gt, classes = _gt(with_instances=False)
  out = jax.jit(targets.rpn_targets)(anchors, gt, classes, jax.random.key(0))
  assert (out["labels"] == 0).sum() == 256 and (out["labels"] == 1).sum() == 0
  assert np.all(out["box_targets"] == 0)


def test_sample_rois_includes_gt_and_decodes_to_gt():
  rng = np.random.default_rng(4)
  gt, classes = _gt()
  props = _random_boxes(rng, 800)
  props_valid = rng.random(800) < 0.8
  props[~props_valid] = [999, 999, 1000, 1000]  # recognisable: must never be sampled
  out = jax.jit(targets.sample_rois)(props, props_valid, gt, classes, jax.random.key(0))
  rois, fg, w = (np.asarray(out[k]) for k in ("rois", "is_fg", "weights"))
  assert w.sum() == 512 and fg.sum() <= 128 and rois.shape == (512, 4)
  assert not np.any(rois[:, 0] == 999)
  for g in (0, 2):  # each valid GT box is itself a sampled foreground RoI of its class
    hit = np.all(rois == gt[g], axis=1) & fg
    assert hit.any() and np.all(np.asarray(out["classes"])[hit] == classes[g])
  assert not np.any(np.all(rois == 0, axis=1) & (w > 0))  # padded GT never sampled
  cand = np.concatenate([props, gt])
  cand_valid = np.r_[props_valid, classes > 0]
  m, lab = _np_match(_np_iou(cand, gt), classes > 0, 0.5, 0.5, False)
  lab[~cand_valid] = -1
  assert fg.sum() == min((lab == 1).sum(), 128)
  mg = np.asarray(out["matched_gt"])
  np.testing.assert_array_equal(np.asarray(out["classes"]), np.where(fg, classes[mg], 0))
  decoded = box_ops.decode(np.asarray(out["box_targets"])[fg], rois[fg], targets.RCNN_BOX_WEIGHTS)
  np.testing.assert_allclose(decoded, gt[mg[fg]], atol=1e-3)
  assert np.all(np.asarray(out["box_targets"])[~fg] == 0)
  assert np.all(_np_iou(rois[fg], gt).max(1) >= 0.5)
  assert np.all(_np_iou(rois[~fg], gt[classes > 0]).max(1) < 0.5)


def test_sample_rois_pads_when_few_candidates_and_without_instances():
  rng = np.random.default_rng(5)
  gt, classes = _gt()
  props = _random_boxes(rng, 10)
  valid = np.arange(10) < 7
  fn = jax.jit(jax.vmap(targets.sample_rois))  # a batch of 2 images: with / without instances
  gt2, cls2 = _gt(with_instances=False)
  out = fn(np.stack([props, props]), np.stack([valid, valid]), np.stack([gt, gt2]),
           np.stack([classes, cls2]), jax.random.split(jax.random.key(0), 2))
  out = jax.tree.map(np.asarray, out)
  np.testing.assert_array_equal(out["weights"].sum(1), [9, 7])  # 7 proposals (+ 2 GT)
  pad = out["weights"] == 0
  assert np.all(out["rois"][pad] == 0) and np.all(out["classes"][pad] == 0)
  assert not np.any(out["is_fg"][pad])
  assert out["is_fg"][0].sum() >= 2 and not out["is_fg"][1].any()
  assert np.all(out["classes"][1] == 0) and np.all(out["box_targets"][1] == 0)
  assert all(np.isfinite(v).all() for v in out.values() if v.dtype.kind == "f")


def _np_mask_targets(rois, gts, masks, s):
  """Reference: explicit floor / ceil bilinear sampling, 0 outside the crop, float64."""
  r, m = masks.shape[0], masks.shape[-1]
  out = np.zeros((r, s, s))
  def at(mask, y, x):
    return float(mask[y, x]) if 0 <= y < m and 0 <= x < m else 0.0
  for k in range(r):
    x1, y1, x2, y2 = rois[k].astype(np.float64)
    gx1, gy1, gx2, gy2 = gts[k].astype(np.float64)
    for i in range(s):
      for j in range(s):
        u = (x1 + (j + 0.5) * (x2 - x1) / s - gx1) / (gx2 - gx1) * m - 0.5
        v = (y1 + (i + 0.5) * (y2 - y1) / s - gy1) / (gy2 - gy1) * m - 0.5
        x0, y0 = int(np.floor(u)), int(np.floor(v))
        fx, fy = u - x0, v - y0
        val = ((1 - fy) * ((1 - fx) * at(masks[k], y0, x0) + fx * at(masks[k], y0, x0 + 1))
               + fy * ((1 - fx) * at(masks[k], y0 + 1, x0) + fx * at(masks[k], y0 + 1, x0 + 1)))
        out[k, i, j] = val / 255
  return out


@pytest.mark.parametrize("m,s", [(14, 28), (28, 28), (40, 7)])
def test_mask_targets_equal_numpy_reference(m, s):
  rng = np.random.default_rng(6)
  gts = _random_boxes(rng, 6)
  rois = gts + rng.uniform(-6, 6, (6, 4)).astype(np.float32)
  masks = rng.integers(0, 256, (6, m, m)).astype(np.uint8)
  got = np.asarray(jax.jit(targets.mask_targets, static_argnums=3)(rois, gts, masks, s))
  ref = _np_mask_targets(rois, gts, masks, s)
  sure = np.abs(ref - 0.5) > 1e-4
  assert sure.mean() > 0.95 and set(np.unique(got)) <= {0.0, 1.0}
  np.testing.assert_array_equal(got[sure], (ref >= 0.5)[sure])


def test_mask_targets_closed_forms():
  gt = np.float32([[10.5, 20.0, 50.5, 44.0]])
  full = np.full((1, 28, 28), 255, np.uint8)
  half = np.zeros((1, 28, 28), np.uint8)
  half[:, :, :14] = 255  # left half of the instance's box
  mid = 10.5 + 20.0
  mask_targets = jax.jit(targets.mask_targets)
  left, right = np.float32([[10.5, 20, mid, 44]]), np.float32([[mid, 20, 50.5, 44]])
  for m in (full, full[:, :14, :14], np.full((1, 50, 50), 255, np.uint8)):
    np.testing.assert_array_equal(mask_targets(gt, gt, m), np.ones((1, 28, 28)))
  np.testing.assert_array_equal(mask_targets(left, gt, half), np.ones((1, 28, 28)))
  np.testing.assert_array_equal(mask_targets(right, gt, half), np.zeros((1, 28, 28)))
  whole = np.asarray(mask_targets(gt, gt, half))
  np.testing.assert_array_equal(whole[0, :, :14], 1)
  np.testing.assert_array_equal(whole[0, :, 14:], 0)
  far = np.float32([[100, 100, 120, 130]])  # RoI outside the GT box: nothing of the instance
  np.testing.assert_array_equal(mask_targets(far, gt, full), np.zeros((1, 28, 28)))
  zero = np.zeros((1, 4), np.float32)  # padding row (0 box, 0 GT): finite, 0
  np.testing.assert_array_equal(mask_targets(zero, zero, full * 0), np.zeros((1, 28, 28)))


@pytest.mark.parametrize("source", ["golden", "live"])
def test_mask_targets_equal_roi_align_of_full_mask(source):
  """Where the crop holds the instance's pixels exactly (pixel-aligned box, M = box side), the
  target is torchvision's RoIAlign(aligned=True, sampling_ratio=1) of the full mask, >= 0.5."""
  p = peer_outputs("targets", source)
  rois, ref = p["mask_rois"], p["mask_roi_align"]
  n = len(rois)
  got = np.asarray(jax.jit(targets.mask_targets)(rois, np.repeat(p["mask_gt_box"], n, 0),
                                                 np.repeat(p["mask_crop"][None], n, 0)))
  sure = np.abs(ref - 0.5) > 1e-4
  assert sure.mean() > 0.95
  np.testing.assert_array_equal(got[sure], (ref >= 0.5)[sure])
