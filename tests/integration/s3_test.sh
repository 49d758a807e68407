#!/usr/bin/env bash
# The S3 gateway through real clients: a cluster (master, volume server,
# meta), `needlefs s3` on a free loopback port (identities made at first
# start, written as an AWS shared-credentials file) and a FUSE mount of the
# same cluster, then:
#   - aws cli (Debian's /usr/bin/aws): mb, cp (a 20 MB multipart upload),
#     ls, sync twice (the second copies nothing), rm --recursive, rb;
#   - curl --aws-sigv4: PUT and GET; a wrong secret is 403;
#   - needlefs admin s3.user.* / s3.bucket.*: a new identity with its own
#     uid and bucket works at once, is kept out of other buckets, and is
#     refused once deleted;
#   - s3cmd and rclone: put/get round trips;
#   - the AWS SDK for JavaScript v3 (tests/s3/s3_sdk_test.mjs): default
#     checksums, aws-chunked bodies with a CRC32 trailer, every checksum
#     algorithm, lib-storage multipart;
#   - tests/s3/s3_boto3_test.py (boto3): errors, ranges, conditionals,
#     special keys, 2,500-key listings, If-None-Match races, presigned URLs,
#     multipart rules, copy, DeleteObjects, FUSE <-> S3, truncated uploads.
# Passes when every CHECK does.
#
#   s3_test.sh NEEDLEFS_BINARY
set -euo pipefail
BIN="$1"
HERE="$(cd "$(dirname "$0")" && pwd)"
source "$HERE/cluster.sh"
for t in /usr/bin/aws /usr/bin/python3 curl s3cmd rclone; do
  command -v "$t" >/dev/null || { echo "FAIL: $t is missing (scripts/install-deps installs it)"; exit 1; }
done
W="$(mktemp -d /tmp/needlefs-s3-test-XXXXXX)"
PIDS=()
MNT="$W/mnt"
cleanup() {
  umount -l "$MNT" 2>/dev/null || true
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$W"
}
trap cleanup EXIT
fails=0
check() {  # name, status
  if [ "$2" = 0 ]; then echo "CHECK $1 ok"; else echo "CHECK $1 FAIL"; fails=$((fails + 1)); fi
}
start_cluster "$BIN" "$W"
"$BIN" s3 -meta "$META" -master "$MHTTP" -ip 127.0.0.1 -port 0 -identities "$W/ids.json" \
  -credentials "$W/credentials" -log.level warn > "$W/s3.out" 2> "$W/s3.log" &
PIDS+=($!); wait_ready "$W/s3.out" "$W/s3.log"
PORT="$(sed -n 's/.*http=[^:]*:\([0-9]*\).*/\1/p' "$W/s3.out")"
EP="http://127.0.0.1:$PORT"
mkdir -p "$MNT"
"$BIN" mount -f -meta "$META" -master "$MHTTP" -log.level warn "$MNT" > "$W/mount.out" \
  2> "$W/mount.log" &
PIDS+=($!); wait_ready "$W/mount.out" "$W/mount.log"
AK="$(sed -n 's/^aws_access_key_id = //p' "$W/credentials")"
SK="$(sed -n 's/^aws_secret_access_key = //p' "$W/credentials")"
[ -n "$AK" ] && [ -n "$SK" ] || { echo "FAIL: no credentials written"; exit 1; }
grep -q "$SK" "$W/s3.log" "$W/s3.out" && { echo "FAIL: the secret reached a log"; exit 1; }
echo "s3 gateway on $EP"
set +e  # from here on every command is a check

# ---- aws cli, with the credentials file the gateway wrote ----
export AWS_SHARED_CREDENTIALS_FILE="$W/credentials" AWS_DEFAULT_REGION=us-east-1 AWS_PAGER=""
AWS=(/usr/bin/aws --endpoint-url "$EP")
"${AWS[@]}" s3 mb s3://cli > /dev/null; check aws_mb $?
head -c 20000000 /dev/urandom > "$W/big"
"${AWS[@]}" s3 cp --only-show-errors "$W/big" s3://cli/big; check aws_cp_multipart $?
"${AWS[@]}" s3 cp --only-show-errors s3://cli/big "$W/big.back"; check aws_cp_back $?
cmp -s "$W/big" "$W/big.back"; check aws_roundtrip_same_bytes $?
cmp -s "$W/big" "$MNT/cli/big"; check aws_object_is_a_file_in_fuse $?
mkdir -p "$W/tree/a/b"
for i in $(seq 20); do head -c $((i * 1000)) /dev/urandom > "$W/tree/a/f$i"; echo "$i" > "$W/tree/a/b/s $i"; done
"${AWS[@]}" s3 sync --only-show-errors "$W/tree" s3://cli/tree; check aws_sync $?
n="$("${AWS[@]}" s3 sync "$W/tree" s3://cli/tree | wc -l)"
[ "$n" = 0 ]; check aws_sync_again_copies_nothing $?
diff -r "$W/tree" "$MNT/cli/tree" > /dev/null; check aws_sync_tree_in_fuse $?
"${AWS[@]}" s3 ls --recursive s3://cli/tree | grep -c " tree/" | grep -qx 40; check aws_ls_recursive $?
"${AWS[@]}" s3 rm --only-show-errors --recursive s3://cli; check aws_rm_recursive $?
[ ! -e "$MNT/cli/tree" ]; check aws_rm_pruned_directories $?
"${AWS[@]}" s3 rb s3://cli > /dev/null; check aws_rb $?

