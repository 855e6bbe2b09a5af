#!/bin/sh
# Makes sure this machine has a CRIU whose `criu check` passes (live migration of processes), run by `make deps`.
# A working `criu` on PATH or in /usr/local/sbin is kept. Otherwise CRIU 4.2 is built from the vendored sources
# ($CRIU_TARBALL, default ../shared/vendor/criu-4.2.tar.gz beside the repository; Debian's 3.17 fails on recent
# kernels: "vdso: Unexpected rt vDSO area bounds") and installed as /usr/local/sbin/criu: about 25 s on 2 idle
# cores, about a minute when they are busy. Its build dependencies are in the Makefile's APT_PACKAGES.
#
# Never fatal: without a working CRIU, fos runs and migrates cold; the node's `criu` plugin record says why.

set -u
INSTALL=/usr/local/sbin/criu
TARBALL=${CRIU_TARBALL:-$(dirname "$0")/../../shared/vendor/criu-4.2.tar.gz}

works() { "$1" check >/dev/null 2>&1; }

for c in $(command -v criu 2>/dev/null) "$INSTALL"; do
    if [ -x "$c" ] && works "$c"; then
        exit 0
    fi
done
if [ ! -f "$TARBALL" ]; then
    echo "note: no working criu and no CRIU sources at $TARBALL (set CRIU_TARBALL): live migration of processes unavailable" >&2
    exit 0
fi
if [ "$(id -u)" != 0 ]; then
    echo "note: building CRIU needs root to install $INSTALL: live migration of processes unavailable" >&2
    exit 0
fi
build=$(mktemp -d)
trap 'rm -rf "$build"' EXIT
echo "building CRIU from $TARBALL (about a minute)"
start=$(date +%s)
if tar xzf "$TARBALL" -C "$build" && make -C "$build"/criu-* -j"$(nproc)" criu >"$build/build.log" 2>&1; then
    install -m 0755 "$build"/criu-*/criu/criu "$INSTALL"
    echo "CRIU built in $(( $(date +%s) - start )) s, installed as $INSTALL"
    if ! works "$INSTALL"; then
        echo "note: $INSTALL check fails on this kernel: live migration of processes unavailable" >&2
        "$INSTALL" check 2>&1 | tail -n 3 >&2
    fi
else
    echo "note: building CRIU failed (last lines of the log below): live migration of processes unavailable" >&2
    tail -n 20 "$build/build.log" >&2
fi
exit 0
