#!/usr/bin/env bash
# aarch64 proof: build (or reuse) an arm64 Debian root under qemu-user, run the
# field installer inside it (venv, package with its aarch64 wheels, pinned models
# installed and verified), embed a face there and on this host, and require the
# two embeddings to agree (cosine >= 0.99).  Timings under qemu prove nothing
# about a real Pi; they are printed only to keep the CI budget in view.
#
# Usage: hil/arm64-smoke.sh [--prepare-only] [--help]
#   ARM64_ROOT  the arm64 root to build or reuse   (default: var/arm64-root)
#   FACES_DIR   face photos, one folder per person (default: ../shared/data/faces)
#   FACES       how many people to embed, first photo each (default: 3)
#   SUITE       Debian release                     (default: bookworm)
#   MIRROR      Debian mirror                      (default: http://deb.debian.org/debian)
#
# Phase functions are called through phase(); shellcheck cannot see that.
# shellcheck disable=SC2317
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ROOT=${ARM64_ROOT:-$REPO/var/arm64-root}
FACES_DIR=$(cd "${FACES_DIR:-$REPO/../shared/data/faces}" 2>/dev/null && pwd || echo "${FACES_DIR:-$REPO/../shared/data/faces}")
FACES=${FACES:-3}
SUITE=${SUITE:-bookworm}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
HOST_PY=${HOST_PY:-$REPO/.venv/bin/python}
OUT=$ROOT/../arm64-smoke
PREPARE_ONLY=0

die() { echo "arm64-smoke: error: $*" >&2; exit 1; }

for arg in "$@"; do
  case "$arg" in
    --prepare-only) PREPARE_ONLY=1 ;;
    -h|--help) awk 'NR > 1 && /^#/ { if (/shellcheck|^# Phase/) exit; sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) die "unknown argument '$arg' (try --help)" ;;
  esac
done

[ "$(id -u)" = 0 ] || die "must run as root (debootstrap, chroot and binfmt_misc need it)"
[ -x "$HOST_PY" ] || die "host python '$HOST_PY' not found; run 'make venv' first"
[ -d "$FACES_DIR" ] || die "faces folder '$FACES_DIR' not found; set FACES_DIR"

declare -a PHASES=()
T_START=$(date +%s.%N)
CURRENT_PHASE=""
phase() {  # phase NAME COMMAND...: run and record how long it took
  local name=$1; shift
  local t0; t0=$(date +%s.%N)
  CURRENT_PHASE=$name
  echo "== $name"
  "$@"
  local dt; dt=$(echo "$(date +%s.%N) - $t0" | bc)
  PHASES+=("$(printf '%-16s %7.1f s' "$name" "$dt")")
}
report_phases() {
  echo "-- phase timings (qemu-user; not Pi speed)"
  printf '   %s\n' "${PHASES[@]}"
  printf '   %-16s %7.1f s\n' total "$(echo "$(date +%s.%N) - $T_START" | bc)"
}

