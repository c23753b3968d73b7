#!/bin/bash -e
# Start from the previous stage's root file system (stage2, the Lite image).
if [ ! -d "${ROOTFS_DIR}" ]; then
	copy_previous
fi
