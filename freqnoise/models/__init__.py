"""Model zoo. Importing this package registers every model; look them up with `build_model`."""

from freqnoise.models.registry import build_model, register, registered_models

# Each import below registers its models (one line per module).
from freqnoise.models import cnn, mlp  # noqa: F401,E402
from freqnoise.models import sequence  # noqa: F401,E402
from freqnoise.models import mobilenet, resnet  # noqa: F401,E402
from freqnoise.detection import model as _maskrcnn  # noqa: F401,E402 (registers 'maskrcnn')
