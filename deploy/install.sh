#!/usr/bin/env bash
# Install or upgrade the lfr-edge-agent on this device (Debian 12 / Raspberry Pi
# OS bookworm).  Safe to run again: a second run changes nothing.
#
# Usage: sudo deploy/install.sh [--no-apt] [--no-models] [--wheel FILE] [--help]
#
#   --no-apt       do not install system packages with apt
#   --no-models    do not install and verify the pinned face and plate models
#   --wheel FILE   install the agent from this wheel instead of this source tree
#   -h, --help     show this help
#
# Environment:
#   DESTDIR     install under this root prefix instead of /; apt and systemctl
#               are skipped and the service user is added to DESTDIR/etc/passwd.
#               The virtualenv is only usable at that path (for tests and image
#               staging checks, not for copying elsewhere).
#   LFR_PYTHON  the Python interpreter for the virtualenv (default: /usr/bin/python3)
#
# What it sets up:
#   /opt/lfr-agent                    virtualenv with the agent (lfr-agent, lfr-hub);
#                                     docs/ holds the technician guide
#   /opt/lfr-agent/pip-constraints.txt  numpy<2, only where apt's picamera2 is used
#   /etc/lfr-agent                    0750 root:lfr-agent
#   /etc/lfr-agent/agent.toml         0644, copied from the example only when absent
#   /etc/lfr-agent/keys               0700 lfr-agent; key files in it 0600 lfr-agent
#   /var/lib/lfr-agent, .../models    0700 lfr-agent; model files 0644 root
#   /usr/lib/systemd/system, /usr/lib/sysusers.d, /usr/lib/tmpfiles.d   from systemd/
set -euo pipefail

SERVICE_USER=lfr-agent
SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
D=${DESTDIR:-}
D=${D%/}
PYTHON=${LFR_PYTHON:-/usr/bin/python3}

VENV=/opt/lfr-agent
CONF_DIR=/etc/lfr-agent
KEYS_DIR=/etc/lfr-agent/keys
STATE_DIR=/var/lib/lfr-agent
MODELS_DIR=/var/lib/lfr-agent/models
UNIT_DIR=/usr/lib/systemd/system
SYSUSERS_DIR=/usr/lib/sysusers.d
TMPFILES_DIR=/usr/lib/tmpfiles.d
STAMP=$VENV/.lfr-installed-from
PIP_CONSTRAINTS=$VENV/pip-constraints.txt

APT_REQUIRED=(python3 python3-venv ca-certificates)
# Build needs of systemd-python (journald logging and sd_notify).
APT_SYSTEMD_PYTHON=(python3-dev gcc pkg-config libsystemd-dev)
APT_OPTIONAL=(mosquitto-clients)

DO_APT=1
DO_MODELS=1
WHEEL=""

die() { echo "install.sh: error: $*" >&2; exit 1; }
say() { echo "install.sh: $*"; }
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
  case "$1" in
    --no-apt) DO_APT=0 ;;
    --no-models) DO_MODELS=0 ;;
    --wheel)
      [ $# -ge 2 ] || die "--wheel needs a FILE"
      WHEEL=$2
      shift
      ;;
    --wheel=*) WHEEL=${1#--wheel=} ;;
    -h|--help) usage; exit 0 ;;
    *) die "unknown argument '$1' (try --help)" ;;
  esac
  shift
done

if [ -n "$WHEEL" ]; then
  [ -f "$WHEEL" ] || die "wheel '$WHEEL' not found"
  case "$WHEEL" in *.whl) ;; *) die "'$WHEEL' is not a wheel (.whl)" ;; esac
  WHEEL=$(cd "$(dirname "$WHEEL")" && pwd)/$(basename "$WHEEL")
else
  if [ ! -f "$SRC/pyproject.toml" ] || [ ! -d "$SRC/agent" ]; then
    die "no source tree at '$SRC' (pyproject.toml and agent/ expected); use --wheel FILE"
  fi
