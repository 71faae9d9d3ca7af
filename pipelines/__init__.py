"""biomed's engine: configs, plugins, tf.data, runs, tuning, metrics, reports, export, predict and the CLI.

Modalities (``ecgnet``, ``imaging``) plug in through :mod:`pipelines.plugins`; the engine
never imports them at module level.
"""

__version__ = "0.1.0"
