"""What arrives from cameras: alerts and deployment reports, verified, stored once, acknowledged."""
