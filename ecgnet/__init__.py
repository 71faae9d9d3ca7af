"""ECG models, ECG knowledge (R peaks, rhythm, frequency bands) and expert features."""