# ---- curl --aws-sigv4 ----
SIG=(--aws-sigv4 "aws:amz:us-east-1:s3" --user "$AK:$SK")
curl -sf "${SIG[@]}" -X PUT -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" "$EP/curl" -o /dev/null
check curl_create_bucket $?
echo "from curl" > "$W/c.txt"
curl -sf "${SIG[@]}" -T "$W/c.txt" -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" "$EP/curl/c.txt" -o /dev/null
check curl_put $?
[ "$(curl -sf "${SIG[@]}" -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" "$EP/curl/c.txt")" = "from curl" ]
check curl_get $?
code="$(curl -s -o /dev/null -w '%{http_code}' --aws-sigv4 "aws:amz:us-east-1:s3" --user "$AK:wrong" \
  -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" "$EP/curl/c.txt")"
[ "$code" = 403 ]; check curl_wrong_secret_403 $?
code="$(curl -s -o /dev/null -w '%{http_code}' "$EP/curl/c.txt")"
[ "$code" = 403 ]; check anonymous_refused $?

# ---- the plain REST face: a bearer token, no XML ----
TOKEN="$(/usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["identities"][0]["token"])' "$W/ids.json")"
BEARER=(-H "Authorization: Bearer $TOKEN")
curl -sf "${BEARER[@]}" -T "$W/c.txt" "$EP/curl/rest/one.txt" -o /dev/null; check rest_put $?
[ "$(curl -sf "${BEARER[@]}" "$EP/curl/rest/one.txt")" = "from curl" ]; check rest_get $?
curl -sfI "${BEARER[@]}" "$EP/curl/rest/one.txt" | grep -qi "^content-length: 10"; check rest_head $?
[ "$(curl -sf "${BEARER[@]}" "$EP/curl?prefix=rest/")" = "rest/one.txt" ]; check rest_list_as_text $?
out="$(curl -s "${BEARER[@]}" "$EP/curl/rest/none.txt")"
[ "$out" = "NoSuchKey: no such key" ] || [ "${out#NoSuchKey: }" != "$out" ]; check rest_error_as_text $?
code="$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer nope" "$EP/curl/rest/one.txt")"
[ "$code" = 403 ]; check rest_wrong_token_403 $?
curl -sf "${BEARER[@]}" -X DELETE "$EP/curl/rest/one.txt" -o /dev/null; check rest_delete $?
! grep -q "$TOKEN" "$W/s3.log"; check token_never_logged $?
curl -sf "$EP/metrics" | grep -q 'needlefs_s3_requests_total{op="PutObject",code="2xx"}'
check metrics_by_operation $?

# ---- the object cache: hits, and never older than a write through FUSE ----
U=(-H "x-amz-content-sha256: UNSIGNED-PAYLOAD")
hits() { curl -sf "$EP/metrics" | sed -n 's/^needlefs_s3_object_cache_hits_total //p'; }
printf aaaa > "$W/aaaa"
curl -sf "${SIG[@]}" "${U[@]}" -T "$W/aaaa" -H "x-amz-meta-color: red" "$EP/curl/cached.txt" \
  -o /dev/null
h0="$(hits)"
same=0
for _ in 1 2 3; do
  [ "$(curl -sf "${SIG[@]}" "${U[@]}" "$EP/curl/cached.txt")" = aaaa ] || same=1
