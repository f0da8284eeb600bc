"""Mask R-CNN (ResNet-50-FPN) with pixel or DCT input: DCTNet's COCO experiment
(experiments/maskrcnn/README.md) and its CPU-sized versions on coco128-seg.

Variants (`configs/maskrcnn_coco.py:variant=...`):
  * `spatial`: RGB pixels, the usual 7x7/2 + max-pool stem (paper: 37.3 box / 34.2 mask AP);
  * `dct24`, `dct64`: the DCT of the image upscaled 2x, the 24 / 64-channel preset, straight into
    layer1 at 1/4 of the image (DCTNet's `ResNetUpscaledStatic`; paper 37.7 / 34.6 and 38.1 / 35.0).
Scales (`scale=...`):
  * `coco` (default): DCTNet's schedule on `cocojson:DIR` (COCO 2017: `DIR/annotations/
    instances_train2017.json`, `DIR/train2017/*.jpg`, val2017 the same): images resized so the
    longer side is 1344 and padded to 1344², 2 images a step, SGD 0.0025 (momentum 0.9, weight decay
    1e-4, clip 35), 500 warm-up steps, 20 epochs with x0.1 at epochs 16 and 19, stage 1 frozen and
    the backbone from an ImageNet classification run of ours (`init_from`). For a GPU: about
    1.18 M steps of 2 images; not measured on a GPU here (on 2 CPU cores one 320² image
    takes 14 s a train step: experiments/benchmarks/RESULTS.md).
  * `coco128`: ../shared/data/coco128-seg, 96 training / 32 held-out images, 384², ResNet-50 at width
    16 with 64-channel FPN and heads, from scratch, 8 epochs, on this CPU (README: time, result).
  * `overfit`: the first 16 coco128 images, trained and evaluated on the same images (the
    pipeline-learns test: box AP >= 0.5, mask AP >= 0.4).
  * `tiny`: 4 images of a folder the test names, 128², ResNet-18 width 4, a few steps (tests).
Command (one run; experiments/maskrcnn/run.py runs the tables' variants and records them):
  python -m freqnoise.main --config=configs/maskrcnn_coco.py:variant=dct24,scale=overfit \\
      --workdir=runs/maskrcnn/overfit_dct24
Arguments (`configs/maskrcnn_coco.py:KEY=VALUE,...`): `variant` (default spatial), `scale`
(default coco), `tiny` (= scale=tiny).
"""

import ml_collections

from configs.common import (base_config, brief_run, check_choice, parse_arg, shared_data,
                            variant_input)

