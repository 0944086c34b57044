#!/bin/sh
# PiCloud installer: Raspberry Pi OS or Debian (bookworm, trixie) on arm64.
#
#   curl -fsSL https://raw.githubusercontent.com/picloud/picloud/main/install.sh | sudo sh
#   sudo PICLOUD_SRC=/path/to/checkout-or-wheel sh install.sh     # a local build
#   sudo sh install.sh --uninstall [--purge]                      # --purge: data too
#
# Knobs (environment): PICLOUD_SRC (a checkout directory or a .whl; default: the
# package index), PICLOUD_VERSION (from the index; default: the newest),
# PICLOUD_PORT (8080), PICLOUD_SKIP_START=1 (image builds: install and enable only),
# PICLOUD_FORCE=1 (armv7 or an untested distribution, at your own risk).
#
# Running it again changes nothing and restarts nothing; with a newer version it
# upgrades in place and keeps /etc/picloud and /var/lib/picloud. The whole script is
# one `main` called on the last line, so a truncated download runs nothing.
set -eu

PREFIX=/opt/picloud
VENV=$PREFIX/venv
CONF_DIR=/etc/picloud
STATE_DIR=/var/lib/picloud
UNIT_DIR=/etc/systemd/system
SYSUSERS_FILE=/usr/lib/sysusers.d/picloud.conf
AVAHI_FILE=/etc/avahi/services/picloud.service
STAMP=$PREFIX/installed
APT_PACKAGES="python3 python3-venv python3-systemd avahi-daemon sqlite3 ca-certificates"
CHANGED=0

say() { printf 'picloud: %s\n' "$*"; }
die() { printf 'picloud: error: %s\n' "$*" >&2; exit 1; }

usage() {
    sed -n '2,14p' "$0" 2>/dev/null | sed 's/^# \{0,1\}//'
}

check_root() {
    [ "$(id -u)" -eq 0 ] || die "run me as root (sudo sh install.sh)"
}

check_platform() {
    [ -r /etc/os-release ] || die "no /etc/os-release: not Debian or Raspberry Pi OS"
    # shellcheck disable=SC1091
    . /etc/os-release
    distro="${ID:-?} ${VERSION_CODENAME:-?}"
    case "${ID:-}:${VERSION_CODENAME:-}" in
        debian:bookworm | debian:trixie | raspbian:bookworm | raspbian:trixie) ;;
        *) forced "unsupported system $distro (want Debian or Raspberry Pi OS bookworm/trixie)" ;;
    esac
    arch=$(uname -m)
    case "$arch" in
        aarch64 | x86_64) ;;
        armv7l | armv6l)
            forced "32-bit ARM ($arch): uvloop and psutil have no wheels for it; use a 64-bit OS" ;;
        *) forced "untested architecture $arch" ;;
    esac
}

forced() {
    if [ "${PICLOUD_FORCE:-0}" = 1 ]; then
        say "warning: $1; continuing because PICLOUD_FORCE=1"
    else
        die "$1 (PICLOUD_FORCE=1 to try anyway)"
    fi
}

install_packages() {
    missing=""
    for pkg in $APT_PACKAGES; do
        status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
        [ "$status" = "install ok installed" ] || missing="$missing $pkg"
    done
    [ -n "$missing" ] || return 0
    say "installing packages:$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get -o DPkg::Lock::Timeout=300 update -q
    # shellcheck disable=SC2086 # one word per package
    apt-get -o DPkg::Lock::Timeout=300 install -y -q --no-install-recommends $missing
}

python_minor() {
    "$1" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null || echo none
}

make_venv() {
    want=$(python_minor /usr/bin/python3)
    have=$(python_minor "$VENV/bin/python")
    [ "$want" = "$have" ] && return 0
    if [ "$have" != none ]; then
        say "system Python is now $want (venv has $have): recreating $VENV"
    fi
    rm -rf "$VENV"
    mkdir -p "$PREFIX"
    # --system-site-packages: Debian's python3-systemd (PyPI has no wheels for it).
    /usr/bin/python3 -m venv --system-site-packages "$VENV"
    rm -f "$STAMP"
    CHANGED=1
}

