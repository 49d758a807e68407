#!/usr/bin/python3
"""S3 gateway checks through boto3 (Debian's python3-boto3), run by
tests/integration/s3_test.sh against a cluster with a FUSE mount.

    s3_boto3_test.py ENDPOINT ACCESS_KEY SECRET_KEY FUSE_MOUNTPOINT

Prints "CHECK name ok|FAIL ..." per check; exit status = failures."""
import concurrent.futures
import hashlib
import os
import socket
import sys
import time
import urllib.error
import urllib.request

import boto3
import botocore
from botocore.config import Config

ENDPOINT, AK, SK, MNT = sys.argv[1:5]
fails = 0


def check(name, ok, detail=""):
    global fails
    print(f"CHECK {name} {'ok' if ok else 'FAIL'} {detail if not ok else ''}".rstrip(), flush=True)
    if not ok:
        fails += 1


def client(secret=SK, **cfg):
    return boto3.client("s3", endpoint_url=ENDPOINT, aws_access_key_id=AK,
                        aws_secret_access_key=secret, region_name="us-east-1",
                        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1},
                                      **cfg))


def code_of(fn):
    try:
        fn()
        return "no error"
    except botocore.exceptions.ClientError as e:
        return e.response["Error"]["Code"]


s3 = client()
B = "boto"
s3.create_bucket(Bucket=B)
check("create_bucket_again", code_of(lambda: s3.create_bucket(Bucket=B)) == "BucketAlreadyOwnedByYou")
check("list_buckets", B in [b["Name"] for b in s3.list_buckets()["Buckets"]])
check("wrong_secret", code_of(lambda: client("x" * 40).list_buckets()) == "SignatureDoesNotMatch")
check("no_such_bucket", code_of(lambda: s3.list_objects_v2(Bucket="nonexistent")) == "NoSuchBucket")

# Round trip, metadata, ETag = MD5, ranges, conditionals.
body = os.urandom(300_000)
put = s3.put_object(Bucket=B, Key="dir/obj.bin", Body=body, ContentType="application/x-test",
                    Metadata={"color": "blue"})
check("put_etag_is_md5", put["ETag"] == '"%s"' % hashlib.md5(body).hexdigest(), put["ETag"])
got = s3.get_object(Bucket=B, Key="dir/obj.bin")
check("get_body", got["Body"].read() == body)
check("get_type_meta", got["ContentType"] == "application/x-test" and got["Metadata"].get("color") == "blue",
      str((got["ContentType"], got["Metadata"])))
r = s3.get_object(Bucket=B, Key="dir/obj.bin", Range="bytes=100-199")["Body"].read()
check("range_a_b", r == body[100:200])
r = s3.get_object(Bucket=B, Key="dir/obj.bin", Range="bytes=-10")["Body"].read()
check("range_suffix", r == body[-10:])
r = s3.get_object(Bucket=B, Key="dir/obj.bin", Range="bytes=299990-")["Body"].read()
check("range_open", r == body[299990:])
check("range_invalid", code_of(lambda: s3.get_object(Bucket=B, Key="dir/obj.bin", Range="bytes=400000-")) == "InvalidRange")
check("if_match_fails", code_of(lambda: s3.get_object(Bucket=B, Key="dir/obj.bin", IfMatch='"nope"')) == "PreconditionFailed")
check("if_none_match_304", code_of(lambda: s3.get_object(Bucket=B, Key="dir/obj.bin", IfNoneMatch=put["ETag"])) == "304")
check("no_such_key", code_of(lambda: s3.get_object(Bucket=B, Key="dir/missing")) == "NoSuchKey")
check("dir_is_not_an_object", code_of(lambda: s3.get_object(Bucket=B, Key="dir")) == "NoSuchKey")
for bad in ["a//b", "../x", "a/./b", "x" * 256]:
    check("bad_key_refused " + bad[:12], code_of(lambda: s3.put_object(Bucket=B, Key=bad, Body=b"x")) in
          ("InvalidArgument", "KeyTooLongError"))

# A wrong Content-MD5: BadDigest, and no object.
import base64
wrong = base64.b64encode(hashlib.md5(b"other").digest()).decode()
check("bad_md5_refused", code_of(lambda: s3.put_object(Bucket=B, Key="md5", Body=b"data", ContentMD5=wrong)) == "BadDigest")
check("bad_md5_left_nothing", code_of(lambda: s3.head_object(Bucket=B, Key="md5")) == "404")

