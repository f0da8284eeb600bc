"""Mask R-CNN losses: NumPy closed forms, normalisation over the batch (hand-computed), torch /
torchvision's functions (live and golden), both logit layouts (27 classes: K + 1 == S), and finite
losses and gradients for an image without instances, under jit and vmap."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests.detection.peers import peer_outputs
from freqnoise.detection import detection_losses as dl
from freqnoise.detection import targets


def _np_bce(x, y):
  x = x.astype(np.float64)
  return np.maximum(x, 0) - x * y + np.log1p(np.exp(-np.abs(x)))


def _np_smooth_l1(x, beta):
  d = np.abs(x.astype(np.float64))
  return np.where(d < beta, 0.5 * d * d / beta, d - 0.5 * beta)


def _np_ce(logits, labels):
  z = logits.astype(np.float64)
  z = z - z.max(1, keepdims=True)
  return np.log(np.exp(z).sum(1)) - z[np.arange(len(labels)), labels]


def _rpn_inputs(rng, a=300):
  labels = rng.choice([-1, 0, 1], a, p=[0.5, 0.4, 0.1]).astype(np.int32)
  return (rng.normal(0, 3, a).astype(np.float32), rng.normal(0, 0.3, (a, 4)).astype(np.float32),
          labels, rng.normal(0, 0.3, (a, 4)).astype(np.float32))


def _head_inputs(rng, r=64, k=5, s=28):
  classes = np.where(rng.random(r) < 0.3, rng.integers(1, k + 1, r), 0).astype(np.int32)
  weights = (np.arange(r) < r - 8).astype(np.float32)  # 8 padding rows
  classes = classes * (weights > 0)
  return dict(
      class_logits=rng.normal(0, 2, (r, k + 1)).astype(np.float32),
      box_deltas=rng.normal(0, 1, (r, k + 1, 4)).astype(np.float32), classes=classes,
      box_targets=rng.normal(0, 1, (r, 4)).astype(np.float32), weights=weights,
      mask_logits=rng.normal(0, 2, (r, s, s, k + 1)).astype(np.float32),
      mask_targets=(rng.random((r, s, s)) < 0.4).astype(np.float32), is_fg=classes > 0)


def test_smooth_l1_closed_form():
  x = np.linspace(-2, 2, 101).astype(np.float32)
  for beta in (1.0, 1 / 9):
    np.testing.assert_allclose(dl.smooth_l1(x, beta), _np_smooth_l1(x, beta), rtol=1e-6, atol=1e-7)
  np.testing.assert_allclose(dl.smooth_l1(x, 0.0), np.abs(x))


def test_rpn_loss_closed_form():
  obj, deltas, labels, tgt = _rpn_inputs(np.random.default_rng(0))
  cls, box = jax.jit(dl.rpn_loss)(obj, deltas, labels, tgt)
  s, p = labels >= 0, labels == 1
  np.testing.assert_allclose(cls, _np_bce(obj[s], p[s]).mean(), rtol=1e-5)
  want = _np_smooth_l1(deltas[p] - tgt[p], 1 / 9).sum() / s.sum()
  np.testing.assert_allclose(box, want, rtol=1e-5)


@pytest.mark.parametrize("flat", [False, True])
def test_box_head_loss_closed_form(flat):
  x = _head_inputs(np.random.default_rng(2))
  deltas = x["box_deltas"].reshape(64, -1) if flat else x["box_deltas"]
  cls, box = jax.jit(dl.box_head_loss)(x["class_logits"], deltas, x["classes"], x["box_targets"],
                                       x["weights"])
  w = x["weights"] > 0
  np.testing.assert_allclose(cls, _np_ce(x["class_logits"][w], x["classes"][w]).mean(), rtol=1e-5)
  fg = x["classes"] > 0
  own = x["box_deltas"][np.arange(64), x["classes"]]
  want = _np_smooth_l1(own[fg] - x["box_targets"][fg], 1.0).sum() / w.sum()
  np.testing.assert_allclose(box, want, rtol=1e-5)


@pytest.mark.parametrize("channels_last", [True, False])
def test_mask_loss_closed_form_both_layouts(channels_last):
  x = _head_inputs(np.random.default_rng(4))
  logits = x["mask_logits"] if channels_last else x["mask_logits"].transpose(0, 3, 1, 2)
  got = jax.jit(dl.mask_loss, static_argnames="channels_last")(
      logits, x["classes"], x["mask_targets"], x["is_fg"], channels_last=channels_last)
  fg = x["is_fg"]
  own = x["mask_logits"][np.arange(64), :, :, x["classes"]]
  np.testing.assert_allclose(got, _np_bce(own[fg], x["mask_targets"][fg]).mean(), rtol=1e-5)
  agnostic = x["mask_logits"][..., :1]
  np.testing.assert_allclose(
      dl.mask_loss(agnostic, x["classes"], x["mask_targets"], x["is_fg"]),
      _np_bce(agnostic[fg, ..., 0], x["mask_targets"][fg]).mean(), rtol=1e-5)


def test_mask_loss_normalises_over_the_batch_hand_computed():
  # Image 0: one foreground RoI, logits 0 against targets 1: log 2 a pixel. Image 1: eight, logits
  # log 3: softplus(-log 3) = log(4 / 3) a pixel. torchvision's mean over the batch's 9 RoIs weighs
  # the lone RoI 1/9; a mean of per-image means ((log 2 + log(4/3)) / 2 = 0.490) would weigh it 1/2.
  s, r = 4, 8
  logits = np.zeros((2, r, s, s, 3), np.float32)
  logits[1] = np.log(3.0)
  logits[0, 1:] = 50.0  # background slots of image 0: large, ignored
  is_fg = np.array([[True] + [False] * 7, [True] * 8])
  classes = np.where(is_fg, np.array([[2], [1]]), 0).astype(np.int32)
  got = jax.jit(dl.mask_loss)(logits, classes, np.ones((2, r, s, s), np.float32), is_fg)
  np.testing.assert_allclose(got, (np.log(2) + 8 * np.log(4 / 3)) / 9, rtol=1e-6)  # 0.3327


def test_rpn_and_box_head_losses_normalise_over_the_batch():
  # a batch [2, rows] is torchvision's concatenation of the images' rows, with one count, even
  # when the images sample different numbers of rows
  rng = np.random.default_rng(8)
  obj, deltas, labels, tgt = _rpn_inputs(rng, 2 * 150)
  labels[150:] = np.where(labels[150:] == 1, -1, labels[150:])  # image 1: fewer sampled anchors
  b = lambda v: v.reshape((2, 150) + v.shape[1:])  # noqa: E731
  s, p = labels >= 0, labels == 1
  np.testing.assert_allclose(
      jax.jit(dl.rpn_loss)(b(obj), b(deltas), b(labels), b(tgt)),
      [_np_bce(obj[s], p[s]).mean(), _np_smooth_l1(deltas[p] - tgt[p], 1 / 9).sum() / s.sum()],
      rtol=1e-5)
  x = _head_inputs(rng)  # 8 padding rows, all in image 1 of the split below
  args = [x[k] for k in ("class_logits", "box_deltas", "classes", "box_targets", "weights")]
  cls, box = jax.jit(dl.box_head_loss)(*[v.reshape((2, 32) + v.shape[1:]) for v in args])
  w, fg = x["weights"] > 0, x["classes"] > 0
  own = x["box_deltas"][np.arange(64), x["classes"]]
  np.testing.assert_allclose(cls, _np_ce(x["class_logits"][w], x["classes"][w]).mean(), rtol=1e-5)
  np.testing.assert_allclose(box, _np_smooth_l1(own[fg] - x["box_targets"][fg], 1.0).sum()
                             / w.sum(), rtol=1e-5)


def test_mask_loss_with_27_classes_takes_the_layout_it_is_given():
  # K + 1 = 28 = S: no shape tells the class axis; heads.MaskHead's channels-last is the default.
  rng = np.random.default_rng(9)
  logits = rng.normal(0, 2, (6, 28, 28, 28)).astype(np.float32)  # [R, S, S, K + 1]
  targets = (rng.random((6, 28, 28)) < 0.4).astype(np.float32)
  classes = rng.integers(1, 28, 6).astype(np.int32)
  fg = np.array([True, True, False, True, True, False])
  own = logits[np.arange(6), :, :, classes]
  want = _np_bce(own[fg], targets[fg]).mean()
  np.testing.assert_allclose(dl.mask_loss(logits, classes, targets, fg), want, rtol=1e-5)
  first = logits.transpose(0, 3, 1, 2)  # torchvision's [R, K + 1, S, S]
  np.testing.assert_allclose(dl.mask_loss(first, classes, targets, fg, channels_last=False), want,
                             rtol=1e-5)
  with pytest.raises(ValueError, match="mask_logits .* do not agree"):
    dl.mask_loss(logits[..., :5], classes, targets, fg, channels_last=False)


@pytest.mark.parametrize("source", ["golden", "live"])
def test_losses_equal_torch_and_torchvision(source):
  """rpn_loss vs torch's BCE / smooth L1, box_head_loss vs torchvision's fastrcnn_loss, mask_loss
  on a batch of 2 images (1 and 7 foreground RoIs, K + 1 == S == 6) vs its maskrcnn_loss."""
  p = peer_outputs("detection_losses", source)
  got = jax.jit(dl.rpn_loss)(p["rpn_objectness"], p["rpn_deltas"], p["rpn_labels"],
                             p["rpn_targets"])
  np.testing.assert_allclose(got, [p["rpn_cls"], p["rpn_box"]], rtol=1e-5)
  weights = np.ones(len(p["head_classes"]), np.float32)
  got = jax.jit(dl.box_head_loss, static_argnames="beta")(
      p["head_logits"], p["head_deltas"], p["head_classes"], p["head_targets"], weights,
      beta=1 / 9)  # torchvision's beta
  np.testing.assert_allclose(got, [p["head_cls"], p["head_box"]], rtol=1e-5)
  mask_loss = jax.jit(dl.mask_loss, static_argnames="channels_last")
  got = mask_loss(p["mask_logits"], p["mask_classes"], p["mask_targets"], p["mask_is_fg"])
  np.testing.assert_allclose(got, p["mask"], rtol=1e-5)
  first = p["mask_logits"].transpose(0, 1, 4, 2, 3)
  np.testing.assert_allclose(mask_loss(first, p["mask_classes"], p["mask_targets"],
                                       p["mask_is_fg"], channels_last=False), p["mask"], rtol=1e-5)


def _image(with_instances):
  boxes = np.float32([[4, 6, 30, 28], [30, 34, 60, 62], [0, 0, 0, 0]])
  classes = np.int32([2, 1, 0]) * with_instances
  masks = np.full((3, 14, 14), 255, np.uint8) * (classes[:, None, None] > 0).astype(np.uint8)
  return boxes * (classes[:, None] > 0), classes, masks


def _total_loss(params, anchors, proposals, gt_boxes, gt_classes, gt_masks, key):
  """All five losses of one image from toy 'predictions' (params) and the real targets."""
  k1, k2 = jax.random.split(key)
  rpn = targets.rpn_targets(anchors, gt_boxes, gt_classes, k1)
  rois = targets.sample_rois(proposals, jnp.ones(proposals.shape[0], bool), gt_boxes, gt_classes,
                             k2, num_samples=32)
  mt = targets.mask_targets(rois["rois"], gt_boxes[rois["matched_gt"]],
                            gt_masks[rois["matched_gt"]])
  losses = (*dl.rpn_loss(params["obj"], params["rpn"], rpn["labels"], rpn["box_targets"]),
            *dl.box_head_loss(params["cls"], params["box"], rois["classes"], rois["box_targets"],
                              rois["weights"]),
            dl.mask_loss(params["mask"], rois["classes"], mt, rois["is_fg"]))
  return jnp.stack(losses)


def test_losses_and_grads_finite_without_instances_under_jit_and_vmap():
  rng = np.random.default_rng(6)
  c = (np.arange(16) + 0.5) * 4
  cx, cy = np.meshgrid(c, c)
  anchors = np.stack([cx - 8, cy - 8, cx + 8, cy + 8], -1).reshape(-1, 4).astype(np.float32)
  xy = rng.uniform(0, 40, (20, 2))
  proposals = np.concatenate([xy, xy + rng.uniform(4, 24, (20, 2))], 1).astype(np.float32)
  imgs = [_image(True), _image(False)]
  gt_boxes, gt_classes, gt_masks = (np.stack(v) for v in zip(*imgs))
  params = dict(obj=rng.normal(0, 20, (2, 256)), rpn=rng.normal(0, 5, (2, 256, 4)),
                cls=rng.normal(0, 20, (2, 32, 4)), box=rng.normal(0, 5, (2, 32, 4, 4)),
                mask=rng.normal(0, 20, (2, 32, 28, 28, 4)))
  params = jax.tree.map(lambda v: jnp.asarray(v, jnp.float32), params)

  def batch_loss(p):
    per_image = jax.vmap(_total_loss, in_axes=(0, None, None, 0, 0, 0, 0))(
        p, anchors, proposals, gt_boxes, gt_classes, gt_masks, jax.random.split(jax.random.key(0)))
    return jnp.sum(per_image), per_image

  (_, per_image), grads = jax.jit(jax.value_and_grad(batch_loss, has_aux=True))(params)
  per_image = np.asarray(per_image)
  assert np.all(np.isfinite(per_image))
  assert np.all(per_image[0] > 0)  # with instances: every term is active
  assert per_image[1, 0] > 0 and per_image[1, 2] > 0  # no instances: classification only
  np.testing.assert_array_equal(per_image[1, [1, 3, 4]], 0)
  for g in jax.tree.leaves(grads):
    assert np.all(np.isfinite(np.asarray(g)))
  np.testing.assert_array_equal(grads["mask"][1], 0)
  np.testing.assert_array_equal(grads["box"][1], 0)
