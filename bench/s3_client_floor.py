#!/usr/bin/env python3
"""The S3 client floor (issue: S3 gateway): what boto3 itself costs per request.

Eight boto3 threads (as bench/s3_workload.py) GET one hot 4 KiB object, which the
gateway answers from its object cache, then PUT 4 KiB objects. Prints req/s and the
client process's own CPU per request, and the rate boto3 alone could reach with every
core of the machine and a server that costs nothing.

    /usr/bin/python3 bench/s3_client_floor.py ENDPOINT ACCESS_KEY SECRET_KEY
"""
import os, sys, threading, time, boto3
from botocore.config import Config
ep, ak, sk = sys.argv[1:4]
s3 = boto3.client("s3", endpoint_url=ep, aws_access_key_id=ak, aws_secret_access_key=sk,
                  region_name="us-east-1", config=Config(max_pool_connections=16))
try: s3.create_bucket(Bucket="floor")
except Exception: pass
body = os.urandom(4096)
s3.put_object(Bucket="floor", Key="hot", Body=body)
def run(name, fn, threads=8, per=300):
    t0 = time.time(); c0 = os.times()
    def w(t):
        for i in range(per): fn(t, i)
    ts = [threading.Thread(target=w, args=(t,)) for t in range(threads)]
    [x.start() for x in ts]; [x.join() for x in ts]
    dt = time.time() - t0; c1 = os.times()
    n = threads * per
    cpu = (c1.user - c0.user) + (c1.system - c0.system)
    print(f"{name}: {n/dt:7.0f} req/s  client CPU {1e3*cpu/n:.2f} ms/req  (client alone could do at most {os.cpu_count()*n/cpu:.0f}/s on {os.cpu_count()} cores)")
run("get4k", lambda t, i: s3.get_object(Bucket="floor", Key="hot")["Body"].read())
run("put4k", lambda t, i: s3.put_object(Bucket="floor", Key=f"p{t}-{i}", Body=body))
