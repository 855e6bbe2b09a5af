#!/bin/sh
# Checks that this machine has what fos's build, tests and WordPress demo run, and names the Debian package that
# provides each missing thing. Silent and exit 0 when all is there; one "missing: ..." line per absent thing on
# stderr and exit 1 otherwise. Run by `make deps` after it installs the packages.
#
# Build:  protoc and its well-known types (etcd-client's build compiles etcd's .proto files, which import
#         google/protobuf/descriptor.proto); a C compiler that links (ring and the bundled SQLite are C, and rustc
#         links through `cc`).
# Tests:  etcd (the server the store tests start) and etcdctl (the cluster tests), ip and bridge (network namespaces, VxLAN/VLAN links), dnsmasq
#         (DHCP on fos networks), python3 (the end-to-end network test's programs) and its venv (the fog05 REST
#         test installs fog05's client from PyPI into one), openssl (etcd TLS
#         certificates), kill (stopping fosd; the shell's builtin is not enough), nsenter, timeout, bash, chromium
#         (the web view's test, headless).
# Demo:   curl, MariaDB's server and installer, php with its MySQL extension, Debian's WordPress.
# VMs:    libvirt's client library as pkg-config knows it (the `virt` crate links it), libvirtd and virsh, QEMU
#         and qemu-img, genisoimage (cloud-init seed disks); busybox-static, cpio and apt-get download for the test
#         guest (scripts/build-test-guest.sh).
# Containers: runc (what `kind: container` entities run on), docker-registry (the registry the container tests start
#         on loopback), htpasswd (its users, for the tests of registry credentials), busybox-static (/bin/busybox:
#         what the tests' images are built from; nothing is downloaded).

status=0
missing() { echo "missing: $1 — install $2" >&2; status=1; }
have() { command -v "$1" >/dev/null 2>&1; }
# have_cmd COMMAND PACKAGE [WHAT]: COMMAND is on PATH (or is an executable path). Debian puts bridge and dnsmasq
# in /usr/sbin, which is not on every PATH (a user's, or root's after `su` without `-`): say so rather than "install".
have_cmd() {
    case $1 in
    /*) [ -x "$1" ] && return ;;
    *) have "$1" && return ;;
    esac
    for dir in /usr/sbin /sbin; do
        if [ -x "$dir/$1" ]; then
            echo "missing: $1 on PATH (it is in $dir, PATH is $PATH) — add $dir to PATH" >&2
            status=1
            return
        fi
    done
    missing "${3:-$1}" "$2"
}

# Build.
have_cmd "${PROTOC:-protoc}" protobuf-compiler
proto_include=${PROTOC_INCLUDE:-/usr/include}
[ -f "$proto_include/google/protobuf/descriptor.proto" ] ||
    missing "protoc's well-known types ($proto_include/google/protobuf/descriptor.proto)" libprotobuf-dev
if have cc; then
    dir=$(mktemp -d)
    echo 'int main(void) { return 0; }' >"$dir/t.c"
    cc "$dir/t.c" -o "$dir/t" 2>/dev/null ||
        missing "the C library's headers and startup files (cc cannot link a program)" libc6-dev
    rm -rf "$dir"
else
    missing "a C compiler and linker (cc)" "gcc libc6-dev"
fi

# Tests.
have_cmd "${FOS_ETCD_BIN:-/usr/bin/etcd}" etcd-server "etcd (${FOS_ETCD_BIN:-/usr/bin/etcd})"
have_cmd etcdctl etcd-client "etcdctl (the cluster tests watch and check their etcd with it)"
have_cmd ip iproute2
have_cmd bridge iproute2
have_cmd dnsmasq dnsmasq-base
have_cmd /usr/bin/python3 python3
/usr/bin/python3 -c 'import ensurepip, venv' 2>/dev/null ||
    missing "python3's venv with pip (the fog05 REST test installs fog05rest into one)" python3-venv
have_cmd openssl openssl
# `command -v kill` finds the shell builtin; the tests run the program.
[ -x /usr/bin/kill ] || [ -x /bin/kill ] || missing "kill (/usr/bin/kill)" procps
have_cmd nsenter util-linux
have_cmd timeout coreutils
have_cmd bash bash
have_cmd /usr/bin/chromium chromium "chromium (the web view's headless browser test)"

# Demo (examples/wordpress and `make demo`).
have_cmd curl curl
have_cmd /usr/sbin/mariadbd mariadb-server-core
have_cmd mariadb-install-db mariadb-server-core
have_cmd my_print_defaults mariadb-client-core "my_print_defaults (used by mariadb-install-db)"
if have php; then
    php -m 2>/dev/null | grep -qx mysqli || missing "php's MySQL extension (mysqli)" php-mysql
else
    missing php php-cli
fi
[ -f /usr/share/wordpress/wp-settings.php ] || missing "WordPress (/usr/share/wordpress)" wordpress
have_cmd socat socat "socat (the example's HTTPS front)"

# VMs.
have_cmd pkg-config pkg-config
if have pkg-config; then
    pkg-config --exists libvirt 2>/dev/null || missing "libvirt's development files (pkg-config libvirt)" libvirt-dev
fi
have_cmd libvirtd libvirt-daemon-system
have_cmd virsh libvirt-clients
have_cmd qemu-system-x86_64 qemu-system-x86
have_cmd qemu-img qemu-utils
[ -x /bin/busybox ] && /bin/busybox 2>&1 | head -n1 | grep -q . && [ -f /usr/share/doc/busybox-static/copyright ] ||
    missing "a static busybox (/bin/busybox)" busybox-static
have_cmd genisoimage genisoimage
have_cmd cpio cpio
have_cmd apt-get apt

# Containers.
have_cmd runc runc
have_cmd docker-registry docker-registry
have_cmd htpasswd apache2-utils
# The images' /bin/busybox must be the static one: a container image holds no C library.
dpkg-query -W -f='${Status}\n' busybox-static 2>/dev/null | grep -q 'install ok installed' && [ -x /bin/busybox ] ||
    missing "a static busybox (/bin/busybox)" busybox-static

exit $status
