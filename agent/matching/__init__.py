"""The deployment watchlist gallery and the matcher."""
