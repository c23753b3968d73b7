"""Frame sources behind one interface; the capture gate alone opens and closes them."""
