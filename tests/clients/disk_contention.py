"""What other disk work does to an fdatasync loop (a measurement, not a test).

Appends 1 KiB and calls fdatasync, N times with a 1 ms gap, as acks=all produce with one
record per request does, and prints the latency percentiles. With --with, something runs
beside it on the same filesystem:

  reads     O_DIRECT reads of a scratch file (--read-kib each, 256 by default) at --mb-per-s,
            as the compaction cleaner reads segments
  cuts      a freshly written scratch file cut down --cut-kib at a time with ftruncate,
            resting as long as each cut took, as the broker's reaper frees a deleted segment
            (on a filesystem mounted with `discard` every cut trims); prints the cut times
  swaps     the cleaner's swap of one segment, --swaps-per-s times a second: a new file
            written with O_DIRECT (--swap-kib) and fdatasynced, two index files removed, the
            directory fsynced, the file renamed over the old one, the directory fsynced again;
            prints the swap times

  python3 tests/clients/disk_contention.py --dir /tmp --with none
  python3 tests/clients/disk_contention.py --dir /tmp --with reads --mb-per-s 200
  python3 tests/clients/disk_contention.py --dir /tmp --with cuts --cut-kib 64
  python3 tests/clients/disk_contention.py --dir /tmp --with swaps --swaps-per-s 20
"""

from __future__ import annotations

import argparse
import mmap
import os
import threading
import time
from pathlib import Path

CHUNK = 256 * 1024


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(p / 100 * len(values)))]


def fsync_loop(path: Path, n: int) -> list[float]:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    buf = b"x" * 1024
    out = []
    try:
        for _ in range(n):
            t = time.perf_counter()
            os.write(fd, buf)
            os.fdatasync(fd)
            out.append((time.perf_counter() - t) * 1000)
            time.sleep(0.001)
    finally:
        os.close(fd)
        path.unlink()
    return out


def write_direct(path: Path, mb: int) -> None:
    """A scratch file written with O_DIRECT, as segments are."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_DIRECT, 0o644)
    buf = mmap.mmap(-1, 1 << 20)
    buf.write(os.urandom(1 << 20))
    try:
        for _ in range(mb):
            os.write(fd, buf)
    finally:
        os.close(fd)


def reader(path: Path, rate: float, chunk: int, stop: threading.Event, done: list[int]) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
    size = os.fstat(fd).st_size
    buf = mmap.mmap(-1, chunk)
    pos, total, start = 0, 0, time.perf_counter()
    try:
        while not stop.is_set():
            n = os.preadv(fd, [buf], pos)
            pos = (pos + n) % (size - chunk)
            total += n
            ahead = total / rate - (time.perf_counter() - start)
            if ahead > 0:
                time.sleep(ahead)
    finally:
        os.close(fd)
    done.append(total)


def cutter(path: Path, cut: int, times: list[float]) -> None:
    fd = os.open(path, os.O_WRONLY)
    size = os.fstat(fd).st_size
    try:
        while size > 0:
            size = max(0, size - cut)
            t = time.perf_counter()
            os.ftruncate(fd, size)
            d = time.perf_counter() - t
            times.append(d * 1000)
            time.sleep(d)
    finally:
        os.close(fd)
        path.unlink()


def swapper(workdir: Path, kib: int, per_s: float, stop: threading.Event,
            times: list[float]) -> None:
    workdir.mkdir()
    dfd = os.open(workdir, os.O_RDONLY | os.O_DIRECTORY)
    buf = mmap.mmap(-1, kib * 1024)
    buf.write(os.urandom(kib * 1024))
    seg = workdir / "00000000000000000000.log"
    seg.write_bytes(b"")
    start, n = time.perf_counter(), 0
    try:
        while not stop.is_set():
            t = time.perf_counter()
            for suffix in (".index", ".timeindex"):
                (workdir / f"00000000000000000000{suffix}").write_bytes(b"i" * 4096)
            cleaned = workdir / "00000000000000000000.log.cleaned"
            fd = os.open(cleaned, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_DIRECT, 0o644)
            try:
                os.write(fd, buf)
                os.fdatasync(fd)
            finally:
                os.close(fd)
            for suffix in (".index", ".timeindex"):
                (workdir / f"00000000000000000000{suffix}").unlink()
            os.fsync(dfd)
            os.rename(cleaned, seg)
            os.fsync(dfd)
            times.append((time.perf_counter() - t) * 1000)
            n += 1
            ahead = n / per_s - (time.perf_counter() - start)
            if ahead > 0:
                time.sleep(ahead)
    finally:
        os.close(dfd)
        for f in workdir.iterdir():
            f.unlink()
        workdir.rmdir()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", type=Path, default=Path("/tmp"))
    ap.add_argument("--with", dest="beside", choices=["none", "reads", "cuts", "swaps"], default="none")
    ap.add_argument("--syncs", type=int, default=3000)
    ap.add_argument("--mb-per-s", type=float, default=200)
    ap.add_argument("--read-kib", type=int, default=CHUNK // 1024)
    ap.add_argument("--cut-kib", type=int, default=256)
    ap.add_argument("--scratch-mb", type=int, default=400)
    ap.add_argument("--swaps-per-s", type=float, default=20)
    ap.add_argument("--swap-kib", type=int, default=256)
    args = ap.parse_args()
    scratch = args.dir / f"disk-contention-{os.getpid()}.scratch"
    stop = threading.Event()
    extra: list = []
    thread = None
    if args.beside in ("reads", "cuts"):
        write_direct(scratch, args.scratch_mb)
    if args.beside == "reads":
        thread = threading.Thread(target=reader, args=(scratch, args.mb_per_s * 1e6, args.read_kib * 1024,
                                                        stop, extra))
    elif args.beside == "cuts":
        thread = threading.Thread(target=cutter, args=(scratch, args.cut_kib * 1024, extra))
    elif args.beside == "swaps":
        thread = threading.Thread(
            target=swapper,
            args=(args.dir / f"disk-contention-{os.getpid()}.swaps", args.swap_kib,
                  args.swaps_per_s, stop, extra))
    if thread:
        thread.start()
    try:
        lat = fsync_loop(args.dir / f"disk-contention-{os.getpid()}.log", args.syncs)
    finally:
        stop.set()
        if thread:
            thread.join()
        if args.beside == "reads":
            scratch.unlink()
    print(f"fdatasync with {args.beside}: n={len(lat)} p50={pct(lat, 50):.2f} "
          f"p99={pct(lat, 99):.2f} p99.9={pct(lat, 99.9):.2f} max={max(lat):.2f} ms")
    if args.beside == "reads":
        print(f"read {extra[0] / 1e6:.0f} MB beside it")
    if args.beside == "cuts":
        print(f"{len(extra)} cuts of {args.cut_kib} KiB: p50={pct(extra, 50):.2f} "
              f"p99={pct(extra, 99):.2f} max={max(extra):.1f} ms")
    if args.beside == "swaps":
        print(f"{len(extra)} swaps of {args.swap_kib} KiB: p50={pct(extra, 50):.2f} "
              f"p99={pct(extra, 99):.2f} max={max(extra):.1f} ms")


if __name__ == "__main__":
    main()
