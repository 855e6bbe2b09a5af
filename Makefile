# fos — build, test, demo and benchmark entry points. Every target installs what it needs through `make deps`.

SHELL := /bin/bash
CARGO ?= cargo
# fosd and the tests run bridge and dnsmasq by name, which Debian installs in /usr/sbin: not on every PATH (a
# user's, or root's after `su` without `-`), so it is added for every recipe here.
export PATH := $(PATH)$(if $(filter /usr/sbin,$(subst :, ,$(PATH))),,:/usr/sbin:/sbin)

# Debian packages fos needs to build, test and run the demo (installed without recommends; see scripts/check-deps.sh
# for what each provides):
#   build: protoc and its well-known types, a C toolchain (ring and the bundled SQLite are C; rustc links with cc)
#   tests: etcd and etcdctl, ip/bridge, dnsmasq, python3 (and its venv), openssl, kill
#   demo:  curl, MariaDB's server and installer (the -core packages: no system database service), php with its MySQL
#          extension, WordPress, socat (the HTTPS front; openssl makes its certificate)
#   containers: runc (what the container runtime runs), docker-registry (the registry the container tests start on
#               loopback), apache2-utils (htpasswd, for the registry asking for credentials), busybox-static (what
#               the tests' images are built from)
#   live migration: what building CRIU 4.2 from the vendored sources needs (scripts/criu.sh), make, rsync (the
#          migration figures' reference)
#   VMs: libvirt's daemon and client library headers (the `virt` crate links libvirt), QEMU and qemu-img,
#        genisoimage (cloud-init seed disks; its isoinfo reads them in the tests), and what
#        scripts/build-test-guest.sh builds the test guest with (busybox-static, cpio; the kernel is a
#        linux-image-*-amd64 package it downloads with apt-get, without installing it, as it does syslinux,
#        syslinux-common, mtools and dosfstools for the guest's bootable disk)
APT_PACKAGES := protobuf-compiler libprotobuf-dev gcc libc6-dev pkg-config \
	etcd-server etcd-client iproute2 dnsmasq-base python3 python3-venv openssl procps chromium \
	curl mariadb-server-core mariadb-client-core php-cli php-mysql wordpress socat \
	runc docker-registry apache2-utils \
	make libprotobuf-c-dev protobuf-c-compiler python3-protobuf libnl-3-dev libnet1-dev libcap-dev \
	libaio-dev libbsd-dev libgnutls28-dev libnftables-dev uuid-dev rsync \
	libvirt-daemon-system libvirt-clients libvirt-dev qemu-system-x86 qemu-utils busybox-static cpio genisoimage

.PHONY: deps build test test-cluster test-migrate test-vm fuzz demo demo-down bench fmt lint clean

## deps: install the Debian packages fos needs (idempotent; quiet when already installed; sudo only when not root),
## check that everything the build, tests and demo run is there, and install cargo-nextest when absent
deps:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing:" $$missing; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi
	@scripts/check-deps.sh
	@scripts/criu.sh
	@command -v cargo-nextest >/dev/null || $(CARGO) install --locked cargo-nextest

## build: compile every crate (release binaries in target/release)
build: deps
	$(CARGO) build --workspace --release

## test: formatting, lints, then every test (the fuzz targets of crates/fuzz with a bounded run: FOS_FUZZ_CASES,
## default 1000 inputs per target)
test: deps
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) build --workspace --bins
	$(CARGO) nextest run --workspace --no-fail-fast -E 'not binary(cluster) and not binary(migrate) and not binary(migrate_live) and not binary(migrate_live_container) and not binary(fog05_migrate) and not binary(vm) and not binary(vm_migrate) and not binary(fog05_vm_migrate)'
	$(CARGO) test --workspace --doc
	$(MAKE) test-cluster
	$(MAKE) test-migrate
	$(MAKE) test-vm

## test-cluster: the many-node fault tests (fosd per network namespace, 3-member etcd), one at a time (root)
test-cluster: deps
	$(CARGO) build --workspace --bins
	$(CARGO) nextest run -p fos-e2e --test cluster --no-fail-fast -j 1 --no-capture

## test-migrate: migrations between real fosd on the cluster harness (cold, kill -9 of either end; live with CRIU for a
## process and, through runc, a container, skipped where `criu check` fails; a fog05 FDU migrated through the fog05
## REST API), one at a time (root)
test-migrate: deps
	$(CARGO) build --workspace --bins
	$(CARGO) nextest run -p fos-e2e --test migrate --test migrate_live --test migrate_live_container --test fog05_migrate --no-fail-fast -j 1 --no-capture

## test-vm: the VM tests with real QEMU guests (TCG) under a libvirtd each test starts and removes (one per node for
## the live migration between two nodes' daemons), one at a time;
## the test guest is built first from Debian packages (scripts/build-test-guest.sh, into target/test-guest)
test-vm: deps
	$(CARGO) build --workspace --bins
	scripts/build-test-guest.sh target/test-guest
	$(CARGO) nextest run -p fos-e2e --test vm --test vm_migrate --test fog05_vm_migrate --no-fail-fast -j 1 --no-capture

