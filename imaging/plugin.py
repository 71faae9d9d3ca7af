"""The image plugin: what ``imaging`` registers with the engine (see :mod:`pipelines.plugins`).

Importing this module registers the image models (``transfer``, ``cnn2d``,
``pixel_lr``); :func:`register` adds the image data sources, the training
augmentation (CutMix as a batch mixer), the test-time augmentation views, the
inputs of ``biomed predict`` and the report's Grad-CAM section.
"""

from __future__ import annotations

import imaging.models  # noqa: F401  (registers the image models)
from imaging.augment import batch_mixer, training_augmenter
from imaging.data import load_image_samples
from imaging.gradcam import gradcam_section
from imaging.inputs import IMAGE_INPUTS
from imaging.models.pixel_lr import PIXEL_LR_TYPES
from imaging.tta import image_views
from pipelines import plugins
from pipelines.config import IMAGE_SOURCES


def register() -> None:
    """Register the image sources, augmentation, CutMix, TTA views, predict inputs, the Grad-CAM section
    and the classes of ``pixel_lr`` (trusted in its ``.skops`` exports)."""
    for source in IMAGE_SOURCES:
        plugins.SOURCES.add(source, load_image_samples)
    plugins.AUGMENTERS.add("image", training_augmenter)
    plugins.BATCH_MIXERS.add("image", batch_mixer)
    plugins.TTA_VIEWS.add("image", lambda names, shape: image_views(names, min(shape[:2])))
    plugins.PREDICT_INPUTS.add("image", IMAGE_INPUTS)
    plugins.REPORT_SECTIONS.add("gradcam", gradcam_section)
    for cls in PIXEL_LR_TYPES:
        plugins.SKOPS_TYPES.add(plugins.type_name(cls), cls)
