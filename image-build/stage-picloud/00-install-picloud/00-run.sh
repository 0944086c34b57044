#!/bin/sh
# pi-gen, on the build host: put install.sh, the PiCloud wheel and (if present) an
# aarch64 wheelhouse into the image, for 01-run-chroot.sh to install from.
set -eu

main() {
    here=$(cd "$(dirname "$0")" && pwd)
    dest="${ROOTFS_DIR:?}/var/cache/picloud-install"
    rm -rf "$dest"
    mkdir -p "$dest"
    set -- "$here"/files/picloud-*.whl
    [ -f "$1" ] || { echo "no files/picloud-*.whl: run image-build/build.sh" >&2; exit 1; }
    install -m 0644 "$1" "$dest/"
    install -m 0755 "$here/files/install.sh" "$dest/install.sh"
    if [ -d "$here/files/wheels" ]; then
        cp -r "$here/files/wheels" "$dest/wheels"
    fi
}

main "$@"
