#!/bin/bash -e
# Put the lfr-edge-agent into the image: copy the source tree in and run the
# field installer inside the image (apt packages, service user, virtualenv,
# pinned models, units; lfr-agent.service enabled).
#
# No keys are made here: each device makes its own at enrolment, on site.
#
# LFR_SRC: the lfr-edge-agent checkout (default: the one this stage lives in).
# LFR_WHEEL: optional wheel to install instead of the source tree.
# LFR_HUB_ROOT_FINGERPRINT: optional hub root fingerprint (16 to 64 hex digits,
#   spaces and colons allowed). Written to /etc/lfr-agent/hub-root.fingerprint,
#   where first-boot enrolment reads it: a device from this image then refuses a
#   bundle from any other hub, whatever the boot partition says.

PIN_FILE=/etc/lfr-agent/hub-root.fingerprint
pin=""
if [ -n "${LFR_HUB_ROOT_FINGERPRINT:-}" ]; then
	# Checked before anything is built, in the form the device compares.
	pin=$(printf '%s' "${LFR_HUB_ROOT_FINGERPRINT}" | tr -d ' :\t' | tr 'A-F' 'a-f')
	if ! [[ "${pin}" =~ ^[0-9a-f]{16,64}$ ]]; then
		echo "stage-lfr: LFR_HUB_ROOT_FINGERPRINT: expected 16 to 64 hex digits (spaces and colons allowed)" >&2
		exit 1
	fi
fi

LFR_SRC="${LFR_SRC:-$(cd ../../../.. && pwd)}"
if [ ! -x "${LFR_SRC}/deploy/install.sh" ]; then
	echo "stage-lfr: no lfr-edge-agent checkout at ${LFR_SRC} (set LFR_SRC)" >&2
	exit 1
fi

DEST="${ROOTFS_DIR}/opt/lfr-agent-src"
rm -rf "${DEST}"
install -d "${DEST}"
parts=(agent configs deploy pyproject.toml README.md)
for optional in systemd docs; do
	[ ! -d "${LFR_SRC}/${optional}" ] || parts+=("${optional}")
done
tar -C "${LFR_SRC}" --exclude=__pycache__ --exclude='*.pyc' --exclude='*.egg-info' \
	-cf - "${parts[@]}" | tar -C "${DEST}" -xf -

wheel_arg=""
if [ -n "${LFR_WHEEL:-}" ]; then
	install -m 0644 "${LFR_WHEEL}" "${DEST}/"
	wheel_arg="--wheel /opt/lfr-agent-src/$(basename "${LFR_WHEEL}")"
fi

on_chroot << CHROOT
/opt/lfr-agent-src/deploy/install.sh ${wheel_arg}
systemctl is-enabled lfr-agent.service
CHROOT

if [ -n "${pin}" ]; then
	printf '%s\n' "${pin}" > "${ROOTFS_DIR}${PIN_FILE}"
	chown 0:0 "${ROOTFS_DIR}${PIN_FILE}"
	chmod 0644 "${ROOTFS_DIR}${PIN_FILE}"
	echo "stage-lfr: hub root fingerprint pinned in ${PIN_FILE}"
else
	# A rebuild without the variable must not keep an earlier build's pin.
	rm -f "${ROOTFS_DIR}${PIN_FILE}"
fi
