"""Built-in ECG models; importing this package registers them in ``pipelines.modeling``."""

from ecgnet.models import acrnn, cnn, crnn, hybrid, mina, resnet1d  # noqa: F401
from ecgnet import baselines  # noqa: F401