# ---- mounts inside the root: /proc and /dev only.  /sys stays unmounted on
# purpose: onnxruntime reads CPU topology from it and crashes under qemu-user.
MOUNTED=()
cleanup() {
  local rc=$? i
  if [ "$rc" != 0 ] && [ -n "$CURRENT_PHASE" ] && [ "$CURRENT_PHASE" != compare ]; then
    echo "arm64-smoke: FAIL (phase $CURRENT_PHASE exited $rc)" >&2
  fi
  for (( i=${#MOUNTED[@]}-1; i>=0; i-- )); do umount -l "${MOUNTED[$i]}" 2>/dev/null || true; done
}
trap cleanup EXIT
release_root_mounts() {  # unmount anything still mounted inside the root
  local m
  while read -r m; do
    umount -l "$m" || true
  done < <(awk -v r="$ROOT/" 'index($2, r) == 1 { print $2 }' /proc/mounts | sort -r)
  if awk -v r="$ROOT/" 'index($2, r) == 1 { found = 1 } END { exit !found }' /proc/mounts; then
    die "something is still mounted under $ROOT; unmount it and retry"
  fi
}

mount_in_root() {  # mount_in_root SRC TARGET [mount options...]
  local src=$1 target=$ROOT$2; shift 2
  mountpoint -q "$target" && return 0
  mkdir -p "$target"
  mount "$@" "$src" "$target"
  MOUNTED+=("$target")
}

in_root() {  # run a command in the arm64 root with a clean environment
  env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    HOME=/root LANG=C.UTF-8 QEMU_CPU=cortex-a72 DEBIAN_FRONTEND=noninteractive \
    ${http_proxy:+http_proxy=$http_proxy} ${https_proxy:+https_proxy=$https_proxy} \
    ${HTTP_PROXY:+HTTP_PROXY=$HTTP_PROXY} ${HTTPS_PROXY:+HTTPS_PROXY=$HTTPS_PROXY} \
    ${no_proxy:+no_proxy=$no_proxy} \
    chroot "$ROOT" "$@"
}

host_packages() {
  local missing=() p
  for p in debootstrap qemu-user-static binfmt-support bc; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "installing: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
  fi
}

register_qemu() {
  local bm=/proc/sys/fs/binfmt_misc
  [ -e "$bm/register" ] || mount -t binfmt_misc binfmt_misc "$bm"
  if [ ! -e "$bm/qemu-aarch64" ]; then
    /lib/systemd/systemd-binfmt /usr/lib/binfmt.d/qemu-aarch64.conf
  fi
  [ -e "$bm/qemu-aarch64" ] || die "qemu-aarch64 is not registered with binfmt_misc"
}

build_root() {
  if [ -e "$ROOT/.lfr-root-complete" ]; then
    echo "reusing $ROOT"
    return 0
  fi
  # A half-built root from an interrupted run: start again, but never follow a
  # mount (a bound /dev) out of it.
  release_root_mounts
  rm -rf --one-file-system "$ROOT"
  mkdir -p "$ROOT"
  # First stage on the host (downloads and unpacks), second stage inside the
  # root under qemu.  python3-venv brings python3 and the bundled pip wheel.
  debootstrap --foreign --arch=arm64 --variant=minbase \
    --include=python3-venv,ca-certificates "$SUITE" "$ROOT" "$MIRROR"
  in_root /debootstrap/debootstrap --second-stage
  touch "$ROOT/.lfr-root-complete"
}

# The machine reaches package indexes through its own CA and pip settings:
# give the root the same trust store additions and the same network-facing pip
# configuration (local file:// indexes are host paths and are left out).
configure_network() {
  cp -f /etc/resolv.conf "$ROOT/etc/resolv.conf"
  local crt changed=0 dest=$ROOT/usr/local/share/ca-certificates
  mkdir -p "$dest"
  for crt in /usr/local/share/ca-certificates/*.crt; do
    [ -f "$crt" ] || continue
    cmp -s "$crt" "$dest/$(basename "$crt")" && continue
    cp -f "$crt" "$dest/"
    changed=1
  done
  # Rebuilding the bundle under emulation takes most of a minute: only on change.
  if [ "$changed" = 1 ] || [ ! -s "$ROOT/etc/ssl/certs/ca-certificates.crt" ]; then
    in_root update-ca-certificates >/dev/null
  fi
  "$HOST_PY" "$REPO/hil/arm64/pip_config_for_root.py" "$ROOT"
}

copy_project() {
  local dest=$ROOT/opt/lfr-src f i=0
  rm -rf "$dest"
  mkdir -p "$dest"
  local parts=(agent configs deploy pyproject.toml README.md)
  [ ! -d "$REPO/systemd" ] || parts+=(systemd)
  tar -C "$REPO" -cf - --exclude=__pycache__ --exclude='*.pyc' --exclude='*.egg-info' "${parts[@]}" \
    | tar -C "$dest" -xf -
  rm -rf "$ROOT/opt/lfr-faces"
  mkdir -p "$ROOT/opt/lfr-faces"
  : > "$ROOT/opt/lfr-faces/list.txt"
  while IFS= read -r f; do
    i=$((i + 1))
    cp "$f" "$ROOT/opt/lfr-faces/$i.jpg"
    echo "/opt/lfr-faces/$i.jpg" >> "$ROOT/opt/lfr-faces/list.txt"
  done < <(face_photos)
  [ "$i" -gt 0 ] || die "no photos (*.jpg) under $FACES_DIR/*/"
}

face_photos() {  # the first photo of each of the first FACES people, in name order
  local d
  find "$FACES_DIR" -mindepth 1 -maxdepth 1 -type d | LC_ALL=C sort | head -n "$FACES" \
    | while IFS= read -r d; do
        find "$d" -maxdepth 1 -name '*.jpg' | LC_ALL=C sort | head -n 1
      done
}

install_in_root() {
  # The field installer itself, as a technician would run it (apt is skipped:
  # debootstrap already brought python3-venv; gcc and libsystemd-dev are left
  # out so systemd-python is skipped rather than compiled under emulation).
  in_root /opt/lfr-src/deploy/install.sh --no-apt
}

# Both sides run the live pipeline (detect, align, embed) with the same config.
# onnxruntime complains on stderr that it cannot read the CPU list from /sys
# (left unmounted on purpose, see above); it then runs with defaults.
embed_in_root() {
  mkdir -p "$OUT"
  in_root /opt/lfr-agent/bin/python -c \
    'import platform, onnxruntime; print("arm64 root:", platform.machine(), "onnxruntime", onnxruntime.__version__)'
  in_root /opt/lfr-agent/bin/lfr-agent embed --list /opt/lfr-faces/list.txt \
    --out /opt/lfr-faces/arm64.npy --models-dir /var/lib/lfr-agent/models \
    --config /opt/lfr-src/configs/agent.example.toml
  cp "$ROOT/opt/lfr-faces/arm64.npy" "$OUT/arm64.npy"
}

embed_on_host() {
  mkdir -p "$OUT/host-models"
  "$REPO/.venv/bin/lfr-agent" models install --dir "$OUT/host-models" >/dev/null
  face_photos > "$OUT/host-list.txt"
  "$REPO/.venv/bin/lfr-agent" embed --list "$OUT/host-list.txt" --out "$OUT/host.npy" \
    --models-dir "$OUT/host-models" --config "$REPO/configs/agent.example.toml"
}

COMPARE_RC=1
compare() {  # prints the PASS/FAIL line; its verdict becomes the exit status
  local names
  mapfile -t names < <(face_photos | sed "s|^$FACES_DIR/||")
  "$HOST_PY" "$REPO/hil/arm64/compare_embeddings.py" \
    --arm64 "$OUT/arm64.npy" --host "$OUT/host.npy" \
    --arm64-manifest "$ROOT/var/lib/lfr-agent/models/manifest.json" \
    --host-manifest "$OUT/host-models/manifest.json" --min-cosine 0.99 \
    --names "${names[@]}" \
    && COMPARE_RC=0 || COMPARE_RC=$?
}

phase host-packages host_packages
phase binfmt register_qemu
phase arm64-root build_root
phase network configure_network
if [ "$PREPARE_ONLY" = 1 ]; then report_phases; exit 0; fi
release_root_mounts  # e.g. a /sys left behind by an interrupted debootstrap
mount_in_root proc /proc -t proc
mount_in_root /dev /dev --bind
phase copy-project copy_project
phase install install_in_root
phase embed-arm64 embed_in_root
phase embed-host embed_on_host
phase compare compare
report_phases
exit "$COMPARE_RC"
