"""``lfr-agent`` sub-commands, one module per command group."""