# Special characters in keys.
special = ["sp ace.txt", "plus+sign", "pct%41", "eq=amp&", "tilde~", "ünïcödé/日本.txt"]
for k in special:
    s3.put_object(Bucket=B, Key="special/" + k, Body=k.encode())
listed = [o["Key"] for o in s3.list_objects_v2(Bucket=B, Prefix="special/")["Contents"]]
check("special_keys_listed", sorted(listed) == sorted("special/" + k for k in special), str(listed))
check("special_keys_read", all(s3.get_object(Bucket=B, Key="special/" + k)["Body"].read() == k.encode() for k in special))

# Listing: 2,500 keys, pages of 1000, delimiter.
with concurrent.futures.ThreadPoolExecutor(8) as ex:
    list(ex.map(lambda i: s3.put_object(Bucket=B, Key=f"many/{i // 100:02d}/k{i:04d}", Body=b""), range(2500)))
keys, token, pages = [], None, 0
while True:
    kw = {"Bucket": B, "Prefix": "many/"}
    if token:
        kw["ContinuationToken"] = token
    page = s3.list_objects_v2(**kw)
    pages += 1
    keys += [o["Key"] for o in page.get("Contents", [])]
    if not page["IsTruncated"]:
        break
    token = page["NextContinuationToken"]
check("list_2500_paged", len(keys) == 2500 and pages == 3 and keys == sorted(keys), f"{len(keys)} in {pages}")
page = s3.list_objects_v2(Bucket=B, Prefix="many/", Delimiter="/")
# A directory key: an empty directory, listed as "key/" (a marker) until it
# has entries; with a delimiter it is a common prefix.
s3.put_object(Bucket=B, Key="markers/empty/", Body=b"")
check("marker_is_a_directory", os.path.isdir(os.path.join(MNT, B, "markers", "empty")))
keys_m = [o["Key"] for o in s3.list_objects_v2(Bucket=B, Prefix="markers/").get("Contents", [])]
check("marker_listed", keys_m == ["markers/empty/"], str(keys_m))
pre_m = [p["Prefix"] for p in s3.list_objects_v2(Bucket=B, Prefix="markers/", Delimiter="/").get("CommonPrefixes", [])]
check("marker_as_prefix", pre_m == ["markers/empty/"], str(pre_m))
s3.put_object(Bucket=B, Key="markers/empty/file", Body=b"f")
keys_m = [o["Key"] for o in s3.list_objects_v2(Bucket=B, Prefix="markers/").get("Contents", [])]
check("marker_gone_once_filled", keys_m == ["markers/empty/file"], str(keys_m))
check("list_delimiter", [p["Prefix"] for p in page["CommonPrefixes"]] == [f"many/{i:02d}/" for i in range(25)])
paginator = s3.get_paginator("list_objects")
v1 = [o["Key"] for p in paginator.paginate(Bucket=B, Prefix="many/1", PaginationConfig={"PageSize": 300}) for o in p.get("Contents", [])]
check("list_v1_marker", len(v1) == 1000 and v1 == sorted(v1), str(len(v1)))

# Conditional create racing from 8 clients: exactly one wins. (Debian's
# botocore predates IfNoneMatch on PutObject: the header goes in by hand.)
def racer(i):
    c = client()
    c.meta.events.register("before-sign.s3.PutObject",
                           lambda request, **kw: request.headers.__setitem__("If-None-Match", "*"))
    return code_of(lambda: c.put_object(Bucket=B, Key="race", Body=str(i).encode()))
with concurrent.futures.ThreadPoolExecutor(8) as ex:
    results = list(ex.map(racer, range(8)))
check("if_none_match_one_wins", results.count("no error") == 1 and results.count("PreconditionFailed") == 7, str(results))

# Presigned GET (SigV4, fetched without any SDK), an expired one, and a
# SigV2 one (Debian's boto3 presigns with V2 unless told): a clear error.
v2 = s3.generate_presigned_url("get_object", Params={"Bucket": B, "Key": "dir/obj.bin"}, ExpiresIn=60)
try:
    urllib.request.urlopen(v2)
    check("presigned_v2_refused", False, "served")
except urllib.error.HTTPError as e:
    check("presigned_v2_refused", e.code == 400 and b"Signature Version 2" in e.read())