fi
if [ -n "$D" ]; then
  mkdir -p "$D" || die "cannot create DESTDIR '$D'"
  D=$(cd "$D" && pwd)
  [ "$D" != / ] || D=""
fi
IS_ROOT=0
[ "$(id -u)" = 0 ] && IS_ROOT=1
if [ -z "$D" ] && [ "$IS_ROOT" = 0 ]; then
  die "run as root (sudo $0), or set DESTDIR to install under a prefix"
fi
if [ -n "$D" ] && [ "$IS_ROOT" = 0 ]; then
  say "not root: files are installed without changing owners"
fi

# ---- system packages -------------------------------------------------------
missing_packages() {
  local p
  for p in "$@"; do
    dpkg-query -W -f '${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || echo "$p"
  done
}

apt_install() {
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@"
}

install_packages() {
  if [ "$DO_APT" = 0 ] || [ -n "$D" ]; then
    return 0
  fi
  local need optional wanted=("${APT_REQUIRED[@]}" "${APT_SYSTEMD_PYTHON[@]}")
  # Raspberry Pi OS: the camera stack (libcamera bindings) comes only from apt.
  [ ! -e /etc/rpi-issue ] || wanted+=(python3-picamera2)
  mapfile -t need < <(missing_packages "${wanted[@]}")
  mapfile -t optional < <(missing_packages "${APT_OPTIONAL[@]}")
  if [ ${#need[@]} -eq 0 ] && [ ${#optional[@]} -eq 0 ]; then
    say "system packages present"
    return 0
  fi
  apt-get update -q || die "apt-get update failed (network or sources.list?)"
  if [ ${#need[@]} -gt 0 ]; then
    say "installing ${need[*]}"
    apt_install "${need[@]}" || die "apt-get could not install: ${need[*]}"
  fi
  if [ ${#optional[@]} -gt 0 ]; then
    apt_install "${optional[@]}" || say "optional packages not installed: ${optional[*]}"
  fi
}

# ---- files -----------------------------------------------------------------
lookup_id() {  # lookup_id passwd|group NAME -> numeric id from the target's database
  [ "$2" != root ] || { echo 0; return 0; }
  local db=$D/etc/$1 id
  id=$(awk -F: -v n="$2" '$1 == n { print $3; exit }' "$db" 2>/dev/null || true)
  [ -n "$id" ] || die "'$2' is missing from $db"
  echo "$id"
}

make_dir() {  # make_dir PATH MODE USER GROUP
  install -d -m "$2" "$D$1"
  chmod "$2" "$D$1"
  if [ "$IS_ROOT" = 1 ]; then
    local uid gid
    uid=$(lookup_id passwd "$3")
    gid=$(lookup_id group "$4")
    chown "$uid:$gid" "$D$1"
  fi
}

put_file() {  # put_file SRC DEST MODE: copy only when the content differs
  local dest=$D$2
  mkdir -p "$(dirname "$dest")"
  if ! cmp -s "$1" "$dest"; then
    install -m "$3" "$1" "$dest"
    say "installed $2"
  fi
  chmod "$3" "$dest"
  [ "$IS_ROOT" = 0 ] || chown 0:0 "$dest"
}

# ---- service user ----------------------------------------------------------
SYSUSERS_FALLBACK="u $SERVICE_USER - \"lfr-edge-agent\" $STATE_DIR -"

create_service_user() {
  local conf="$D$SYSUSERS_DIR/lfr-agent.conf"
  mkdir -p "$D/etc"
  if command -v systemd-sysusers >/dev/null; then
    local root_args=()
    [ -z "$D" ] || root_args=(--root "$D")
    if [ -f "$conf" ]; then
      # A bare file name is looked up in the sysusers.d folders (under --root).
      systemd-sysusers "${root_args[@]}" lfr-agent.conf \
        || die "systemd-sysusers could not create the service user from $SYSUSERS_DIR/lfr-agent.conf"
    else
      systemd-sysusers "${root_args[@]}" --inline "$SYSUSERS_FALLBACK" \
        || die "systemd-sysusers could not create the service user"
    fi
  elif [ -z "$D" ]; then
    # No systemd on this system (a minimal root or container): plain shadow tools.
    if ! getent passwd "$SERVICE_USER" >/dev/null; then
      useradd --system --user-group --home-dir "$STATE_DIR" --no-create-home \
        --shell /usr/sbin/nologin --comment lfr-edge-agent "$SERVICE_USER" \
        || die "useradd could not create '$SERVICE_USER'"
      say "created user $SERVICE_USER"
    fi
  else
    die "systemd-sysusers is needed to add the service user under DESTDIR"
  fi
  awk -F: -v n="$SERVICE_USER" '$1 == n { found = 1 } END { exit !found }' "$D/etc/passwd" \
    || die "service user '$SERVICE_USER' was not created"
}

install_system_files() {
  local f name
  shopt -s nullglob
  for f in "$SRC"/systemd/*.service "$SRC"/systemd/*.timer "$SRC"/systemd/*.path \
           "$SRC"/systemd/*.socket; do
    put_file "$f" "$UNIT_DIR/$(basename "$f")" 0644
  done
  for f in "$SRC"/systemd/*.sysusers.conf; do
    name=$(basename "$f" .sysusers.conf)
    put_file "$f" "$SYSUSERS_DIR/$name.conf" 0644
  done
  for f in "$SRC"/systemd/*.tmpfiles.conf; do
    name=$(basename "$f" .tmpfiles.conf)
    put_file "$f" "$TMPFILES_DIR/$name.conf" 0644
  done
  shopt -u nullglob
}

install_tools() {  # update tooling wraps its work in this guard (docs/technician.md)
  put_file "$SRC/deploy/update-guard.sh" "$VENV/bin/lfr-update-guard" 0755
}

install_docs() {  # the unit's Documentation= points here; handy offline on site
  local f
  shopt -s nullglob
  for f in "$SRC"/docs/*.md; do
    put_file "$f" "$VENV/docs/$(basename "$f")" 0644
  done
  shopt -u nullglob
}

make_directories() {
  # The same table as systemd/lfr-agent.tmpfiles.conf, which is applied at every
  # boot and so has the last word: it is applied here too when it is installed.
  make_dir "$CONF_DIR" 0750 root "$SERVICE_USER"
  make_dir "$KEYS_DIR" 0700 "$SERVICE_USER" "$SERVICE_USER"
  make_dir "$STATE_DIR" 0700 "$SERVICE_USER" "$SERVICE_USER"
  make_dir "$MODELS_DIR" 0700 "$SERVICE_USER" "$SERVICE_USER"
  make_dir "$VENV" 0755 root root
  if [ -f "$D$TMPFILES_DIR/lfr-agent.conf" ] && [ "$IS_ROOT" = 1 ] \
      && command -v systemd-tmpfiles >/dev/null; then
    local root_args=()
    [ -z "$D" ] || root_args=(--root "$D")
    # Persistent paths only: /run is created at boot.
    systemd-tmpfiles --create "${root_args[@]}" --prefix="$CONF_DIR" --prefix="$STATE_DIR" \
      --prefix=/var/log/lfr-agent lfr-agent.conf \
      || die "systemd-tmpfiles could not apply $TMPFILES_DIR/lfr-agent.conf"
  fi
  # Private keys: readable by the service user alone, whatever created them.
  local key uid gid
  uid=$(lookup_id passwd "$SERVICE_USER")
  gid=$(lookup_id group "$SERVICE_USER")
  while IFS= read -r -d '' key; do
    chmod 0600 "$key"
    [ "$IS_ROOT" = 0 ] || chown "$uid:$gid" "$key"
  done < <(find "$D$KEYS_DIR" -type f -print0)
}

install_config() {
  local dest=$D$CONF_DIR/agent.toml
  if [ -e "$dest" ]; then
    say "keeping existing $CONF_DIR/agent.toml"
    return 0
  fi
  [ -f "$SRC/configs/agent.example.toml" ] || die "example config missing from $SRC/configs"
  put_file "$SRC/configs/agent.example.toml" "$CONF_DIR/agent.toml" 0644
}

# ---- virtualenv and package ------------------------------------------------
picamera2_from_apt() {
  dpkg-query --admindir="$D/var/lib/dpkg" -W -f '${Status}' python3-picamera2 2>/dev/null \
    | grep -q 'install ok installed'
}

make_venv() {
  local want=false cfg=$D$VENV/pyvenv.cfg
  # Raspberry Pi OS ships picamera2 and libcamera's bindings only as apt
  # packages: the venv must see the system site packages to import them.
  if picamera2_from_apt; then want=true; fi
  [ -x "$PYTHON" ] || die "Python '$PYTHON' not found (install python3, or set LFR_PYTHON)"
  if [ -x "$D$VENV/bin/python" ] && grep -qx "include-system-site-packages = $want" "$cfg"; then
    return 0
  fi
  local args=(--clear)
  [ "$want" = false ] || args+=(--system-site-packages)
  say "creating virtualenv $VENV (system site packages: $want)"
  "$PYTHON" -m venv "${args[@]}" "$D$VENV" \
    || die "could not create the virtualenv (is python3-venv installed?)"
  rm -f "$D$STAMP"
}

write_constraints() {
  local dest=$D$PIP_CONSTRAINTS want=""
  # Raspberry Pi OS's picamera2 and simplejpeg (apt, seen through the system site
  # packages) are built against apt's numpy 1.x. A numpy 2.x that pip resolves for
  # the agent would shadow apt's numpy in the venv, and they would then refuse to
  # import ("compiled using NumPy 1.x cannot be run in NumPy 2"): the camera breaks.
  if picamera2_from_apt; then want="numpy<2"; fi
  if [ -z "$want" ]; then
    rm -f "$dest"
  elif [ "$(cat "$dest" 2>/dev/null)" != "$want" ]; then
    printf '%s\n' "$want" > "$dest"
    chmod 0644 "$dest"
    say "pip constraint for apt's picamera2: $want"
  fi
}

pip_install_cmd() {  # pip_install_cmd ARRAY_NAME: "pip install", constrained when needed
  local -n out=$1
  out=("$D$VENV/bin/python" -m pip --quiet --disable-pip-version-check install)
  [ ! -f "$D$PIP_CONSTRAINTS" ] || out+=(--constraint "$D$PIP_CONSTRAINTS")
}

source_fingerprint() {  # what is being installed: the wheel's or the source tree's hash
  if [ -n "$WHEEL" ]; then
    echo "wheel $(basename "$WHEEL") $(sha256sum "$WHEEL" | cut -d' ' -f1)"
  else
    local h
    h=$(cd "$SRC" && find agent pyproject.toml README.md -type f \
          -not -path '*/__pycache__/*' -not -name '*.pyc' -print0 \
        | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -d' ' -f1)
    echo "source $h"
  fi
}

install_package() {
  local pip_install want
  write_constraints
  pip_install_cmd pip_install
  want=$(source_fingerprint)
  # A changed constraint (picamera2 added or removed) must re-resolve numpy.
  [ ! -f "$D$PIP_CONSTRAINTS" ] || want="$want constraints $(sha256sum < "$D$PIP_CONSTRAINTS" | cut -d' ' -f1)"
  if [ -f "$D$STAMP" ] && [ "$(cat "$D$STAMP")" = "$want" ] \
      && "$D$VENV/bin/python" -c 'import agent' 2>/dev/null; then
    say "lfr-edge-agent up to date"
    return 0
  fi
  local target=$WHEEL build=""
  if [ -z "$WHEEL" ]; then
    # Build from a clean copy so the source tree is left untouched.
    build=$(mktemp -d)
    tar -C "$SRC" -cf - --exclude=__pycache__ --exclude='*.pyc' agent pyproject.toml README.md \
      | tar -C "$build" -xf -
    target=$build
  fi
  say "installing lfr-edge-agent into $VENV"
  # The first pass resolves dependencies; the second replaces the agent's own
  # files even when the version number did not change.
  if ! { "${pip_install[@]}" "$target" \
          && "${pip_install[@]}" --force-reinstall --no-deps "$target"; }; then
    [ -z "$build" ] || rm -rf "$build"
    die "pip could not install the agent (see above)"
  fi
  [ -z "$build" ] || rm -rf "$build"
  install_systemd_python
  echo "$want" > "$D$STAMP"
}

install_systemd_python() {
  if "$D$VENV/bin/python" -c 'import systemd.daemon' 2>/dev/null; then
    return 0
  fi
  if ! command -v gcc >/dev/null || ! pkg-config --exists libsystemd 2>/dev/null; then
    say "skipping systemd-python (no gcc/libsystemd-dev): journald logging falls back to stderr"
    return 0
  fi
  local pip_install
  pip_install_cmd pip_install
  "${pip_install[@]}" systemd-python \
    || say "systemd-python did not build: journald logging falls back to stderr"
}

# ---- models ----------------------------------------------------------------
install_models() {
  [ "$DO_MODELS" = 1 ] || return 0
  local cli=("$D$VENV/bin/python" -m agent.cli.agent_main models)
  if "${cli[@]}" verify --dir "$D$MODELS_DIR" --plates >/dev/null 2>&1; then
    say "models verified"
    models_readable
    return 0
  fi
  say "installing models into $MODELS_DIR"
  # The plate models are read out of one wheel that pip fetches by its pinned hash and
  # never installs (deploy/plate-models.txt says why); it is deleted afterwards.
  local wheels
  wheels=$(mktemp -d)
  "$D$VENV/bin/python" -m pip --quiet --disable-pip-version-check download --no-deps \
      --ignore-requires-python --require-hashes -d "$wheels" -r "$SRC/deploy/plate-models.txt" \
    || { rm -rf "$wheels"; die "could not fetch the plate model wheel (see above)"; }
  "${cli[@]}" install --dir "$D$MODELS_DIR" --plate-wheel "$wheels"/rapidocr_onnxruntime-*.whl \
    || { rm -rf "$wheels"; die "model install failed (see above)"; }
  rm -rf "$wheels"
  "${cli[@]}" verify --dir "$D$MODELS_DIR" --plates || die "models failed verification after install"
  models_readable
}

models_readable() {  # files are written 0600 by root; the service user must read them
  [ "$DO_MODELS" = 1 ] || return 0
  find "$D$MODELS_DIR" -type f ! -perm 0644 -exec chmod 0644 {} +
  # Root-owned, so the service user can read the models but never rewrite them.
  [ "$IS_ROOT" = 0 ] || find "$D$MODELS_DIR" -type f \( ! -user 0 -o ! -group 0 \) -exec chown 0:0 {} +
}

# ---- systemd ---------------------------------------------------------------
enable_service() {
  [ -z "$D" ] || return 0
  [ -f "$UNIT_DIR/lfr-agent.service" ] || { say "no lfr-agent.service yet: not enabled"; return 0; }
  command -v systemctl >/dev/null || { say "no systemctl: service not enabled"; return 0; }
  if [ -d /run/systemd/system ]; then
    systemctl daemon-reload
  fi
  systemctl enable lfr-agent.service || die "could not enable lfr-agent.service"
  if [ -f "$UNIT_DIR/lfr-agent-firstboot.service" ]; then
    # Picks up an enrolment bundle dropped on the boot partition, once.
    systemctl enable lfr-agent-firstboot.service || die "could not enable lfr-agent-firstboot.service"
  fi
  if [ -d /run/systemd/system ]; then
    # An upgrade restarts a running agent; a fresh device waits for enrolment.
    systemctl try-restart lfr-agent.service
  fi
}

install_packages
install_system_files
create_service_user
make_directories
install_config
make_venv
install_package
install_tools
install_docs
install_models
enable_service
say "done: $("$D$VENV/bin/python" -c 'import agent; print("lfr-edge-agent", agent.__version__)') in ${D:-}$VENV"