source_spec() {
    src=${PICLOUD_SRC:-}
    if [ -z "$src" ]; then
        echo "picloud${PICLOUD_VERSION:+==$PICLOUD_VERSION}"
    elif [ -d "$src" ] && [ -f "$src/pyproject.toml" ]; then
        echo "$src"
    elif [ -f "$src" ]; then
        case "$src" in *.whl) echo "$src" ;; *) die "PICLOUD_SRC=$src is not a wheel" ;; esac
    else
        die "PICLOUD_SRC=$src is neither a checkout nor a wheel"
    fi
}

fingerprint() {
    # What identifies the source: a file's hash, a checkout's tracked content, or a version.
    src=${PICLOUD_SRC:-}
    if [ -z "$src" ]; then
        echo "index ${PICLOUD_VERSION:-latest}"
    elif [ -d "$src" ]; then
        (cd "$src" && find pyproject.toml README.md install.sh picloud systemd -type f \
            ! -path '*/__pycache__/*' ! -name '*.pyc' | LC_ALL=C sort | xargs sha256sum) |
            sha256sum | cut -d' ' -f1
    else
        sha256sum "$src" | cut -d' ' -f1
    fi
}

install_picloud() {
    spec=$(source_spec)
    print=$(fingerprint)
    # From the index without a pinned version, "latest" is only known to pip: ask it.
    if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$print" ] && [ "$print" != "index latest" ]; then
        return 0
    fi
    before=$("$VENV/bin/python" -m pip show picloud 2>/dev/null | sed -n 's/^Version: //p')
    say "installing PiCloud from $spec"
    if [ -d "$spec" ]; then
        # Build from a private copy of what the build reads: the checkout may be
        # read-only or someone else's.
        build=$(mktemp -d)
        tar -C "$spec" --exclude=__pycache__ -cf - pyproject.toml README.md install.sh \
            picloud systemd | tar -C "$build" -xf -
        spec=$build
    fi
    pip_install --upgrade --upgrade-strategy only-if-needed "$spec"
    after=$("$VENV/bin/python" -m pip show picloud | sed -n 's/^Version: //p')
    if [ -n "${PICLOUD_SRC:-}" ] && [ "$before" = "$after" ]; then
        # Same version number, new content (a rebuilt wheel, an edited checkout): pip
        # would call that "already satisfied".
        pip_install --force-reinstall --no-deps "$spec"
    fi
    [ -z "${build:-}" ] || rm -rf "$build"
    if [ "$before" != "$after" ] || [ "$print" != "index latest" ]; then
        CHANGED=1
    fi
    echo "$print" > "$STAMP"
}

pip_install() {
    # /etc/pip.conf is ignored on purpose: Raspberry Pi OS points it at piwheels, whose
    # aarch64 files are pure-Python rebuilds that have broken hashes before.
    PIP_CONFIG_FILE=/dev/null PIP_DISABLE_PIP_VERSION_CHECK=1 \
        "$VENV/bin/python" -m pip install --quiet "$@"
}

# put SRC DEST MODE: install a file only when its content differs (and say so).
put() {
    [ ! -L "$2" ] || rm -f "$2"  # never write through a symlink
    if [ -f "$2" ] && cmp -s "$1" "$2"; then
        chmod "$3" "$2"
        return 0
    fi
    mkdir -p "$(dirname "$2")"
    install -m "$3" "$1" "$2"
    say "installed $2"
    CHANGED=1
}