s3 = client(signature_version="s3v4")
url = s3.generate_presigned_url("get_object", Params={"Bucket": B, "Key": "dir/obj.bin"}, ExpiresIn=60)
check("presigned_get", urllib.request.urlopen(url).read() == body)
old = s3.generate_presigned_url("get_object", Params={"Bucket": B, "Key": "dir/obj.bin"}, ExpiresIn=1)
time.sleep(2)
try:
    urllib.request.urlopen(old)
    check("presigned_expired", False, "served")
except urllib.error.HTTPError as e:
    check("presigned_expired", e.code == 403 and b"expired" in e.read())

# Hostile requests: a presigned PUT stretched with an unsigned
# x-amz-copy-source or attributes; a bucket that is a path; a response
# header with CR/LF; a range of an empty object.
put_url = s3.generate_presigned_url("put_object", Params={"Bucket": B, "Key": "stretched"}, ExpiresIn=60)
for extra in ({"x-amz-copy-source": f"{B}/dir/obj.bin"}, {"x-amz-meta-uid": "0", "x-amz-meta-mode": "35309"}):
    req = urllib.request.Request(put_url, data=b"x", method="PUT", headers=extra)
    try:
        urllib.request.urlopen(req)
        check("unsigned_header_refused " + list(extra)[0], False, "accepted")
    except urllib.error.HTTPError as e:
        check("unsigned_header_refused " + list(extra)[0], e.code == 403 and b"not signed" in e.read())
check("stretched_left_nothing", code_of(lambda: s3.head_object(Bucket=B, Key="stretched")) == "404")
for bad_bucket in (".needlefs-uploads", ".."):
    check("bucket_not_a_path " + bad_bucket,
          code_of(lambda: s3.list_objects_v2(Bucket=bad_bucket)) in ("NoSuchBucket", "InvalidBucketName"))
inj = s3.generate_presigned_url("get_object", Params={
    "Bucket": B, "Key": "dir/obj.bin", "ResponseContentDisposition": "a\r\nSet-Cookie: x=y"}, ExpiresIn=60)
resp = urllib.request.urlopen(inj)
check("no_header_injection", resp.headers.get("Set-Cookie") is None and resp.read() == body)
s3.put_object(Bucket=B, Key="empty", Body=b"")
e = s3.get_object(Bucket=B, Key="empty", Range="bytes=-5")
check("range_of_empty_object", e["Body"].read() == b"" and e["ResponseMetadata"]["HTTPStatusCode"] == 200)

# Multipart: parts out of order, the ETag of parts, order and size rules.
mp = s3.create_multipart_upload(Bucket=B, Key="multi/big.bin")
uid = mp["UploadId"]
parts = [os.urandom(5 << 20), os.urandom(5 << 20), os.urandom(1234)]
etags = {}
for n in (3, 1, 2):
    etags[n] = s3.upload_part(Bucket=B, Key="multi/big.bin", UploadId=uid, PartNumber=n, Body=parts[n - 1])["ETag"]
listed = s3.list_parts(Bucket=B, Key="multi/big.bin", UploadId=uid)["Parts"]
check("list_parts", [p["PartNumber"] for p in listed] == [1, 2, 3])
check("uploads_listed", uid in [u["UploadId"] for u in s3.list_multipart_uploads(Bucket=B).get("Uploads", [])])
check("parts_invisible_in_bucket", not os.path.exists(os.path.join(MNT, B, "multi")))
bad_order = {"Parts": [{"PartNumber": 2, "ETag": etags[2]}, {"PartNumber": 1, "ETag": etags[1]}]}
check("invalid_part_order", code_of(lambda: s3.complete_multipart_upload(Bucket=B, Key="multi/big.bin", UploadId=uid, MultipartUpload=bad_order)) == "InvalidPartOrder")
done = s3.complete_multipart_upload(Bucket=B, Key="multi/big.bin", UploadId=uid, MultipartUpload={
    "Parts": [{"PartNumber": n, "ETag": etags[n]} for n in (1, 2, 3)]})
want = hashlib.md5(b"".join(hashlib.md5(p).digest() for p in parts)).hexdigest() + "-3"
check("multipart_etag", done["ETag"] == f'"{want}"', done["ETag"])
with open(os.path.join(MNT, B, "multi", "big.bin"), "rb") as f:
    check("multipart_through_fuse", f.read() == b"".join(parts))
