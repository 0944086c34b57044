#!/bin/sh
# pi-gen, inside the image's chroot: install.sh in image mode (enable, do not start,
# no admin token: the first boot makes one per device).
set -eu

main() {
    src=/var/cache/picloud-install
    set -- "$src"/picloud-*.whl
    if [ -d "$src/wheels" ]; then
        # Fully offline: every dependency comes from the wheelhouse build.sh downloaded.
        export PIP_NO_INDEX=1 PIP_FIND_LINKS="$src/wheels"
    fi
    PICLOUD_SRC="$1" PICLOUD_SKIP_START=1 sh "$src/install.sh"
    rm -rf "$src"
    # Nothing that identifies one device may be baked into every copy of the image.
    rm -f /var/lib/picloud/admin.token /var/lib/picloud/.firstboot-done
}

main "$@"
