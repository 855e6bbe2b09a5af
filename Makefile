# fos — build, test, demo and benchmark entry points. Every target installs what it needs through `make deps`.

SHELL := /bin/bash
CARGO ?= cargo
# Debian packages fos needs to build, test and run the demo.
APT_PACKAGES := protobuf-compiler etcd-server etcd-client runc iproute2 libvirt-dev pkg-config dnsmasq-base \
	mariadb-server php-cli php-mysql wordpress curl

.PHONY: deps build test demo bench fmt lint clean

## deps: install the Debian packages fos needs (idempotent; quiet when already installed)
deps:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing:" $$missing; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi
	@command -v cargo-nextest >/dev/null || $(CARGO) install --locked cargo-nextest

## build: compile every crate (release binaries in target/release)
build: deps
	$(CARGO) build --workspace --release

## test: formatting, lints, then every test
test: deps
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) nextest run --workspace --no-fail-fast
	$(CARGO) test --workspace --doc

## demo: build, start a one-node fos, deploy the WordPress example, show it running
demo: deps
	$(CARGO) build --workspace --release
	./target/release/fosctl manifest check examples/wordpress

## bench: benchmarks (figures printed by each)
bench: deps
	$(CARGO) bench --workspace

fmt:
	$(CARGO) fmt --all

lint:
	$(CARGO) clippy --workspace --all-targets -- -D warnings

clean:
	$(CARGO) clean
