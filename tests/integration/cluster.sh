# Sourced by the shell tests (nfs_kernel_test.sh, nfs_rpcbind_test.sh,
# s3_test.sh): a cluster of real processes on free loopback ports.
#
#   wait_ready OUT LOG       waits (20 s) for a "ready" line in OUT; prints
#                            LOG and exits 1 when none comes
#   start_cluster BIN DIR [VOLUME_MAX]
#                            master, one volume server and meta with their
#                            data and logs in DIR; appends their pids to
#                            PIDS and sets MHTTP, MGRPC, VHTTP and META

wait_ready() {
  for _ in $(seq 200); do grep -q ready "$1" 2>/dev/null && return 0; sleep 0.1; done
  echo "FAIL: did not start: $1"; cat "$2" || true; exit 1
}

start_cluster() {
  local bin="$1" w="$2" max="${3:-16}"
  "$bin" master -mdir "$w/master" -port 0 -grpcPort 0 -log.level warn > "$w/m.out" 2> "$w/m.log" &
  PIDS+=($!); wait_ready "$w/m.out" "$w/m.log"
  MHTTP="$(sed -n 's/.*http=\([^ ]*\).*/\1/p' "$w/m.out")"
  MGRPC="$(sed -n 's/.*grpc=[^:]*:\([0-9]*\).*/\1/p' "$w/m.out")"
  "$bin" volume -dir "$w/vol" -port 0 -grpcPort 0 -max "$max" -mserver "$MHTTP" \
    -mserverGrpcPort "$MGRPC" -log.level warn > "$w/v.out" 2> "$w/v.log" &
  PIDS+=($!); wait_ready "$w/v.out" "$w/v.log"
  VHTTP="$(sed -n 's/.*http=\([^ ]*\).*/\1/p' "$w/v.out")"
  "$bin" meta -dir "$w/meta" -port 0 -volumeServers "$VHTTP" -log.level warn > "$w/meta.out" \
    2> "$w/meta.log" &
  PIDS+=($!); wait_ready "$w/meta.out" "$w/meta.log"
  META="$(sed -n 's/.*grpc=\([^ ]*\).*/\1/p' "$w/meta.out")"
}