done
check object_cache_reads_right "$same"
[ "$(hits)" -ge $((h0 + 2)) ]; check object_cache_hits $?
printf bbbb > "$MNT/curl/cached.txt"  # same size, through FUSE
[ "$(curl -sf "${SIG[@]}" "${U[@]}" "$EP/curl/cached.txt")" = bbbb ]; check object_cache_sees_fuse_write $?
# Same size and the old mtime put back (cp -p, rsync -t): only ctime tells.
[ "$(curl -sf "${SIG[@]}" "${U[@]}" "$EP/curl/cached.txt")" = bbbb ] || true
m="$(stat -c %.9Y "$MNT/curl/cached.txt")"
printf cccc > "$MNT/curl/cached.txt"
touch -m -d "@$m" "$MNT/curl/cached.txt"
[ "$(curl -sf "${SIG[@]}" "${U[@]}" "$EP/curl/cached.txt")" = cccc ]; check object_cache_sees_ctime $?
/usr/bin/python3 -c 'import os,sys; os.setxattr(sys.argv[1], "user.s3.meta.color", b"blue")' \
  "$MNT/curl/cached.txt"
curl -sf -I "${SIG[@]}" "${U[@]}" "$EP/curl/cached.txt" | tr -d '\r' | grep -qi "^x-amz-meta-color: blue$"
check object_cache_sees_fuse_xattr $?

# ---- a public-read bucket: anonymous GET/HEAD/list, nothing else ----
"$BIN" admin s3.bucket.public -meta "$META" -master "$MHTTP" -bucket curl > /dev/null
check admin_bucket_public $?
[ "$(curl -sf "$EP/curl/c.txt")" = "from curl" ]; check anonymous_get_public $?
curl -sf "$EP/curl?list-type=2" | grep -q "<Key>c.txt</Key>"; check anonymous_list_public $?
code="$(curl -s -o /dev/null -w '%{http_code}' -T "$W/c.txt" "$EP/curl/anon.txt")"
[ "$code" = 403 ]; check anonymous_put_refused $?
# The mode of the files S3 writes into a bucket (within a second).
"$BIN" admin s3.bucket.mode -meta "$META" -master "$MHTTP" -bucket curl -mode 0640 > /dev/null
check admin_bucket_mode $?
sleep 1.2
curl -sf "${SIG[@]}" -T "$W/c.txt" -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" "$EP/curl/mode640.txt" -o /dev/null
[ "$(stat -c %a "$MNT/curl/mode640.txt")" = 640 ]; check bucket_file_mode $?
"$BIN" admin s3.bucket.mode -meta "$META" -master "$MHTTP" -bucket curl -mode 4755 \
  > /dev/null 2> "$W/setid.err" || true
grep -q "set-id" "$W/setid.err"; check bucket_mode_refuses_setid $?
"$BIN" admin s3.bucket.mode -meta "$META" -master "$MHTTP" -bucket curl -mode default > /dev/null
sleep 1.2
curl -sf "${SIG[@]}" -T "$W/c.txt" -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" "$EP/curl/mode644.txt" -o /dev/null
[ "$(stat -c %a "$MNT/curl/mode644.txt")" = 644 ]; check bucket_file_mode_default $?
"$BIN" admin s3.bucket.public -meta "$META" -master "$MHTTP" -bucket curl -read false > /dev/null
code="$(curl -s -o /dev/null -w '%{http_code}' "$EP/curl/c.txt")"
[ "$code" = 403 ]; check private_again $?

# ---- identities and buckets by `needlefs admin` (the gateway reloads) ----
ADM=("$BIN" admin)
"${ADM[@]}" s3.user.create -identities "$W/ids.json" -name bob -uid 1001 -gid 1001 \
  -buckets bobs > "$W/bob.creds"; check admin_user_create $?
BAK="$(sed -n 's/^aws_access_key_id = //p' "$W/bob.creds")"
BSK="$(sed -n 's/^aws_secret_access_key = //p' "$W/bob.creds")"
"${ADM[@]}" s3.user.list -identities "$W/ids.json" | grep -q "^bob .*$BAK"; check admin_user_list $?
"${ADM[@]}" s3.user.list -identities "$W/ids.json" | grep -q "$BSK"
[ $? != 0 ]; check admin_user_list_shows_no_secret $?
"${ADM[@]}" s3.bucket.create -meta "$META" -master "$MHTTP" -bucket bobs > /dev/null
check admin_bucket_create $?
"${ADM[@]}" s3.bucket.owner -meta "$META" -master "$MHTTP" -bucket bobs -owner bob \
  -identities "$W/ids.json" > /dev/null; check admin_bucket_owner $?
