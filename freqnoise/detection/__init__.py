"""Mask R-CNN (ResNet-50-FPN) in Flax, static shapes end to end, with spatial or frequency input.

Conventions shared by every module of this package:
  * Boxes are float32 `(x1, y1, x2, y2)` in pixels of the model's input image (after resizing),
    continuous coordinates: pixel column i covers [i, i + 1); width = x2 - x1 (no "+1"), as in
    torchvision and detectron2.
  * Instances are padded to a fixed count N per image: `classes` int32 [N] holds 1..K for objects
    and 0 for padding (0 is also the R-CNN background class); padded `boxes` are all 0.
  * Instance masks travel cropped to their own box and resampled to `M x M` (`masks` uint8 [N, M, M],
    0..255 = the fraction of each cell inside the instance), so a batch holds N * M * M bytes per
    image rather than N full-image masks; mask targets sample them at each RoI's grid.
  * Images are uint8 [H, W, 3], resized keeping the aspect ratio and padded with zeros at the
    bottom and right to a fixed H x W (multiples of 32); `size` int32 [2] is the content's
    (height, width), `scale` float32 the resize factor (resized / original), `orig_size` int32 [2]
    the original (height, width), `image_id` int32 the COCO image id.
Modules: boxes (IoU, coding), anchors, nms, roi_align, targets, heads, fpn, model, postprocess,
losses, data (annotations: the index of a yolo-seg / COCO json split; coco_data: examples and
in-memory loaders; lazy_source: one example per read, for Grain), coco_eval (pycocotools AP).
"""
