#!/bin/sh
# PiCloud image, first boot: hostname `picloud`, the admin token, console and login banner.
# Installed to /opt/picloud/lib/firstboot.sh by install.sh; run by picloud-firstboot.service.
set -eu

STATE_DIR=${PICLOUD_STATE_DIR:-/var/lib/picloud}
VENV=${PICLOUD_VENV:-/opt/picloud/venv}
ROOT=${PICLOUD_ROOT:-}

set_hostname() {
    current=$(cat "$ROOT/etc/hostname" 2>/dev/null || echo "")
    # Respect a name chosen in Raspberry Pi Imager; replace only the stock ones.
    case "$current" in
        "" | raspberrypi | localhost | debian) ;;
        *) echo "$current"; return 0 ;;
    esac
    echo picloud > "$ROOT/etc/hostname"
    if grep -q '^127\.0\.1\.1' "$ROOT/etc/hosts" 2>/dev/null; then
        sed -i 's/^127\.0\.1\.1.*/127.0.1.1\tpicloud/' "$ROOT/etc/hosts"
    else
        printf '127.0.1.1\tpicloud\n' >> "$ROOT/etc/hosts"
    fi
    if [ -z "$ROOT" ]; then
        hostname picloud 2>/dev/null || true
    fi
    echo picloud
}

make_token() {
    mkdir -p "$STATE_DIR"
    if [ -z "$ROOT" ] && id picloud > /dev/null 2>&1; then
        # Created by the service user, so the daemon can read it after its drop.
        runuser -u picloud -- env PICLOUD_STATE_DIR="$STATE_DIR" "$VENV/bin/picloud" token
    else
        PICLOUD_STATE_DIR="$STATE_DIR" "$VENV/bin/picloud" token
    fi
}

banner() {
    host=$1 token=$2 port=$3
    mkdir -p "$ROOT/etc/issue.d"
    cat > "$ROOT/etc/issue.d/picloud.issue" <<BANNER

PiCloud is at http://$host.local:$port/  (or http://\4:$port/)
Admin token: $token
(shown until you delete /etc/issue.d/picloud.issue; \`sudo picloud token\` shows it again)

BANNER
    chmod 0600 "$ROOT/etc/issue.d/picloud.issue"
}

main() {
    host=$(set_hostname)
    token=$(make_token)
    port=$(sed -n 's/^ListenStream=\([0-9]*\)$/\1/p' \
        "$ROOT/etc/systemd/system/picloud.socket.d/port.conf" 2>/dev/null | tail -n 1)
    port=${port:-8080}
    banner "$host" "$token" "$port"
    echo "PiCloud: http://$host.local:$port/  admin token: $token"
    touch "$STATE_DIR/.firstboot-done"
}

main "$@"
