"""Hardware-in-the-loop rig tools: synthetic scenes and (later) the rig harness."""
