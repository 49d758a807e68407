#!/usr/bin/env bash
# The real Linux kernel NFSv3 client against `needlefs nfsd`, booted in QEMU
# by tests/nfs-rig/qemu-nfs.sh. Runs in a network namespace of its own (its
# own loopback, so nfsd can take the standard ports 2049, 20048 and 111
# whatever the host runs), with a cluster (master, volume server, meta):
#   1. nfsd on free ports; `mount -t nfs -o vers=3,proto=tcp,nolock,port=P,
#      mountport=M`; guest-default.sh: cp both ways, rsync with checksums,
#      modes and symlinks, renames, hard and symbolic links, append,
#      truncate, 500 small files, 100 MiB with dd.
#   2. nfsd on 2049/20048 with its built-in portmapper on 111: the plain
#      `mount -t nfs -o vers=3 10.0.2.2:/ /mnt` (no port options, no
#      nolock); guest-default.sh again.
#   3. guest-restart.sh copies 96 MiB in on a hard mount while nfsd is
#      killed with SIGKILL and started again: the copy completes and every
#      file reads back intact.
# Passes when every CHECK does.
#
#   nfs_kernel_test.sh NEEDLEFS_BINARY
set -euo pipefail
BIN="$1"
HERE="$(cd "$(dirname "$0")" && pwd)"
source "$HERE/cluster.sh"
RIG="$HERE/../nfs-rig"
if [ -z "${NEEDLEFS_KERNEL_NS:-}" ]; then
  for t in qemu-system-x86_64 busybox unshare ip; do
    command -v "$t" >/dev/null || { echo "FAIL: $t is missing (scripts/install-deps installs it)"; exit 1; }
  done
  ls /boot/vmlinuz-* >/dev/null 2>&1 || { echo "FAIL: no /boot/vmlinuz-* (linux-image-amd64)"; exit 1; }
  exec unshare --net env NEEDLEFS_KERNEL_NS=1 bash "$0" "$@"
fi
ip link set lo up
W="$(mktemp -d /tmp/needlefs-nfs-kernel-XXXXXX)"
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$W"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; tail -30 "$W"/nfsd*.log 2>/dev/null || true; exit 1; }

start_cluster "$BIN" "$W"

NFSD_N=0
start_nfsd() {  # nfsd flags; sets NFSD_PID, NFS_PORT, MOUNT_PORT
  NFSD_N=$((NFSD_N + 1))
  local out="$W/nfsd$NFSD_N.out" log="$W/nfsd$NFSD_N.log"
  "$BIN" nfsd -meta "$META" -master "$MHTTP" -ip 127.0.0.1 -log.level warn "$@" > "$out" 2> "$log" &
  NFSD_PID=$!
  PIDS+=($NFSD_PID)
  wait_ready "$out" "$log"
  NFS_PORT="$(sed -n 's/.*nfs=[^:]*:\([0-9]*\).*/\1/p' "$out" | head -1)"
  MOUNT_PORT="$(sed -n 's/.*mount=[^:]*:\([0-9]*\).*/\1/p' "$out" | head -1)"
}
stop_nfsd() { kill -TERM "$NFSD_PID"; wait "$NFSD_PID" 2>/dev/null || true; }
rig_passed() {  # $1 = rig exit status, $2 = its log
  [ "$1" = 0 ] && grep -q "RESULT checks_failed=0" "$2" && ! grep -q "CHECK .* FAIL" "$2"
}

echo "== 1. free ports, mount with port options"
start_nfsd -port 0 -mountPort 0
echo "nfsd on $NFS_PORT (MOUNT $MOUNT_PORT)"
set +e
EXPORT=/ TIMEOUT=600 "$RIG/qemu-nfs.sh" "$NFS_PORT" "$MOUNT_PORT" "$RIG/guest-default.sh" \
  > "$W/rig1.log" 2>&1
rc=$?
set -e
cat "$W/rig1.log"
rig_passed "$rc" "$W/rig1.log" || fail "phase 1: the kernel client's checks failed (rig exit $rc)"
stop_nfsd

echo "== 2. standard ports and the built-in portmapper: mount -t nfs -o vers=3"
start_nfsd -port 2049 -mountPort 20048 -portmap true -portmapPort 111
set +e
MOUNT_OPTS=vers=3 EXPORT=/ TIMEOUT=600 "$RIG/qemu-nfs.sh" 0 0 "$RIG/guest-default.sh" \
  > "$W/rig2.log" 2>&1
rc=$?
set -e
cat "$W/rig2.log"; cat "$W"/nfsd2.log
grep -q "mount -t nfs -o vers=3 " "$W/rig2.log" || fail "phase 2 did not use the plain mount line"
rig_passed "$rc" "$W/rig2.log" || fail "phase 2: the kernel client's checks failed (rig exit $rc)"

echo "== 3. kill -9 of nfsd during a copy on a hard mount, then a restart"
EXPORT=/ TIMEOUT=600 "$RIG/qemu-nfs.sh" 2049 20048 "$RIG/guest-restart.sh" > "$W/rig3.log" 2>&1 &
RIG_PID=$!
PIDS+=($RIG_PID)
for _ in $(seq 3000); do
  grep -q COPY-START "$W/rig3.log" && break
  kill -0 "$RIG_PID" 2>/dev/null || break
  sleep 0.1
done
grep -q COPY-START "$W/rig3.log" || { cat "$W/rig3.log"; fail "phase 3: the copy did not start"; }
sleep 1.5
grep -q COPY-DONE "$W/rig3.log" && { cat "$W/rig3.log"; fail "phase 3: the copy ended before the kill"; }
kill -KILL "$NFSD_PID"; wait "$NFSD_PID" 2>/dev/null || true
echo "nfsd killed with SIGKILL during the copy"
sleep 1
start_nfsd -port 2049 -mountPort 20048 -portmap true -portmapPort 111
echo "nfsd started again"
set +e
wait "$RIG_PID"
rc=$?
set -e
cat "$W/rig3.log"
rig_passed "$rc" "$W/rig3.log" || fail "phase 3: the copy through the restart failed (rig exit $rc)"
echo "kernel NFSv3 client: every check of the three phases passed"
