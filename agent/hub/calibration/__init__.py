"""Turning a target false-alert rate into a score threshold for one watchlist, model and
score kind, from a non-mated cohort (``lfr-hub calibrate``, activations with a target FPIR)."""
