"""Learning in the frequency domain (Xu et al., CVPR 2020): JPEG block DCT inputs and channel selection.

  color      RGB <-> YCbCr (JPEG/JFIF)
  dct        block DCT / inverse, channel packing [B, H/8, W/8, 192], zigzag, 444 / 420 chroma
  selection  published channel presets, top-k subsets from gate statistics, 3x8x8 heat maps
  gate       learned Gumbel-softmax channel gate with sparsity loss and selection statistics
  transform  the "dct" input transform (DCT + static selection + normalisation in the jitted step)
  jpeg       DCT coefficients read straight from JPEG files (optional package jpeglib)
"""
