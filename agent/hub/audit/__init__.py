"""The hub's own audit log (logins, adjudications, account changes), kept with the
device's audit-log code under a hub audit key."""