check("upload_gone", code_of(lambda: s3.list_parts(Bucket=B, Key="multi/big.bin", UploadId=uid)) == "NoSuchUpload")
# UploadPartCopy: a range of one object and the whole of another.
mp3 = s3.create_multipart_upload(Bucket=B, Key="multi/copied")
c1 = s3.upload_part_copy(Bucket=B, Key="multi/copied", UploadId=mp3["UploadId"], PartNumber=1,
                         CopySource={"Bucket": B, "Key": "multi/big.bin"}, CopySourceRange=f"bytes=0-{(5 << 20) - 1}")
c2 = s3.upload_part_copy(Bucket=B, Key="multi/copied", UploadId=mp3["UploadId"], PartNumber=2,
                         CopySource={"Bucket": B, "Key": "dir/obj.bin"})
s3.complete_multipart_upload(Bucket=B, Key="multi/copied", UploadId=mp3["UploadId"], MultipartUpload={
    "Parts": [{"PartNumber": 1, "ETag": c1["CopyPartResult"]["ETag"]}, {"PartNumber": 2, "ETag": c2["CopyPartResult"]["ETag"]}]})
got_copy = s3.get_object(Bucket=B, Key="multi/copied")["Body"].read()
check("upload_part_copy", got_copy == b"".join(parts)[:5 << 20] + body, str(len(got_copy)))
mp2 = s3.create_multipart_upload(Bucket=B, Key="multi/aborted")
s3.upload_part(Bucket=B, Key="multi/aborted", UploadId=mp2["UploadId"], PartNumber=1, Body=b"x")
s3.abort_multipart_upload(Bucket=B, Key="multi/aborted", UploadId=mp2["UploadId"])
check("abort", code_of(lambda: s3.head_object(Bucket=B, Key="multi/aborted")) == "404")

# Copy (metadata kept), DeleteObjects.
s3.copy_object(Bucket=B, Key="copy.bin", CopySource={"Bucket": B, "Key": "dir/obj.bin"})
h = s3.head_object(Bucket=B, Key="copy.bin")
check("copy", h["ContentLength"] == len(body) and h["Metadata"].get("color") == "blue" and h["ETag"] == put["ETag"])
resp = s3.delete_objects(Bucket=B, Delete={"Objects": [{"Key": "copy.bin"}, {"Key": "nothing-here"}]})
check("delete_objects", sorted(d["Key"] for d in resp["Deleted"]) == ["copy.bin", "nothing-here"])

# FUSE <-> S3: a file written through FUSE is listed with its ETag and read;
# one deleted through S3 is gone through FUSE.
data = os.urandom(70_000)
with open(os.path.join(MNT, B, "from-fuse.bin"), "wb") as f:
    f.write(data)
objs = {o["Key"]: o for o in s3.list_objects_v2(Bucket=B, Prefix="from-fuse")["Contents"]}
check("fuse_file_listed_with_etag", objs.get("from-fuse.bin", {}).get("ETag") == '"%s"' % hashlib.md5(data).hexdigest(), str(objs))
check("fuse_file_read", s3.get_object(Bucket=B, Key="from-fuse.bin")["Body"].read() == data)
with open(os.path.join(MNT, B, "from-fuse.bin"), "wb") as f:
    f.write(b"changed")
check("changed_file_new_etag", s3.head_object(Bucket=B, Key="from-fuse.bin")["ETag"] == '"%s"' % hashlib.md5(b"changed").hexdigest())
s3.delete_object(Bucket=B, Key="from-fuse.bin")
gone = False
for _ in range(100):
    if not os.path.exists(os.path.join(MNT, B, "from-fuse.bin")):
        gone = True
        break
    time.sleep(0.02)
check("s3_delete_seen_by_fuse", gone)

# A truncated upload (the client goes away mid-body): an error, no object.
host, port = ENDPOINT.split("//")[1].split(":")
# Sign a real PUT of 1000 bytes, send 100 of them.
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
creds = botocore.credentials.Credentials(AK, SK)
full = b"y" * 1000
areq = AWSRequest(method="PUT", url=f"{ENDPOINT}/{B}/truncated", data=full,
                  headers={"x-amz-content-sha256": hashlib.sha256(full).hexdigest(), "Content-Length": "1000"})
