"""2D image models: ImageNet backbones for transfer learning, a small CNN, a pixel baseline, Grad-CAM.

Importing :mod:`imaging.models` registers ``transfer``, ``cnn2d`` and ``pixel_lr``
in :mod:`pipelines.modeling`; images are loaded by :mod:`imaging.data`
and train through the same runner, tf.data pipelines and report as ECG models.
"""
