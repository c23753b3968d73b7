"""The hub as a long-running service (``lfr-hub serve``): its config file and the
supervisor that runs the MQTT intake and the web console in one process."""
