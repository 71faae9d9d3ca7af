"""The ECG plugin: ECG data (sources, preprocessing, datasets, augmentation), models, knowledge and expert features.

:mod:`ecgnet.plugin` registers it with the engine (see :mod:`pipelines.plugins`).
"""
