"""The fleet simulator's parts (``hil/fleet_sim.py`` runs them): the plan handed to each
camera process, the camera processes themselves, resource sampling, and the report."""
