"""Round-trip error of the block DCT with 4:4:4 and 4:2:0 chroma on scikit-learn's sample photo.

    python experiments/frequency_domain/chroma_roundtrip.py --record

The photo and crops of colab/frequency_domain.ipynb (china.jpg; 424x632 for 4:4:4, 416x624 for
4:2:0, whose chroma blocks cover 16x16 pixels). Errors on the 0..255 scale. Writes
chroma_roundtrip.json into runs/frequency_domain/ (or `--out DIR`); `--record` writes the README's
results/chroma_roundtrip.json instead (kept, with a printed line, unless `--force`: the rule of
experiments/recording.py; nothing to override). A few seconds on a CPU.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))

import numpy as np  # noqa: E402
from sklearn.datasets import load_sample_image  # noqa: E402

from experiments import recording  # noqa: E402
from experiments.record_run import machine  # noqa: E402
from freqnoise.freq import dct  # noqa: E402


def roundtrip_error(photo: np.ndarray, chroma: str) -> dict:
  back = np.asarray(dct.block_idct(dct.block_dct(photo[None], chroma=chroma), chroma=chroma))[0]
  err = np.abs(back - photo)
  return {"image_shape": list(photo.shape), "mean_abs_error": float(err.mean()),
          "max_abs_error": float(err.max())}


def main(argv: list[str] | None = None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  default = os.path.join(recording.RUN_ROOT, "frequency_domain")
  recording.add_arguments(parser, default)
  args = parser.parse_args(argv)
  path = os.path.join(recording.destination(args, "frequency_domain", default, []),
                      "chroma_roundtrip.json")
  if recording.skip_existing(path, args.force):
    return
  photo = load_sample_image("china.jpg")
  result = {"command": "python experiments/frequency_domain/chroma_roundtrip.py --record",
            "date_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "machine": machine(), "image": "sklearn.datasets.load_sample_image('china.jpg')",
            "444": roundtrip_error(photo[:424, :632], "444"),
            "420": roundtrip_error(photo[:416, :624], "420")}
  recording.write_json(path, result)
  print(json.dumps({k: result[k] for k in ("444", "420")}, indent=1))


if __name__ == "__main__":
  main()
