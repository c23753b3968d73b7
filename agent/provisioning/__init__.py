"""Enrolling a device with its hub: keys born on the device, a request, an approval bundle.

device                                   hub
enrolment_request  ── request file ──►   agent.hub.devices.device_enrolment (approve)
enrolment_bundle   ◄── bundle file ───   (signed by a supervisor key)
enrolment_install  installs and checks it; first_boot does both steps unattended
"""
