"""User-facing errors: the CLI prints these as one line, without a traceback."""


class BiomedError(Exception):
    """An error caused by user input (config, data, paths), reported as one line."""


class ConfigError(BiomedError):
    """The experiment config is invalid (unknown key, wrong type, missing path)."""


class DataError(BiomedError):
    """Input data cannot be used (missing folder, no usable records)."""


class RecordError(Exception):
    """One record is unusable; batch loaders skip it and report ``str(self)`` as the reason."""
