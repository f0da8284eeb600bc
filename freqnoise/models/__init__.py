"""Model zoo. Importing this package registers its models; look them up with `build_model`.
Packages above it register theirs when imported: `freqnoise.detection.model` registers 'maskrcnn'
(`freqnoise.experiment` imports it), so this package never imports detection."""

from freqnoise.models.registry import build_model, check_input_grid, register, registered_models

# Each import below registers its models (one line per module).
from freqnoise.models import cnn, mlp  # noqa: F401,E402
from freqnoise.models import sequence  # noqa: F401,E402
from freqnoise.models import mobilenet, resnet  # noqa: F401,E402
from freqnoise.models import fast_cifar  # noqa: F401,E402