install_files() {
    assets=$VENV/share/picloud
    [ -f "$assets/systemd/picloud.service" ] || die "the package has no systemd files ($assets)"
    put "$assets/systemd/picloud.sysusers" "$SYSUSERS_FILE" 0644
    put "$assets/systemd/picloud.service" "$UNIT_DIR/picloud.service" 0644
    put "$assets/systemd/picloud.socket" "$UNIT_DIR/picloud.socket" 0644
    put "$assets/systemd/picloud-firstboot.service" "$UNIT_DIR/picloud-firstboot.service" 0644
    put "$assets/systemd/picloud-firstboot.sh" "$PREFIX/lib/firstboot.sh" 0755
    put "$assets/install.sh" "$PREFIX/lib/install.sh" 0755
    port_dropin
    if [ -d "$(dirname "$AVAHI_FILE")" ]; then
        tmp=$(mktemp)
        sed "s|<port>8080</port>|<port>$PORT</port>|" "$assets/systemd/picloud.avahi.service" > "$tmp"
        put "$tmp" "$AVAHI_FILE" 0644
        rm -f "$tmp"
    fi
    tmp=$(mktemp)
    command_wrapper > "$tmp"
    put "$tmp" /usr/local/bin/picloud 0755
    rm -f "$tmp"
}

# /usr/local/bin/picloud: the CLI; after `sudo picloud token|restore` it hands what root
# wrote into the state directory back to the service user (the unit grants no CAP_CHOWN).
command_wrapper() {
    cat <<WRAPPER
#!/bin/sh
# The picloud command, written by install.sh.
set -u
$VENV/bin/picloud "\$@"
rc=\$?
case "\${1:-}" in
    token | restore)
        if [ "\$(id -u)" = 0 ] && id picloud > /dev/null 2>&1; then
            find $STATE_DIR -mindepth 1 ! -user picloud -exec chown -h picloud:picloud {} + || true
        fi ;;
esac
exit "\$rc"
WRAPPER
}

port_dropin() {
    dropin=$UNIT_DIR/picloud.socket.d/port.conf
    if [ "$PORT" = 8080 ]; then
        [ ! -f "$dropin" ] || { rm -f "$dropin"; CHANGED=1; }
        return 0
    fi
    tmp=$(mktemp)
    printf '# Written by install.sh (PICLOUD_PORT).\n[Socket]\nListenStream=\nListenStream=%s\n' \
        "$PORT" > "$tmp"
    put "$tmp" "$dropin" 0644
    rm -f "$tmp"
}

make_user_and_dirs() {
    if command -v systemd-sysusers > /dev/null 2>&1; then
        systemd-sysusers "$SYSUSERS_FILE"
    elif ! id picloud > /dev/null 2>&1; then
        adduser --system --group --home "$STATE_DIR" --no-create-home picloud
    fi
    # root:picloud 0770 is what the unit's StateDirectory= expects (see picloud.service).
    install -d -o root -g picloud -m 0770 "$STATE_DIR"
    install -d -o root -g picloud -m 0750 "$CONF_DIR"
    if [ ! -e "$CONF_DIR/picloud.toml" ]; then
        cat > "$CONF_DIR/picloud.toml" <<EOF
# PiCloud settings: docs/configuration.md lists every one. install.sh never overwrites
# this file. Under systemd the port is set by picloud.socket (PICLOUD_PORT), not bind.
state_dir = "$STATE_DIR"
bind = "0.0.0.0:$PORT"
EOF
        chown root:picloud "$CONF_DIR/picloud.toml"
        chmod 0640 "$CONF_DIR/picloud.toml"
        say "wrote $CONF_DIR/picloud.toml"
    fi
}

admin_token() {
    # Made by the service user, so the daemon can read it after dropping root.
    runuser -u picloud -- env PICLOUD_CONFIG="$CONF_DIR/picloud.toml" "$VENV/bin/picloud" token
}

systemd_running() { [ -d /run/systemd/system ]; }

