#!/bin/sh
# pi-gen, on the build host: stage the login banner script for 00-run-chroot.sh.
set -eu

main() {
    here=$(cd "$(dirname "$0")" && pwd)
    install -m 0755 "$here/files/60-picloud" "${ROOTFS_DIR:?}/var/cache/picloud-motd"
}

main "$@"
