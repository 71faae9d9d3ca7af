"""The example experiment configs, shipped as package data: ``biomed run quickstart`` finds ``quickstart.yaml`` here.

Their data paths are relative to this folder (``../../shared/data/...`` in a checkout).
"""