SigV4Auth(creds, "s3", "us-east-1").add_auth(areq)
headers = dict(areq.headers.items())
headers.setdefault("Host", f"{host}:{port}")
raw = f"PUT /{B}/truncated HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
with socket.create_connection((host, int(port))) as so:
    so.sendall(raw.encode() + full[:100])
    so.shutdown(socket.SHUT_WR)
    so.settimeout(10)
    try:
        so.recv(4096)
    except OSError:
        pass
check("truncated_upload_left_nothing", code_of(lambda: s3.head_object(Bucket=B, Key="truncated")) == "404")
check("no_temp_files_left", not any(n.startswith(".needlefs-tmp-") for n in os.listdir(os.path.join(MNT, B))),
      str(os.listdir(os.path.join(MNT, B))))

# Tagging, ListObjectVersions (every object as its "null" version).
s3.put_object_tagging(Bucket=B, Key="dir/obj.bin", Tagging={"TagSet": [
    {"Key": "project", "Value": "needle fs"}, {"Key": "tier", "Value": "hot&cold"}]})
tags = {t["Key"]: t["Value"] for t in s3.get_object_tagging(Bucket=B, Key="dir/obj.bin")["TagSet"]}
check("tagging_round_trip", tags == {"project": "needle fs", "tier": "hot&cold"}, str(tags))
check("tagging_count", s3.get_object(Bucket=B, Key="dir/obj.bin")["TagCount"] == 2)
s3.delete_object_tagging(Bucket=B, Key="dir/obj.bin")
check("tagging_deleted", s3.get_object_tagging(Bucket=B, Key="dir/obj.bin")["TagSet"] == [])
vers = s3.list_object_versions(Bucket=B, Prefix="special/")
check("list_object_versions", len(vers["Versions"]) == len(special) and
      all(v["VersionId"] == "null" and v["IsLatest"] for v in vers["Versions"]))

# s3fs's x-amz-meta-mode/uid/gid/mtime and rclone's mtime become the file's
# real attributes, and are reported back from them.
s3.put_object(Bucket=B, Key="posix.txt", Body=b"p", Metadata={
    "mode": str(0o100640), "uid": "1234", "gid": "5678", "mtime": "1500000000.25"})
st = os.stat(os.path.join(MNT, B, "posix.txt"))
check("s3fs_meta_as_attributes", (st.st_mode & 0o7777, st.st_uid, st.st_gid, st.st_mtime_ns) ==
      (0o640, 1234, 5678, 1_500_000_000_250_000_000), str((oct(st.st_mode), st.st_uid, st.st_gid, st.st_mtime_ns)))
os.chmod(os.path.join(MNT, B, "posix.txt"), 0o600)
m = s3.head_object(Bucket=B, Key="posix.txt")["Metadata"]
check("attributes_reported_back", m.get("mode") == str(0o100600) and m.get("mtime", "").startswith("1500000000.25"), str(m))

# The same through a multipart upload (rclone sends its mtime with
# CreateMultipartUpload for big files): real attributes once complete, and
# the multipart ETag kept.
mpp = s3.create_multipart_upload(Bucket=B, Key="posix-multi.bin", Metadata={
    "mtime": "1400000000.5", "mode": str(0o100604), "color": "blue"})
pp = s3.upload_part(Bucket=B, Key="posix-multi.bin", UploadId=mpp["UploadId"], PartNumber=1, Body=b"m" * 100)
s3.complete_multipart_upload(Bucket=B, Key="posix-multi.bin", UploadId=mpp["UploadId"], MultipartUpload={
    "Parts": [{"ETag": pp["ETag"], "PartNumber": 1}]})
st = os.stat(os.path.join(MNT, B, "posix-multi.bin"))
check("multipart_meta_as_attributes", (st.st_mtime_ns, st.st_mode & 0o7777) == (1_400_000_000_500_000_000, 0o604),
      str((st.st_mtime_ns, oct(st.st_mode))))
h = s3.head_object(Bucket=B, Key="posix-multi.bin")
check("multipart_meta_reported_back", h["Metadata"].get("mtime", "").startswith("1400000000.5") and
      h["Metadata"].get("color") == "blue" and h["ETag"].endswith('-1"'), str((h["Metadata"], h["ETag"])))

check("bucket_not_empty", code_of(lambda: s3.delete_bucket(Bucket=B)) == "BucketNotEmpty")
print(f"RESULT checks_failed={fails}")
sys.exit(fails)
