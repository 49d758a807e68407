#!/usr/bin/python3
"""One phase of the FUSE benchmark on one directory; prints "<figure> <unit>".

The same code runs against every target (NeedleFS, ext4, bindfs), so the
figures compare the file systems, not the tools. Phases:
  write DIR MIB          sequential write, 1 MiB blocks, fsync at the end -> MiB/s
  read DIR               sequential read of DIR/big, 1 MiB blocks         -> MiB/s
  randread DIR COUNT     4 KiB reads at random offsets of DIR/big         -> ops/s
  create DIR N           N files of 4 KiB in DIR/small (open, write, close) -> files/s
  stat DIR N             stat each of them                                 -> files/s
  readsmall DIR N        read each of them                                 -> files/s
  delete DIR N           unlink each of them                               -> files/s
"""
import os
import random
import sys
import time

BLOCK = 1 << 20


def main():
    phase, d = sys.argv[1], sys.argv[2]
    arg = int(sys.argv[3]) if len(sys.argv) > 3 else 0
    small = os.path.join(d, "small")
    t0 = time.perf_counter()
    if phase == "write":
        buf = os.urandom(BLOCK)
        fd = os.open(os.path.join(d, "big"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        for _ in range(arg):
            os.write(fd, buf)
        os.fsync(fd)
        os.close(fd)
        result, unit = arg / (time.perf_counter() - t0), "MiB/s"
    elif phase == "read":
        fd = os.open(os.path.join(d, "big"), os.O_RDONLY)
        total = 0
        while True:
            b = os.read(fd, BLOCK)
            if not b:
                break
            total += len(b)
        os.close(fd)
        result, unit = total / BLOCK / (time.perf_counter() - t0), "MiB/s"
    elif phase == "randread":
        fd = os.open(os.path.join(d, "big"), os.O_RDONLY)
        size = os.fstat(fd).st_size
        rng = random.Random(42)
        for _ in range(arg):
            os.pread(fd, 4096, rng.randrange(0, size // 4096) * 4096)
        os.close(fd)
        result, unit = arg / (time.perf_counter() - t0), "ops/s"
    elif phase == "create":
        os.makedirs(small, exist_ok=True)
        data = os.urandom(4096)
        t0 = time.perf_counter()
        for i in range(arg):
            fd = os.open(os.path.join(small, "f%d" % i), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.write(fd, data)
            os.close(fd)
        result, unit = arg / (time.perf_counter() - t0), "files/s"
    elif phase == "stat":
        for i in range(arg):
            os.stat(os.path.join(small, "f%d" % i))
        result, unit = arg / (time.perf_counter() - t0), "files/s"
    elif phase == "readsmall":
        for i in range(arg):
            fd = os.open(os.path.join(small, "f%d" % i), os.O_RDONLY)
            if len(os.read(fd, 8192)) != 4096:
                sys.exit("short read of f%d" % i)
            os.close(fd)
        result, unit = arg / (time.perf_counter() - t0), "files/s"
    elif phase == "delete":
        for i in range(arg):
            os.unlink(os.path.join(small, "f%d" % i))
        os.rmdir(small)
        result, unit = arg / (time.perf_counter() - t0), "files/s"
    else:
        sys.exit("unknown phase " + phase)
    print("%.1f %s" % (result, unit))


if __name__ == "__main__":
    main()
