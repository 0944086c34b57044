#!/bin/sh
# Build the PiCloud SD-card image with pi-gen (Raspberry Pi OS Lite, 64-bit, + PiCloud).
#
#   image-build/build.sh            on x86_64 Debian/Ubuntu (Docker) or on a Pi (native)
#
# Knobs: PIGEN_DIR (a pi-gen checkout; cloned if missing), PIGEN_REF (arm64),
# PICLOUD_OFFLINE=1 (download an aarch64 wheelhouse so the chroot needs no PyPI),
# PICLOUD_DOCKER=0/1 (force native or Docker; default: native on aarch64 only).
# The result: $PIGEN_DIR/deploy/image_<date>-picloud.img.xz (see image-build/README.md).
set -eu

main() {
    here=$(cd "$(dirname "$0")" && pwd)
    repo=$(dirname "$here")
    pigen=${PIGEN_DIR:-$here/pi-gen}
    if [ ! -d "$pigen" ]; then
        git clone --depth 1 --branch "${PIGEN_REF:-arm64}" \
            https://github.com/RPi-Distro/pi-gen.git "$pigen"
    fi
    files=$here/stage-picloud/00-install-picloud/files
    rm -rf "$files"
    mkdir -p "$files"
    cp "$repo/install.sh" "$files/install.sh"
    python3 -m pip wheel --no-deps --quiet --wheel-dir "$files" "$repo"
    if [ "${PICLOUD_OFFLINE:-0}" = 1 ]; then
        set -- "$files"/picloud-*.whl
        python3 -m pip download --quiet --dest "$files/wheels" --only-binary=:all: \
            --platform manylinux2014_aarch64 --platform manylinux_2_17_aarch64 \
            --implementation cp --python-version 3.11 "$1"
    fi
    rm -rf "$pigen/stage-picloud"
    cp -r "$here/stage-picloud" "$pigen/stage-picloud"
    touch "$pigen/stage2/SKIP_IMAGES"  # only the PiCloud image, not Lite as well
    write_config "$pigen/config"
    cd "$pigen"
    if [ "${PICLOUD_DOCKER:-}" = 1 ] || { [ -z "${PICLOUD_DOCKER:-}" ] && [ "$(uname -m)" != aarch64 ]; }; then
        ./build-docker.sh
    else
        sudo ./build.sh
    fi
    ls -l deploy/
}

write_config() {
    cat > "$1" <<CONFIG
IMG_NAME=picloud
RELEASE=bookworm
TARGET_HOSTNAME=picloud
ENABLE_SSH=1
LOCALE_DEFAULT=en_GB.UTF-8
KEYBOARD_KEYMAP=gb
TIMEZONE_DEFAULT=Etc/UTC
DEPLOY_COMPRESSION=xz
STAGE_LIST="stage0 stage1 stage2 stage-picloud"
CONFIG
}

main "$@"
