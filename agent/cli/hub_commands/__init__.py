"""``lfr-hub`` sub-commands, one module per command group."""
