"""On-device vision: pinned models, detection, alignment, embedding, tracking, quality."""
