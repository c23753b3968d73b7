"""Command-line entry points: ``lfr-agent`` (device) and ``lfr-hub`` (operator)."""
