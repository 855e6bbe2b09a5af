#!/usr/bin/env bash
# Checks `make demo` as users run it, on the real machine (root):
#   scripts/demo-check.sh clean         make demo, then make demo-down: `ip -br link`, `ip netns list` and the cgroup
#                                       tree must be exactly as before (the differences are printed).
#   scripts/demo-check.sh crash N       N times: make demo, kill -9 fosd and every entity process (as a crash or a
#                                       reboot does), make demo again, which must end with WordPress answering; then
#                                       make demo-down. Prints how many of the N restarts answered.
# Run from the repository root; it stops a demo left running first.
set -uo pipefail

DEMO_DIR=${DEMO_DIR:-$PWD/.fos-demo}
URL=http://127.0.0.1:8080/wp-admin/install.php

snapshot() {
	ip -br link | awk '{print $1, $3}' | sort >"$1.links"
	ip netns list | sort >"$1.netns"
	# Instance groups (<id>@<scope>) of other applications are other fos instances' on a shared machine (tests).
	{
		find /sys/fs/cgroup -mindepth 1 -maxdepth 4 -type d 2>/dev/null | grep -v '@'
		find /sys/fs/cgroup -mindepth 1 -maxdepth 4 -type d -name '*.wordpress.*@*' 2>/dev/null
	} | sort >"$1.cgroups"
}

# The pids of every process fos started for this demo's instances: they carry FOS_INSTANCE in their environment
# and run in an instance directory under the demo's data directory (not another fos's on the same machine).
entity_pids() {
	for p in /proc/[0-9]*; do
		case "$(readlink "$p/cwd" 2>/dev/null)" in "$DEMO_DIR"/*) ;; *) continue ;; esac
		{ tr '\0' '\n' <"$p/environ"; } 2>/dev/null | grep -q '^FOS_INSTANCE=.*\.wordpress\.' && echo "${p#/proc/}"
	done
}

# Whether WordPress answers (read whole: grep -q ending early would fail curl under pipefail).
answers() {
	local body
	body=$(curl -sf "$URL") && grep -q WordPress <<<"$body"
}

case "${1:-}" in
clean)
	make -s demo-down >/dev/null 2>&1
	tmp=$(mktemp -d)
	snapshot "$tmp/before"
	make demo || { echo "make demo failed"; make -s demo-down; exit 1; }
	snapshot "$tmp/during"
	make demo-down
	snapshot "$tmp/after"
	status=0
	for what in links netns cgroups; do
		made=$(comm -13 "$tmp/before.$what" "$tmp/during.$what" | wc -l)
		if ! diff -u "$tmp/before.$what" "$tmp/after.$what"; then
			echo "$what: NOT as before (see above)"
			status=1
		else
			echo "$what: as before ($made made by the demo, all gone)"
		fi
	done
	rm -rf "$tmp"
	exit $status
	;;
crash)
	runs=${2:-10}
	ok=0
	make -s demo-down >/dev/null 2>&1
	for i in $(seq "$runs"); do
		if ! make demo >"/tmp/demo-check-$i.first.log" 2>&1; then
			echo "run $i: the first make demo failed (/tmp/demo-check-$i.first.log)"
			make -s demo-down >/dev/null 2>&1
			continue
		fi
		kill -9 "$(cat "$DEMO_DIR/fosd.pid")" 2>/dev/null
		pids=$(entity_pids)
		[ -n "$pids" ] && kill -9 $pids
		sleep 1
		left=$(entity_pids | wc -l)
		if make demo >"/tmp/demo-check-$i.again.log" 2>&1 && answers; then
			ok=$((ok + 1))
			echo "run $i: killed fosd and $(echo $pids | wc -w) entity processes ($left left); make demo again: WordPress answers"
		else
			echo "run $i: make demo after the kill did NOT end with WordPress answering (/tmp/demo-check-$i.again.log)"
		fi
		make -s demo-down >/dev/null 2>&1
	done
	echo "WordPress answered after a kill in $ok of $runs runs"
	[ "$ok" = "$runs" ]
	;;
*)
	echo "usage: $0 clean | crash N" >&2
	exit 2
	;;
esac
