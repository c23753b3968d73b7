"""The operator side (``lfr-hub``): hub-only code, never loaded on a camera.

Rooms, each depending only downwards (on the shared ``agent.protocol`` and ``agent.trust``
layers and on rooms listed before it):

- ``keys/``        the hub key folder, operator keys, signing control documents, the broker PKI
- ``store/``       the hub database: alerts, reports, devices
- ``devices/``     approving a camera's enrolment
- ``watchlists/``  checking reference photos, building sealed watchlists, reading them back
- ``calibration/`` a target false-alert rate to a threshold for one watchlist, from a cohort
- ``intake/``      what arrives from cameras: alerts and reports, verified and stored once
"""
