"""Training, evaluation and export of qunguard's models (needs the `train` extra)."""
