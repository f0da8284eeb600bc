"""`MaskRCNN` at test size (configs/maskrcnn_coco.py scale=tiny): feature-map shapes, jitted init,
training and evaluation with the values they must have, images without instances, a few steps that
learn; and the pieces added for it: the DCT transform's `upscale` and ResNet's `frozen_stages`.

Compiling the detector costs 10-60 s a function on CPU, so the module compiles three (init,
training loss + gradient, evaluation) once, in module-scoped fixtures, and every test shares them.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from configs import maskrcnn_coco
from freqnoise.data.transforms import build_transform
from freqnoise.detection.model import LOSS_NAMES, MaskRCNN
from freqnoise.freq import dct
from freqnoise.freq.transform import DCTTransform
from freqnoise.models import build_model
from freqnoise.models.resnet import ResNet

K = 3                 # object classes
SIDE = 128            # input image side
N, M = 8, 16          # instances per image, mask cells (the tiny config's max_instances, mask_size)
STEPS, LR = 30, 3e-3  # the learning test: Adam steps on one batch, and their rate


@pytest.fixture(scope="module", autouse=True)
def cheap_random_init():
  """Partitionable threefry (JAX's default) makes XLA:CPU compile parameter initialisers ~3x
  slower (the jitted init of this detector: ~50 s instead of ~18 s). The random values differ from
  the default's; the margins below (loss ratios, detections after training) were measured here."""
  saved = jax.config.jax_threefry_partitionable
  jax.config.update("jax_threefry_partitionable", False)
  yield
  jax.config.update("jax_threefry_partitionable", saved)


def tiny_model(**overrides) -> MaskRCNN:
  c = maskrcnn_coco.get_config("scale=tiny")
  assert (c.model.depth, c.model.width, c.model.fpn_features, c.model.box_hidden,
          c.model.mask_convs, c.model.max_detections) == (18, 4, 16, 32, 1, 10)
  c.model.update(overrides)
  return build_model(c.model, num_classes=K)


# Per image: (class, x1, y1, x2, y2) of bright rectangles on a dark background.
OBJECTS = ([(1, 16, 24, 72, 88), (3, 84, 8, 120, 56)], [(2, 32, 40, 100, 112)])
COLOURS = {1: (1.0, 0.2, 0.2), 2: (0.2, 1.0, 0.2), 3: (0.2, 0.2, 1.0)}


def synthetic_batch(objects=OBJECTS) -> dict[str, np.ndarray]:
  """Normalised pixels [B, 128, 128, 3] and the targets of `objects`: boxes, classes (0 = padding),
  box-cropped masks (a rectangle fills its box: all 255) and the content size."""
  b = len(objects)
  pixels = np.full((b, SIDE, SIDE, 3), 0.1, np.float32)
  boxes, classes = np.zeros((b, N, 4), np.float32), np.zeros((b, N), np.int32)
  masks = np.zeros((b, N, M, M), np.uint8)
  for i, image in enumerate(objects):
    for j, (cls, x1, y1, x2, y2) in enumerate(image):
      pixels[i, y1:y2, x1:x2] = COLOURS[cls]
      boxes[i, j], classes[i, j], masks[i, j] = (x1, y1, x2, y2), cls, 255
  return {"image": (pixels - 0.5) / 0.25, "boxes": boxes, "classes": classes, "masks": masks,
          "size": np.full((b, 2), SIDE, np.int32)}


def targets_of(batch):
  return {k: batch[k] for k in ("boxes", "classes", "masks", "size")}


@pytest.fixture(scope="module")
def model():
  return tiny_model()


@pytest.fixture(scope="module")
def variables(model):
  x = jnp.zeros((2, SIDE, SIDE, 3))
  init = jax.jit(lambda key: model.init({"params": key}, x, train=False))
  return init(jax.random.PRNGKey(0))


@pytest.fixture(scope="module")
def loss_and_grad(model):
  """jit((params, batch_stats, image, targets, key) -> ((total, (losses, batch_stats)), grads))."""
  def loss(params, batch_stats, image, targets, key):
    losses, updates = model.apply({"params": params, "batch_stats": batch_stats}, image,
                                  train=True, targets=targets, rngs={"sampling": key},
                                  mutable=["batch_stats"])
    return sum(losses.values()), (losses, updates["batch_stats"])
  return jax.jit(jax.value_and_grad(loss, has_aux=True))


@pytest.fixture(scope="module")
def evaluate(model):
  return jax.jit(lambda v, image, size: model.apply(v, image, train=False, size=size))


@pytest.fixture(scope="module")
def trained(variables, loss_and_grad):
  """`STEPS` Adam steps on `synthetic_batch()`: (variables after them, the total loss of each)."""
  batch = synthetic_batch()
  tx = optax.adam(LR)
  params, batch_stats = variables["params"], variables["batch_stats"]
  opt_state = tx.init(params)
  update = jax.jit(lambda g, s, p: tx.update(g, s, p))
  totals = []
  for step in range(STEPS):
    key = jax.random.fold_in(jax.random.PRNGKey(1), step)
    (total, (_, batch_stats)), grads = loss_and_grad(params, batch_stats, batch["image"],
                                                     targets_of(batch), key)
    updates, opt_state = update(grads, opt_state, params)
    params = optax.apply_updates(params, updates)
    totals.append(float(total))
  return {"params": params, "batch_stats": batch_stats}, totals


# ---------------------------------------------------------------------------------- feature maps
def _pyramid(model, x):
  """Shapes of the backbone's C2..C5 and the FPN's P2..P6 (traced, not compiled)."""
  def levels(m, x):
    feats = m.backbone(x, train=False)
    return feats, m.fpn(feats)
  return jax.eval_shape(lambda x: model.init_with_output(jax.random.PRNGKey(0), x,
                                                         method=levels)[0], x)


@pytest.mark.parametrize("stem, shape", [("spatial", (2, SIDE, SIDE, 3)),
                                         ("frequency", (2, SIDE // 4, SIDE // 4, 24))])
def test_backbone_and_fpn_levels_have_strides_4_to_64(stem, shape):
  c, p = _pyramid(tiny_model(stem=stem), jax.ShapeDtypeStruct(shape, jnp.float32))
  assert [x.shape for x in c] == [(2, 32, 32, 4), (2, 16, 16, 8), (2, 8, 8, 16), (2, 4, 4, 32)]
  assert [x.shape for x in p] == [(2, s, s, 16) for s in (32, 16, 8, 4, 2)]


@pytest.mark.parametrize("stem, shape, message", [
    ("spatial", (1, 96, 96, 3), r"multiples of 64 .*got 96x96 \(input \(96, 96\) x stride 1\)"),
    ("frequency", (1, 24, 32, 24), r"multiples of 64 .*got 96x128 \(input \(24, 32\) x stride 4\)")])
def test_an_image_side_not_a_multiple_of_64_is_named(stem, shape, message):
  x = jax.ShapeDtypeStruct(shape, jnp.float32)
  with pytest.raises(ValueError, match=message):
    jax.eval_shape(lambda x: tiny_model(stem=stem).init(jax.random.PRNGKey(0), x, train=False), x)


# ---------------------------------------------------------------------------------- init, train, eval
def test_init_holds_every_part_and_batch_statistics(variables):
  assert set(variables) == {"params", "batch_stats"}
  assert set(variables["params"]) == {"backbone", "fpn", "rpn", "box_head", "mask_head"}
  head = variables["params"]["box_head"]
  assert head["cls"]["kernel"].shape == (32, K + 1) and head["reg"]["kernel"].shape == (32, 4 * (K + 1))
  assert variables["params"]["mask_head"]["logits"]["kernel"].shape == (1, 1, 16, K + 1)
  assert jax.tree.all(jax.tree.map(lambda a: bool(jnp.isfinite(a).all()), variables))


def test_training_returns_the_five_losses_at_their_initial_values(variables, loss_and_grad):
  """At init the RPN and box classifiers are near uniform: BCE ~ log 2, CE ~ log(K + 1)."""
  batch = synthetic_batch()
  (total, (losses, batch_stats)), grads = loss_and_grad(
      variables["params"], variables["batch_stats"], batch["image"], targets_of(batch),
      jax.random.PRNGKey(1))
  losses = {k: float(v) for k, v in losses.items()}
  assert set(losses) == set(LOSS_NAMES)
  assert float(total) == pytest.approx(sum(losses.values()), rel=1e-6)
  assert losses["rpn_cls"] == pytest.approx(np.log(2), abs=0.02)
  assert losses["rcnn_cls"] == pytest.approx(np.log(K + 1), abs=0.05)
  for name in ("rpn_box", "rcnn_box", "mask"):
    assert 0.0 < losses[name] < 5.0, (name, losses[name])
  # BatchNorm in training mode moved its running statistics; every gradient is finite
  moved = jax.tree.map(lambda a, b: bool((a != b).any()), batch_stats, variables["batch_stats"])
  assert all(jax.tree.leaves(moved))
  assert all(bool(jnp.isfinite(g).all()) for g in jax.tree.leaves(grads))


def _check_detections(dets, size, score_threshold):
  dets = jax.device_get(dets)
  assert {k: (v.shape, v.dtype) for k, v in dets.items()} == {
      "boxes": ((2, 10, 4), np.float32), "scores": ((2, 10), np.float32),
      "classes": ((2, 10), np.int32), "valid": ((2, 10), np.bool_),
      "mask_probs": ((2, 10, 28, 28), np.float32)}
  valid = dets["valid"]
  for b in range(2):
    v = valid[b]
    np.testing.assert_array_equal(v, np.sort(v)[::-1])  # the detections first, then padding
    scores, boxes = dets["scores"][b, v], dets["boxes"][b, v]
    assert np.all(np.diff(scores) <= 0)  # best first
    assert np.all((score_threshold < scores) & (scores <= 1))
    assert np.all((1 <= dets["classes"][b, v]) & (dets["classes"][b, v] <= K))
    h, w = size[b]
    assert np.all((0 <= boxes[:, 0]) & (boxes[:, 0] < boxes[:, 2]) & (boxes[:, 2] <= w))
    assert np.all((0 <= boxes[:, 1]) & (boxes[:, 1] < boxes[:, 3]) & (boxes[:, 3] <= h))
  for k in ("boxes", "scores", "classes", "mask_probs"):
    assert not np.any(dets[k][~valid]), k  # padding rows are zeros
  assert np.all((0 <= dets["mask_probs"]) & (dets["mask_probs"] <= 1))
  return dets


def test_evaluation_detections_are_valid_rows_then_zeros(model, variables, trained, evaluate):
  """At init every class scores ~1/(K + 1) > score_threshold: all 10 rows are detections. After
  training on the batch, the detections of each image are its rectangles."""
  batch = synthetic_batch()
  size = np.array([[SIDE, SIDE], [96, 112]], np.int32)  # image 1: boxes clipped to 96 x 112
  dets = _check_detections(evaluate(variables, batch["image"], size), size, model.score_threshold)
  assert dets["valid"].all()
  np.testing.assert_allclose(dets["scores"], 1 / (K + 1), atol=0.02)
  # `size` is what clips: with the whole 128² as content, image 1 has boxes outside 96 x 112
  assert np.any(dets["boxes"][1, :, 3] == 96)
  full = _check_detections(evaluate(variables, batch["image"], batch["size"]), batch["size"],
                           model.score_threshold)
  assert np.any((full["boxes"][1, :, 2] > 112) | (full["boxes"][1, :, 3] > 96))
  dets = _check_detections(evaluate(trained[0], batch["image"], batch["size"]), batch["size"],
                           model.score_threshold)
  assert dets["valid"].any(axis=1).all() and not dets["valid"].all(axis=1).any()
  for b, image in enumerate(OBJECTS):  # the best detection is one of the image's rectangles
    cls, *box = max(image, key=lambda o: _iou(o[1:], dets["boxes"][b, 0]))
    assert dets["classes"][b, 0] == cls and _iou(box, dets["boxes"][b, 0]) > 0.7, b
    for cls, *box in image:  # and every rectangle is found with its class
      found = dets["valid"][b] & (dets["classes"][b] == cls)
      assert max(_iou(box, d) for d in dets["boxes"][b, found]) > 0.5, (b, cls)


def _iou(a, b) -> float:
  w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
  h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
  area = lambda r: (r[2] - r[0]) * (r[3] - r[1])
  return w * h / (area(a) + area(b) - w * h)


# ---------------------------------------------------------------------------------- no instances
def test_images_without_instances_give_finite_losses_and_gradients(variables, loss_and_grad):
  """An empty image beside one with instances, and a batch of two empty images: every loss and
  gradient is finite; with no instance at all the box and mask terms are exactly 0 and no
  gradient reaches the box regressor or the mask head."""
  key = jax.random.PRNGKey(1)
  params, batch_stats = variables["params"], variables["batch_stats"]
  results = {}
  for name, objects in (("one empty", (OBJECTS[0], [])), ("both empty", ([], []))):
    batch = synthetic_batch(objects)
    (total, (losses, _)), grads = loss_and_grad(params, batch_stats, batch["image"],
                                                targets_of(batch), key)
    assert np.isfinite(float(total)), name
    assert all(np.isfinite(float(v)) for v in losses.values()), (name, losses)
    assert all(bool(jnp.isfinite(g).all()) for g in jax.tree.leaves(grads)), name
    results[name] = ({k: float(v) for k, v in losses.items()}, grads)
  one, grads_one = results["one empty"]
  assert all(one[k] > 0 for k in LOSS_NAMES), one
  none, grads_none = results["both empty"]
  assert (none["rpn_box"], none["rcnn_box"], none["mask"]) == (0.0, 0.0, 0.0)
  assert none["rpn_cls"] > 0 and none["rcnn_cls"] > 0
  nonzero = lambda tree: any(bool(jnp.any(g != 0)) for g in jax.tree.leaves(tree))
  assert not nonzero(grads_none["mask_head"]) and not nonzero(grads_none["box_head"]["reg"])
  assert not nonzero(grads_none["rpn"]["reg"])
  assert nonzero(grads_one["mask_head"]) and nonzero(grads_one["box_head"]["reg"])
  assert nonzero(grads_none["backbone"]) and nonzero(grads_none["box_head"]["cls"])


# ---------------------------------------------------------------------------------- learning
def test_adam_steps_on_one_batch_lower_the_loss(trained):
  """Measured: 3.32 -> 0.72 (x0.22); means of the first and last 5 steps 2.78 -> 0.93 (x0.33)."""
  _, totals = trained
  assert np.all(np.isfinite(totals))
  assert totals[-1] < 0.4 * totals[0], totals
  assert np.mean(totals[-5:]) < 0.5 * np.mean(totals[:5]), totals


# ---------------------------------------------------------------------------------- DCT upscale
def test_dct_upscale_is_the_block_dct_of_the_bilinear_2x_image():
  images = np.random.default_rng(0).integers(0, 256, (2, 16, 24, 3)).astype(np.uint8)
  transform = DCTTransform(channels=24, upscale=2)
  coeffs = transform.coefficients(images)
  assert coeffs.shape == (2, 4, 6, 24)  # the 8x8 grid of a 32 x 48 image: 1/4 of the input
  big = jax.image.resize(images.astype(np.float32), (2, 32, 48, 3), "bilinear")
  expected = dct.block_dct(big, chroma="444")[..., transform.channels]
  np.testing.assert_allclose(coeffs, expected, rtol=1e-6, atol=1e-4)
  # upscale=1 is the plain block DCT; a constant image stays constant: only the 3 DC channels
  np.testing.assert_array_equal(DCTTransform(channels=24).coefficients(images),
                                dct.block_dct(images.astype(np.float32))[..., transform.channels])
  flat = np.full((1, 8, 8, 3), 90, np.uint8)
  up, plain = (np.asarray(DCTTransform(channels=192, upscale=u).coefficients(flat)) for u in (2, 1))
  assert up.shape == (1, 2, 2, 192) and plain.shape == (1, 1, 1, 192)
  ac = np.ones(192, bool)
  ac[[0, 64, 128]] = False
  np.testing.assert_allclose(up[..., ac], 0, atol=1e-3)
  np.testing.assert_allclose(up[..., ~ac], np.broadcast_to(plain[..., ~ac], (1, 2, 2, 3)),
                             rtol=1e-5)
  # the config's input block: a 128² image -> the 32x32x24 grid the frequency stem takes
  block = maskrcnn_coco.get_config("variant=dct24,scale=tiny").input
  assert build_transform(block).coefficients(np.zeros((1, 128, 128, 3), np.uint8)).shape == (
      1, 32, 32, 24)


@pytest.mark.parametrize("upscale", [0, 1.5, True, -2, "2"])
def test_dct_bad_upscale_raises(upscale):
  with pytest.raises(ValueError, match=r"upscale must be a positive integer, got"):
    DCTTransform(channels=24, upscale=upscale)


# ---------------------------------------------------------------------------------- frozen stages
def test_frozen_stages_get_no_gradient_and_keep_running_statistics():
  """frozen_stages=1: the stem and layer1 get exactly zero gradient and their BatchNorms use (and
  keep) their running statistics in training mode; layer2 onwards train as usual, and with
  frozen_stages=0 (the default) so do the stem and layer1."""
  frozen_net = ResNet(num_classes=1, stage_sizes=(1, 1, 1, 1), width=4, features_only=True,
                      frozen_stages=1)
  free_net = frozen_net.clone(frozen_stages=0)
  x = jax.random.normal(jax.random.PRNGKey(0), (2, 32, 32, 3)) * 2 + 1

  @jax.jit
  def run(key):
    variables = frozen_net.init(key, x, train=False)
    # non-trivial running statistics, so "uses them" differs from "uses the batch's"
    stats = jax.tree.map(lambda a: a + 0.5, variables["batch_stats"])

    def loss(params, net):
      feats, updates = net.apply({"params": params, "batch_stats": stats}, x, train=True,
                                 mutable=["batch_stats"])
      return sum(jnp.sum(f ** 2) for f in feats), (feats, updates["batch_stats"])

    grads, (feats, new_stats) = jax.grad(loss, has_aux=True)(variables["params"], frozen_net)
    free_grads, _ = jax.grad(loss, has_aux=True)(variables["params"], free_net)
    eval_feats = frozen_net.apply({"params": variables["params"], "batch_stats": stats}, x,
                                  train=False)
    return stats, grads, feats, new_stats, free_grads, eval_feats

  stats, grads, feats, new_stats, free_grads, eval_feats = run(jax.random.PRNGKey(1))
  frozen = ["conv1", "bn1", "layer1_0"]
  assert set(frozen) < set(grads)
  nonzero = lambda tree: any(bool(jnp.any(g != 0)) for g in jax.tree.leaves(tree))
  moved = lambda name: any(bool(jnp.any(a != b)) for a, b in zip(
      jax.tree.leaves(new_stats.get(name, {})), jax.tree.leaves(stats.get(name, {}))))
  for name in frozen:
    for g in jax.tree.leaves(grads[name]):
      np.testing.assert_array_equal(g, 0, err_msg=name)
    assert not moved(name), name  # (conv1 has no statistics; bn1 and the blocks' BNs do)
    assert nonzero(free_grads[name]), name
  for name in ("layer2_0", "layer3_0", "layer4_0"):
    assert nonzero(grads[name]) and moved(name), name
  # C2 in training mode is C2 in evaluation mode (running statistics); C3 is not
  np.testing.assert_allclose(feats[0], eval_feats[0], rtol=1e-5, atol=1e-5)
  assert not np.allclose(feats[1], eval_feats[1], atol=1e-3)
