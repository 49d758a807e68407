#!/usr/bin/env bash
# `needlefs nfsd` and the machine's rpcbind: in a network and mount
# namespace of its own (its own loopback and its own /run, so the host's
# port 111 and /run/rpcbind.sock are never touched), Debian's rpcbind runs,
# a cluster and nfsd start, and then:
#   - nfsd registers NFS v3 and MOUNT v1-v3 on TCP and UDP (rpcinfo -p);
#   - libnfs with no port options finds nfsd through rpcbind (nfs-ls);
#   - `-portmap true` with 111 taken by rpcbind registers instead;
#   - a stopped nfsd unregisters.
#
#   nfs_rpcbind_test.sh NEEDLEFS_BINARY
set -euo pipefail
BIN="$1"
source "$(cd "$(dirname "$0")" && pwd)/cluster.sh"
if [ -z "${NEEDLEFS_RPCBIND_NS:-}" ]; then
  for t in rpcbind rpcinfo unshare ip nfs-ls; do
    command -v "$t" >/dev/null || { echo "FAIL: $t is missing (scripts/install-deps installs it)"; exit 1; }
  done
  exec unshare --net --mount --propagation private env NEEDLEFS_RPCBIND_NS=1 bash "$0" "$@"
fi

ip link set lo up
mount -t tmpfs needlefs-test-run /run
W="$(mktemp -d /tmp/needlefs-nfs-rpcbind-XXXXXX)"
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$W"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; for f in "$W"/*.log; do echo "== $f"; tail -20 "$f"; done; exit 1; }

rpcbind -f > "$W/rpcbind.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do [ -S /run/rpcbind.sock ] && break; sleep 0.1; done
[ -S /run/rpcbind.sock ] || fail "rpcbind did not start"

start_cluster "$BIN" "$W" 8

start_nfsd() {  # $1 = name, more args: nfsd flags
  local name="$1"; shift
  "$BIN" nfsd -meta "$META" -master "$MHTTP" -ip 127.0.0.1 -port 0 -mountPort 0 -httpPort -1 \
    -log.level info "$@" > "$W/$name.out" 2> "$W/$name.log" &
  NFSD_PID=$!
  PIDS+=($NFSD_PID)
  wait_ready "$W/$name.out" "$W/$name.log"
  NFS_PORT="$(sed -n 's/.*nfs=[^:]*:\([0-9]*\).*/\1/p' "$W/$name.out" | head -1)"
  MOUNT_PORT="$(sed -n 's/.*mount=[^:]*:\([0-9]*\).*/\1/p' "$W/$name.out" | head -1)"
}
registered() {  # prints "prog vers proto port" lines of rpcinfo -p
  rpcinfo -p 127.0.0.1 | awk 'NR > 1 { print $1, $2, $3, $4 }'
}
expect_registered() {  # $1 = nfs port, $2 = mount port
  local r; r="$(registered)"
  for want in "100003 3 tcp $1" "100003 3 udp $1" "100005 3 tcp $2" "100005 3 udp $2" \
              "100005 1 tcp $2"; do
    grep -qx "$want" <<< "$r" || fail "rpcinfo -p lacks '$want': $r"
  done
}

# 1. A plain nfsd registers with the rpcbind it finds.
start_nfsd nfsd1
expect_registered "$NFS_PORT" "$MOUNT_PORT"
echo "ok: nfsd registered nfs=$NFS_PORT mount=$MOUNT_PORT"
rpcinfo -t 127.0.0.1 nfs 3 > /dev/null || fail "rpcinfo -t nfs 3 (NULL over TCP by rpcbind's port)"
rpcinfo -u 127.0.0.1 nfs 3 > /dev/null || fail "rpcinfo -u nfs 3 (NULL over UDP)"
rpcinfo -u 127.0.0.1 mountd 3 > /dev/null || fail "rpcinfo -u mountd 3"
echo "ok: NULL answers over TCP and UDP where rpcbind says"

# 2. A client with no port options finds nfsd through rpcbind.
out="$(nfs-ls 'nfs://127.0.0.1/?version=3' 2>&1)" || fail "nfs-ls without ports: $out"
echo "ok: nfs-ls without port options"

# 3. A stopped nfsd unregisters.
kill -TERM "$NFSD_PID"; wait "$NFSD_PID" || true
if registered | grep -q "^100003 "; then fail "NFS still registered after nfsd stopped"; fi
echo "ok: unregistered on exit"

# 4. -portmap with port 111 held by rpcbind: registers instead.
start_nfsd nfsd2 -portmap true -portmapPort 111
expect_registered "$NFS_PORT" "$MOUNT_PORT"
grep -q "nfsd.rpcbind registered" "$W/nfsd2.log" || fail "nfsd2 did not say it registered"
grep -q "portmap=127.0.0.1:0" "$W/nfsd2.out" || fail "nfsd2 runs its own portmapper: $(cat "$W/nfsd2.out")"
echo "ok: -portmap with rpcbind on 111 registers with it"
echo "nfsd and rpcbind: every check passed"
