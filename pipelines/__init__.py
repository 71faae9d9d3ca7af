"""biomed pipelines: data loading, tf.data, runs, tuning, export, reports and the CLI."""

__version__ = "0.1.0"
