#!/bin/sh
# pi-gen, inside the image's chroot: the first-boot unit, the login banner, and the
# memory cgroup that Raspberry Pi OS ships disabled (per-script memory.max needs it).
set -eu

CMDLINE=/boot/firmware/cmdline.txt

main() {
    systemctl enable picloud-firstboot.service
    install -m 0755 /var/cache/picloud-motd /etc/update-motd.d/60-picloud
    rm -f /var/cache/picloud-motd
    if [ -f "$CMDLINE" ] && ! grep -q 'cgroup_enable=memory' "$CMDLINE"; then
        sed -i '1 s/$/ cgroup_enable=memory/' "$CMDLINE"
    fi
}

main "$@"
