"""The endurance soak (issue 21): ``python -m hil.soak`` / ``make soak``."""
