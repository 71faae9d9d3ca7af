"""The image plugin: image data, ImageNet backbones for transfer learning, a small CNN, a pixel baseline, Grad-CAM.

:mod:`imaging.plugin` registers it with the engine (see :mod:`pipelines.plugins`): images
are loaded by :mod:`imaging.data` and train through the same runner, tf.data pipelines
and report as ECG models.
"""
