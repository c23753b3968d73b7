"""The daemon: wiring, capture gate, health, systemd integration."""
