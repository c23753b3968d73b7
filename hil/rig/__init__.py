"""The hardware-in-the-loop rig: scenarios that prove a device keeps its promises
(activation bounds, alert delivery, detection quality, faults, privacy, retention), run
against a virtual rig on this machine or a real device reached over SSH and MQTT.

Entry point: ``python -m hil.rig run --rig hil/rigs/virtual.toml --out var/hil [--short]``.
"""
