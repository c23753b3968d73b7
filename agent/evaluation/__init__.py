"""Accuracy evaluation of the face pipeline on labelled photo sets."""
