"""The hub key folder: root, operator and hub keys; signing control documents; the broker PKI."""