enable_units() {
    if ! systemd_running; then
        # A chroot or image build: enabling only makes the symlinks.
        systemctl enable picloud.socket picloud.service > /dev/null 2>&1 ||
            say "warning: could not enable the units (no systemctl?)"
        return 0
    fi
    [ "$CHANGED" = 0 ] || systemctl daemon-reload
    for unit in picloud.socket picloud.service; do
        systemctl is-enabled --quiet "$unit" || systemctl enable --quiet "$unit"
    done
}

start_units() {
    systemd_running || { say "systemd is not running here: not starting"; return 0; }
    [ "${PICLOUD_SKIP_START:-0}" != 1 ] || { say "PICLOUD_SKIP_START=1: not starting"; return 0; }
    systemctl is-active --quiet picloud.socket || systemctl start picloud.socket
    if ! systemctl is-active --quiet picloud.service; then
        systemctl start picloud.service
    elif [ "$CHANGED" = 1 ]; then
        say "restarting picloud.service (new version or files)"
        systemctl restart picloud.service
    fi
    wait_healthy
}

wait_healthy() {
    i=0
    until "$VENV/bin/python" - "$PORT" <<'EOF' 2> /dev/null; do
import sys, urllib.request
urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/healthz", timeout=2).read()
EOF
        i=$((i + 1))
        [ "$i" -lt 60 ] || die "PiCloud did not answer /healthz; see: journalctl -u picloud"
        sleep 1
    done
}

summary() {
    host=$(hostname 2>/dev/null || echo picloud)
    echo
    say "PiCloud is installed: $("$VENV/bin/python" -m pip show picloud | sed -n 's/^Version: //p')"
    say "open http://$host.local:$PORT/"
    # An image build must not bake a token into every copy: the first boot makes it.
    if systemd_running && [ "${PICLOUD_SKIP_START:-0}" != 1 ] && token=$(admin_token); then
        say "admin token: $token   (again any time: sudo picloud token)"
    else
        say "the admin token is created on first start: sudo picloud token"
    fi
}

uninstall() {
    purge=$1
    units="picloud.service picloud.socket picloud-firstboot.service"
    if systemd_running; then
        # shellcheck disable=SC2086 # one word per unit
        systemctl disable --now $units > /dev/null 2>&1 || true
    else
        # shellcheck disable=SC2086
        systemctl disable $units > /dev/null 2>&1 || true
    fi
    rm -rf "$UNIT_DIR/picloud.service" "$UNIT_DIR/picloud.socket" "$UNIT_DIR/picloud.socket.d" \
        "$UNIT_DIR/picloud-firstboot.service" "$AVAHI_FILE" /usr/local/bin/picloud "$PREFIX"
    ! systemd_running || systemctl daemon-reload
    if [ "$purge" = 1 ]; then
        rm -rf "$CONF_DIR" "$STATE_DIR" "$SYSUSERS_FILE"
        ! id picloud > /dev/null 2>&1 || userdel picloud
        say "uninstalled; configuration, data and the picloud user removed"
    else
        say "uninstalled; kept $CONF_DIR and $STATE_DIR (--purge removes them)"
    fi
}

main() {
    action=install purge=0
    for arg in "$@"; do
        case "$arg" in
            --uninstall) action=uninstall ;;
            --purge) purge=1 ;;
            -h | --help) usage; return 0 ;;
            *) die "unknown argument $arg (try --help)" ;;
        esac
    done
    check_root
    if [ "$action" = uninstall ]; then
        uninstall "$purge"
        return 0
    fi
    PORT=${PICLOUD_PORT:-8080}
    case "$PORT" in '' | *[!0-9]*) die "PICLOUD_PORT=$PORT is not a port number" ;; esac
    check_platform
    install_packages
    make_venv
    install_picloud
    install_files
    make_user_and_dirs
    enable_units
    start_units
    if [ "$CHANGED" = 0 ]; then say "already up to date: nothing changed"; fi
    summary
}

main "$@"
