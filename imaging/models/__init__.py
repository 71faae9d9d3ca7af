"""Built-in image models; importing this package registers them in ``pipelines.modeling``.

* ``transfer``: an ImageNet backbone (:mod:`imaging.backbones`) with a new head,
  fine-tuned by the strategies of :mod:`imaging.finetune`.
* ``cnn2d``: a small conv-pool stack trained from scratch.
* ``pixel_lr``: logistic regression on downsampled pixels (baseline).
"""

from imaging.models import cnn2d, pixel_lr, transfer  # noqa: F401
