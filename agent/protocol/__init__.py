"""The wire protocol both sides speak: topic names, field patterns and message schemas.

Device code and hub code both import this package and validate against it at receipt;
it imports nothing from either side.
"""