VARIANTS = ("spatial", "dct24", "dct64")
SCALES = ("coco", "coco128", "overfit", "tiny")
COCO128 = "yolo-seg:" + shared_data("coco128-seg")


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """Keys: variant (spatial | dct24 | dct64, default spatial), scale (coco | coco128 | overfit |
  tiny, default coco); see the module docstring."""
  args = parse_arg(arg, variant="spatial", scale="coco", tiny=False)
  if args.tiny:
    args.scale = "tiny"
  check_choice("variant", args.variant, VARIANTS)
  check_choice("scale", args.scale, SCALES)
  c = base_config()
  c.loss = "maskrcnn"                # the train step minimises the detector's five losses

  c.data.source = "cocojson:~/data/coco"  # COCO 2017 (annotations/, train2017/, val2017/)
  c.data.train_split = "train2017"   # folder / annotation file of the training images
  c.data.test_split = "val2017"      # evaluated during and after training
  c.data.train_range = (0, 0)        # (start, stop) of the split's images by file name; 0 = end
  c.data.test_range = (0, 0)        # the same for the test split
  c.data.image_size = 1344           # longer side resized to this, padded to a square
  c.data.max_instances = 100         # instances per image (more: the largest are kept)
  c.data.mask_size = 64              # each instance's mask, cropped to its box, at 64x64
  c.data.label_key = "classes"       # (the trainer checks the field exists)
  c.data.batch_size = 2              # images per step, as DCTNet on 1 GPU
  c.data.eval_batch_size = 2  # images per evaluation batch
  c.data.augment.flip = True         # horizontal flips (boxes and masks follow)
  c.data.cache_dir = ""             # (image-folder cache: not used by detection sources)

  c.model = ml_collections.ConfigDict()
  c.model.name = "maskrcnn"          # freqnoise.detection.model.MaskRCNN
  c.model.depth = 50                 # ResNet-50-FPN
  c.model.width = 64                 # layer1 channels (published)
  c.model.stem = "spatial" if args.variant == "spatial" else "frequency"  # pixels or DCT
  c.model.frozen_stages = 1          # DCTNet freezes the stem and stage 1 (no update at all)

  c.input = variant_input(args.variant)  # normalised pixels, or DCT channels
  if args.variant != "spatial":
    c.input.upscale = 2              # DCT of the 2x image: grid at 1/4, where layer1 runs
    c.input.max_fit_examples = 500   # images the coefficient statistics are fitted on

  c.optimizer.name = "sgd"  # SGD with momentum, as mmdetection
  c.optimizer.learning_rate = 0.0025  # DCTNet: 0.02 x 2/16 images
  c.optimizer.momentum = 0.9  # momentum
  c.optimizer.weight_decay = 1e-4  # coupled L2: wd·w added to the gradient (as mmdetection)
  c.optimizer.grad_clip_norm = 35.0  # global-norm gradient clip
  c.optimizer.warmup_steps = 500     # linear warm-up (from 0; mmdetection starts at 1/3)
  c.optimizer.schedule = "step"  # x decay_factor at each boundary
  c.optimizer.boundaries = (16 / 20, 19 / 20)  # x0.1 at epochs 16 and 19 of 20
  c.optimizer.decay_factor = 0.1  # the step decay
  c.num_epochs = 20  # 20 epochs (DCTNet)
  c.log_every = 50  # progress lines
  c.eval_every = 10**9               # COCO AP at the end (and with config.evals.coco)
  c.checkpoint_every = 5000  # checkpoints
  c.evals = ml_collections.ConfigDict()
  c.evals.coco = ml_collections.ConfigDict({"type": "coco", "picture_images": 4})  # AP + picture

  if args.scale in ("coco128", "overfit", "tiny"):
    c.data.source = COCO128          # ../shared/data/coco128-seg (YOLO-seg polygons)
    c.data.train_split = c.data.test_split = "train2017"  # coco128 has one folder
    c.data.image_size = 384          # longer side (coco128 images are up to 640)
    c.model.width = 16               # ResNet-50 at a quarter width: the CPU budget ...
    c.model.fpn_features = 64        # ... FPN, RPN and mask head at 64 channels (256) ...
    c.model.box_hidden = 256         # ... box head FCs of 256 (1024) ...
    c.model.roi_batch_per_image = 256  # ... and 256 sampled RoIs (512), so 64 mask RoIs (128)
    c.model.frozen_stages = 0        # from scratch: nothing to freeze
    c.model.rpn_pre_nms_train = 1000  # per level (2000 published)
    c.model.rpn_post_nms_train = 1000  # proposals kept after NMS (2000 published)
    c.optimizer.name = "adamw"       # from scratch on little data: AdamW converges in CPU time
    c.optimizer.learning_rate = 2e-3  # peak rate
    c.optimizer.weight_decay = 1e-4  # decoupled weight decay
    c.optimizer.warmup_steps = 20  # linear warm-up
    c.optimizer.schedule = "cosine"  # cosine to 0
    c.data.batch_size = 4  # images per step
    c.data.eval_batch_size = 8  # images per evaluation batch
  if args.scale == "coco128":
    c.data.train_range = (0, 96)  # the first 96 images train ...
    c.data.test_range = (96, 128)  # ... the last 32 are held out
    c.num_epochs = 8                 # 192 steps of 4 images: what the CPU allows per variant
    c.log_every = 24  # progress lines: once an epoch
    c.checkpoint_every = 96  # checkpoints: every 4 epochs
  if args.scale == "overfit":
    c.data.train_range = (0, 16)  # the first 16 images ...
    c.data.test_range = (0, 16)      # evaluated on the training images: does the chain learn?
    c.data.augment.flip = False  # the same pixels every epoch
    c.num_epochs = 100               # 400 steps of 4 images
    c.log_every = 20  # progress lines: every 5 epochs
    c.checkpoint_every = 100  # checkpoints: every 25 epochs
  if args.scale == "tiny":
    c.data.train_range = (0, 4)  # 4 images ...
    c.data.test_range = (0, 4)  # ... trained and evaluated
    c.data.image_size = 128  # 128² images
    c.data.max_instances = 8  # 8 instances an image
    c.data.mask_size = 16  # 16x16 instance masks
    c.data.batch_size = 2  # images per step
    c.data.eval_batch_size = 2  # images per evaluation batch
    c.model.depth = 18  # ResNet-18 ...
    c.model.width = 4  # ... at width 4
    c.model.fpn_features = 16  # 16-channel FPN and heads
    c.model.box_hidden = 32  # box head FCs of 32
    c.model.mask_convs = 1  # one mask-head conv
    c.model.rpn_pre_nms_train = c.model.rpn_pre_nms_test = 64  # 64 proposals per level ...
    c.model.rpn_post_nms_train = c.model.rpn_post_nms_test = 64  # ... and after NMS
    c.model.roi_batch_per_image = 32  # 32 sampled RoIs an image
    c.model.rpn_batch_per_image = 32  # 32 sampled anchors an image
    c.model.detections_pre_nms = 64  # detection candidates
    c.model.max_detections = 10  # detections an image
    c.optimizer.warmup_steps = 0  # no warm-up
    c.evals.coco.picture_images = 2  # a picture of 2 images
    brief_run(c, 4)
  return c