## fuzz: the fuzz targets (manifest loader, fog05 converter, store URI parser, API request decoding) on many more
## inputs than `make test` (FUZZ_CASES per target, default 50000)
FUZZ_CASES ?= 50000
fuzz: deps
	FOS_FUZZ_CASES=$(FUZZ_CASES) $(CARGO) nextest run --workspace --no-capture -E 'package(fos-fuzz)'

## demo: build, start a one-node fos (data in ./.fos-demo; HTTPS API with the cluster CA and the administrator's
## token fosd writes to .fos-demo/fosctl.yaml), deploy the WordPress example, show it running
DEMO_DIR := $(CURDIR)/.fos-demo
DEMO_LISTEN := 127.0.0.1:7887
DEMO_URL := http://127.0.0.1:8080/wp-admin/install.php
DEMO_HTTPS := https://127.0.0.1:8443/wp-admin/install.php
FOSCTL_DEMO = ./target/release/fosctl --config $(DEMO_DIR)/fosctl.yaml
demo: deps
	$(CARGO) build --release -p fos-fosd -p fos-apply
	@mkdir -p $(DEMO_DIR)
	@if [ -f $(DEMO_DIR)/fosd.pid ] && kill -0 $$(cat $(DEMO_DIR)/fosd.pid) 2>/dev/null; then \
		echo "fosd already running (pid $$(cat $(DEMO_DIR)/fosd.pid))"; \
	else \
		./target/release/fosd --data-dir $(DEMO_DIR) --listen $(DEMO_LISTEN) --node-name demo --cleanup \
			>$(DEMO_DIR)/fosd.log 2>&1 & echo $$! >$(DEMO_DIR)/fosd.pid; \
		echo "fosd started (pid $$(cat $(DEMO_DIR)/fosd.pid), log $(DEMO_DIR)/fosd.log)"; \
	fi
	@for i in $$(seq 100); do [ -f $(DEMO_DIR)/fosctl.yaml ] && [ -f $(DEMO_DIR)/tls/ca.pem ] && \
		curl -sf --cacert $(DEMO_DIR)/tls/ca.pem https://$(DEMO_LISTEN)/healthz >/dev/null && break; sleep 0.1; done
	$(FOSCTL_DEMO) apply -f examples/wordpress --wait --timeout 180s
	$(FOSCTL_DEMO) get entities
	@curl -sf $(DEMO_URL) | grep -q 'WordPress' && echo "WordPress answers at $(DEMO_URL)"
	@cert=$$(find $(DEMO_DIR) -path '*front-0.wordpress.*' -name wordpress-front.pem | head -1); \
		curl -sf --cacert "$$cert" $(DEMO_HTTPS) | grep -q 'WordPress' && \
		echo "WordPress answers over HTTPS at $(DEMO_HTTPS) (its certificate: $$cert)"
	@echo "the fos API answers over HTTPS at https://$(DEMO_LISTEN) (use: $(FOSCTL_DEMO) ...)"
	@echo "stop it with: make demo-down"

## demo-down: delete the demo's application (components stop in reverse order) and stop its fosd, which removes
## everything it made on the machine (it runs with --cleanup) before it exits
demo-down:
	-$(FOSCTL_DEMO) delete wordpress --wait --timeout 60s
	-@[ -f $(DEMO_DIR)/fosd.pid ] && pid=$$(cat $(DEMO_DIR)/fosd.pid) && kill $$pid 2>/dev/null; \
		for i in $$(seq 600); do kill -0 $$pid 2>/dev/null || break; sleep 0.1; done; rm -f $(DEMO_DIR)/fosd.pid

## bench: every benchmark (store, scheduler, agent, controller pass, manifests; apply → Running beside fork+exec;
## one 5,000-component application beside bare etcd puts; fos-sim at 1,000 nodes on the embedded store and on a
## 3-member etcd), ending with one table of figure, value, goal and same-run reference (also in
## target/bench/results.json)
BENCH_RESULTS := target/bench/results.jsonl
bench: deps
	@mkdir -p target/bench && rm -f $(BENCH_RESULTS)
	$(CARGO) bench --workspace
	$(CARGO) build --release -p fos-fosd -p fos-apply -p fos-e2e -p fos-sim
	FOS_BENCH_RESULTS=$(BENCH_RESULTS) ./target/release/fos-bench 200
	FOS_BENCH_RESULTS=$(BENCH_RESULTS) ./target/release/fos-bench-apply 5000
	FOS_BENCH_RESULTS=$(BENCH_RESULTS) ./target/release/fos-bench-container 20
	FOS_BENCH_RESULTS=$(BENCH_RESULTS) ./target/release/fos-bench-migrate 3
	FOS_BENCH_RESULTS=$(BENCH_RESULTS) ./target/release/fos-sim --nodes 1000 --entities 10000
	FOS_BENCH_RESULTS=$(BENCH_RESULTS) scripts/sim-etcd.sh ./target/release/fos-sim --nodes 1000 --entities 10000
	@scripts/bench-table.py $(BENCH_RESULTS) target/bench/results.json

## fmt: format every crate in place
fmt:
	$(CARGO) fmt --all

## lint: clippy on every crate and target, warnings as errors
lint:
	$(CARGO) clippy --workspace --all-targets -- -D warnings

## clean: remove build output
clean:
	$(CARGO) clean
