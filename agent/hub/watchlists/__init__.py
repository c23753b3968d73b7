"""Watchlists at the hub: checking reference photos and building sealed, signed watchlists."""
