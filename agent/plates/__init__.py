"""Number plates on the same camera (ANPR): text detection, plate finding, recognition,
UK format rules, per-vehicle voting and the keyed-hash hotlist match.

One job per module, like ``agent/vision/``; ``plate_pipeline.PlatePipeline`` runs them per
frame and is the only place where reads of plates that are not on the hotlist exist.
"""