"${ADM[@]}" s3.bucket.list -meta "$META" -master "$MHTTP" | grep -q "^bobs .*uid 1001"
check admin_bucket_list $?
sleep 1.2  # the gateway looks at the identities file at most once a second
BOB=(--aws-sigv4 "aws:amz:us-east-1:s3" --user "$BAK:$BSK" -H "x-amz-content-sha256: UNSIGNED-PAYLOAD")
curl -sf "${BOB[@]}" -T "$W/c.txt" "$EP/bobs/mine.txt" -o /dev/null; check bob_puts_in_his_bucket $?
[ "$(stat -c %u "$MNT/bobs/mine.txt")" = 1001 ]; check bob_owns_his_file $?
# A file bob (uid 1001) may not read, in his own bucket: no headers, no
# bytes, no digest, even after a reader's request filled the object cache.
printf secret > "$MNT/bobs/root-only.txt"; chmod 600 "$MNT/bobs/root-only.txt"
curl -sf "${SIG[@]}" -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" "$EP/bobs/root-only.txt" \
  -o /dev/null
code="$(curl -s -o /dev/null -w '%{http_code}' -I "${BOB[@]}" "$EP/bobs/root-only.txt")"
[ "$code" = 403 ]; check non_reader_head_refused $?
code="$(curl -s -o "$W/leak" -w '%{http_code}' "${BOB[@]}" "$EP/bobs/root-only.txt")"
[ "$code" = 403 ] && ! grep -q secret "$W/leak"; check non_reader_get_refused $?
code="$(curl -s -o /dev/null -w '%{http_code}' "${BOB[@]}" "$EP/curl/c.txt")"
[ "$code" = 403 ]; check bob_kept_out_of_other_buckets $?
"${ADM[@]}" s3.user.delete -identities "$W/ids.json" -name bob > /dev/null; check admin_user_delete $?
sleep 1.2
code="$(curl -s -o /dev/null -w '%{http_code}' "${BOB[@]}" "$EP/bobs/mine.txt")"
[ "$code" = 403 ]; check deleted_identity_refused $?

# ---- s3cmd ----
cat > "$W/s3cfg" <<CFG
[default]
access_key = $AK
secret_key = $SK
host_base = 127.0.0.1:$PORT
host_bucket = 127.0.0.1:$PORT
use_https = False
signature_v2 = False
CFG
S3CMD=(s3cmd -c "$W/s3cfg" --no-progress)
"${S3CMD[@]}" put "$W/tree/a/f7" s3://curl/s3cmd/f7 > /dev/null; check s3cmd_put $?
"${S3CMD[@]}" get s3://curl/s3cmd/f7 "$W/f7.s3cmd" > /dev/null; check s3cmd_get $?
cmp -s "$W/tree/a/f7" "$W/f7.s3cmd"; check s3cmd_roundtrip $?
"${S3CMD[@]}" ls s3://curl/s3cmd/ | grep -q "s3://curl/s3cmd/f7"; check s3cmd_ls $?

# ---- rclone (it refuses AWS_CA_BUNDLE) ----
RC=(env -u AWS_CA_BUNDLE rclone --config /dev/null --s3-provider Other --s3-endpoint "$EP"
    --s3-access-key-id "$AK" --s3-secret-access-key "$SK" --s3-region us-east-1)
"${RC[@]}" copy "$W/tree" :s3:curl/rclone; check rclone_copy $?
"${RC[@]}" check "$W/tree" :s3:curl/rclone 2> /dev/null; check rclone_check $?
diff -r "$W/tree" "$MNT/curl/rclone" > /dev/null; check rclone_tree_in_fuse $?

# ---- the AWS SDK for JavaScript v3 (npm, installed by install-deps) ----
if [ -d "$HERE/../s3/node_modules/@aws-sdk/client-s3" ]; then
  (cd "$HERE/../s3" && node s3_sdk_test.mjs "$EP" "$AK" "$SK" "$MNT" 2>&1 | grep -v "^\s*at ")
  [ "${PIPESTATUS[0]}" = 0 ]; check js_sdk_suite $?
else
  echo "CHECK js_sdk_suite FAIL (tests/s3/node_modules missing: run scripts/install-deps)"
  fails=$((fails + 1))
fi

# ---- boto3 ----
/usr/bin/python3 "$HERE/../s3/s3_boto3_test.py" "$EP" "$AK" "$SK" "$MNT"
[ $? = 0 ]; check boto3_suite $?
if [ "$fails" != 0 ]; then
  echo "FAIL: $fails checks failed; gateway log:"; tail -30 "$W/s3.log"; exit 1
fi
echo "S3 gateway: every check passed"
