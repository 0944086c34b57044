#!/bin/sh
# pi-gen: start this stage from the previous stage's root (stage2, Raspberry Pi OS Lite).
set -eu

main() {
    if [ ! -d "${ROOTFS_DIR:?}" ]; then
        # pi-gen's copy_previous is a bash function; this is what it does.
        mkdir -p "$ROOTFS_DIR"
        rsync -aHAXx --exclude /var/cache/apt/archives "${PREV_ROOTFS_DIR:?}/" "$ROOTFS_DIR/"
    fi
}

main "$@"
