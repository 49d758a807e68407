#!/usr/bin/python3
"""The S3 benchmark's client side (bench/s3): boto3 threads against the
gateway, and the same bytes through the FUSE mount as the reference of our
own stack. Prints one line per figure:  s3|fuse <phase> <value> <unit>.

    s3_workload.py ENDPOINT ACCESS_KEY SECRET_KEY MOUNTPOINT [BIG_MIB]"""
import concurrent.futures
import os
import sys
import time

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config

EP, AK, SK, MNT = sys.argv[1:5]
BIG = int(sys.argv[5]) if len(sys.argv) > 5 else 1024
N = 4000
s3 = boto3.client("s3", endpoint_url=EP, aws_access_key_id=AK, aws_secret_access_key=SK,
                  region_name="us-east-1",
                  config=Config(s3={"addressing_style": "path"}, max_pool_connections=32,
                                signature_version="s3v4"))
s3.create_bucket(Bucket="bench")
small = os.urandom(4096)


def timed(fn):
    t = time.monotonic()
    fn()
    return time.monotonic() - t


for c in (8, 16):
    with concurrent.futures.ThreadPoolExecutor(c) as ex:
        keys = [f"small{c}/{i:05d}" for i in range(N)]
        t = timed(lambda: list(ex.map(lambda k: s3.put_object(Bucket="bench", Key=k, Body=small), keys)))
        print(f"s3 put4k_c{c} {N / t:.0f} req/s", flush=True)
        t = timed(lambda: list(ex.map(lambda k: s3.get_object(Bucket="bench", Key=k)["Body"].read(), keys)))
        print(f"s3 get4k_c{c} {N / t:.0f} req/s", flush=True)
        d = os.path.join(MNT, "bench", f"fuse{c}")
        os.makedirs(d, exist_ok=True)

        def fput(k):
            with open(os.path.join(d, k), "wb") as f:
                f.write(small)

        def fget(k):
            with open(os.path.join(d, k), "rb") as f:
                return f.read()
        names = [f"{i:05d}" for i in range(N)]
        t = timed(lambda: list(ex.map(fput, names)))
        print(f"fuse put4k_c{c} {N / t:.0f} req/s", flush=True)
        t = timed(lambda: list(ex.map(fget, names)))
        print(f"fuse get4k_c{c} {N / t:.0f} req/s", flush=True)

src = os.path.join(os.path.dirname(MNT), "big.src")
with open(src, "wb") as f:
    for _ in range(BIG):
        f.write(os.urandom(1 << 20))
cfg = TransferConfig(multipart_threshold=8 << 20, multipart_chunksize=8 << 20, max_concurrency=8)
t = timed(lambda: s3.upload_file(src, "bench", "big", Config=cfg))
print(f"s3 upload_multipart_8x8MiB {BIG / t:.0f} MiB/s", flush=True)
dst = src + ".back"
t = timed(lambda: s3.download_file("bench", "big", dst, Config=cfg))
print(f"s3 download_8_ranges {BIG / t:.0f} MiB/s", flush=True)


def stream():
    body = s3.get_object(Bucket="bench", Key="big")["Body"]
    while body.read(8 << 20):
        pass
t = timed(stream)
print(f"s3 download_one_stream {BIG / t:.0f} MiB/s", flush=True)


def fuse_copy(a, b):
    with open(a, "rb") as fi, open(b, "wb") as fo:
        while True:
            buf = fi.read(8 << 20)
            if not buf:
                break
            fo.write(buf)
t = timed(lambda: fuse_copy(src, os.path.join(MNT, "bench", "big.fuse")))
print(f"fuse upload {BIG / t:.0f} MiB/s", flush=True)
t = timed(lambda: fuse_copy(os.path.join(MNT, "bench", "big.fuse"), dst))
print(f"fuse download {BIG / t:.0f} MiB/s", flush=True)
os.unlink(src)
os.unlink(dst)
