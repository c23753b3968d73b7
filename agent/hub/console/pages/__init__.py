"""One module per console page; each exports ``routes``."""
