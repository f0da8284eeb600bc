"""Learning in the frequency domain (Xu et al., CVPR 2020): JPEG block DCT inputs and channel selection.

  color      RGB <-> YCbCr (JPEG/JFIF)
  dct        block DCT / inverse, channel packing [B, H/8, W/8, 192], zigzag, 444 / 420 chroma
  selection  published channel presets, top-k subsets from gate statistics, 3x8x8 heat maps
  gate       learned Gumbel-softmax channel gate with sparsity loss and selection statistics
  dct_flip   horizontal flip in the coefficient domain (reversed block columns, odd u negated)
  transform  the "dct" input transform (DCT + static selection + normalisation in the jitted step)
             and "dct_coefficients" (the same on coefficients read from JPEGs)
  jpeg       DCT coefficients read straight from JPEG files or bytes (optional package jpeglib)
"""
