#!/usr/bin/env bash
# The real Linux kernel NFSv3 client against `needlefs nfsd`: a cluster
# (master, volume server, meta) and one nfsd on free loopback ports, then
# tests/nfs-rig/qemu-nfs.sh boots Debian's kernel in QEMU, mounts the nfsd
# (`mount -t nfs -o vers=3,proto=tcp,nolock,port=P,mountport=M`) and runs
# guest-default.sh: cp both ways, rsync with checksums, modes and symlinks,
# rename (also across directories), hard and symbolic links, append,
# truncate, 500 small files, 100 MiB with dd. Passes when every CHECK does.
#
#   nfs_kernel_test.sh NEEDLEFS_BINARY
set -euo pipefail
BIN="$1"
HERE="$(cd "$(dirname "$0")" && pwd)"
RIG="$HERE/../nfs-rig"
W="$(mktemp -d /tmp/needlefs-nfs-kernel-XXXXXX)"
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$W"
}
trap cleanup EXIT
for t in qemu-system-x86_64 busybox; do
  command -v "$t" >/dev/null || { echo "FAIL: $t is missing (scripts/install-deps installs it)"; exit 1; }
done
ls /boot/vmlinuz-* >/dev/null 2>&1 || { echo "FAIL: no /boot/vmlinuz-* (linux-image-amd64)"; exit 1; }

wait_ready() {  # $1 = stdout file, $2 = log
  for _ in $(seq 200); do grep -q ready "$1" 2>/dev/null && return 0; sleep 0.1; done
  echo "FAIL: did not start: $1"; cat "$2" || true; exit 1
}
"$BIN" master -mdir "$W/master" -port 0 -grpcPort 0 -log.level warn > "$W/m.out" 2> "$W/m.log" &
PIDS+=($!); wait_ready "$W/m.out" "$W/m.log"
MHTTP="$(sed -n 's/.*http=\([^ ]*\).*/\1/p' "$W/m.out")"
MGRPC="$(sed -n 's/.*grpc=[^:]*:\([0-9]*\).*/\1/p' "$W/m.out")"
"$BIN" volume -dir "$W/vol" -port 0 -grpcPort 0 -max 16 -mserver "$MHTTP" \
  -mserverGrpcPort "$MGRPC" -log.level warn > "$W/v.out" 2> "$W/v.log" &
PIDS+=($!); wait_ready "$W/v.out" "$W/v.log"
VHTTP="$(sed -n 's/.*http=\([^ ]*\).*/\1/p' "$W/v.out")"
"$BIN" meta -dir "$W/meta" -port 0 -volumeServers "$VHTTP" -log.level warn > "$W/meta.out" \
  2> "$W/meta.log" &
PIDS+=($!); wait_ready "$W/meta.out" "$W/meta.log"
META="$(sed -n 's/.*grpc=\([^ ]*\).*/\1/p' "$W/meta.out")"
"$BIN" nfsd -meta "$META" -master "$MHTTP" -ip 127.0.0.1 -port 0 -mountPort 0 -log.level warn \
  > "$W/nfsd.out" 2> "$W/nfsd.log" &
PIDS+=($!); wait_ready "$W/nfsd.out" "$W/nfsd.log"
NFS_PORT="$(sed -n 's/.*nfs=[^:]*:\([0-9]*\).*/\1/p' "$W/nfsd.out" | head -1)"
MOUNT_PORT="$(sed -n 's/.*mount=[^:]*:\([0-9]*\).*/\1/p' "$W/nfsd.out" | head -1)"
echo "nfsd on $NFS_PORT (MOUNT $MOUNT_PORT)"

set +e
EXPORT=/ TIMEOUT=600 "$RIG/qemu-nfs.sh" "$NFS_PORT" "$MOUNT_PORT" "$RIG/guest-default.sh" \
  > "$W/rig.log" 2>&1
rc=$?
set -e
cat "$W/rig.log"
if [ "$rc" != 0 ] || ! grep -q "RESULT checks_failed=0" "$W/rig.log" || grep -q "CHECK .* FAIL" "$W/rig.log"; then
  echo "FAIL: the kernel client's checks failed (rig exit $rc); nfsd log:"
  tail -50 "$W/nfsd.log"
  exit 1
fi
echo "kernel NFSv3 client: every check passed"
