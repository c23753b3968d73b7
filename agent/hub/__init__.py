"""Operator side: keys, device enrolment, activations, watchlist builds, alert receipt, reports."""
