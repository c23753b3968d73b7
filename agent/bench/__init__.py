"""Speed and memory benchmarks of the face pipeline (`lfr-agent bench`)."""
