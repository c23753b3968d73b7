"""Cameras at the hub: approving an enrolment request."""
