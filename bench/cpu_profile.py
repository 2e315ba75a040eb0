"""Where the CPU goes per captured order (``python bench/cpu_profile.py --help``).

A short flash-sale run built from bench/flash.py's pieces (fresh PostgreSQL database, real
``ordermesh serve --no-workers`` and ``ordermesh worker`` processes, aiohttp clients), reporting
the CPU each party used per order: the API processes, the workers, PostgreSQL and this load
generator. On a 2-core machine their sum is the ceiling: 2,000 ms of CPU a second divided by it
is the most orders per second the whole system can take. ``--py-spy DIR`` also records a py-spy
profile (``pip install py-spy``; samples only while a thread holds the GIL) of the first API
process and the first worker, as raw folded stacks, and prints the 25 heaviest frames of each.

    python bench/cpu_profile.py --scenario hot-sku --orders 3000 --servers 1 --concurrency 200
    python bench/cpu_profile.py --scenario steady --rate 400 --orders 8000 --py-spy /tmp/prof
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import flash

PY_SPY = shutil.which("py-spy", path=os.pathsep.join((str(Path(sys.executable).parent), os.environ.get("PATH", ""))))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", choices=("hot-sku", "steady"), default="hot-sku")
    parser.add_argument("--orders", type=int, default=3000)
    parser.add_argument("--servers", type=int, default=None, help="default: as bench/flash.py (1 steady, 2 hot-sku)")
    parser.add_argument("--workers", type=int, default=None, help="default: 0 for hot-sku, 1 for steady")
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--rate", type=float, default=0, help="orders/s offered (0: closed loop)")
    parser.add_argument("--py-spy", type=Path, default=None, metavar="DIR")
    args = parser.parse_args()
    if args.py_spy and PY_SPY is None:
        raise SystemExit("error: --py-spy needs py-spy beside this Python or on PATH (pip install py-spy)")
    workers = args.workers if args.workers is not None else (0 if args.scenario == "hot-sku" else 1)

    db = flash.new_database("postgresql")
    try:
        if args.scenario == "hot-sku":
            skus = ["HOT"]
            api_key = flash.seed(db, skus=1, units=lambda _: flash.HOT_UNITS // 3)
        else:
            skus = [f"S{i:05d}" for i in range(10_000)]
            api_key = flash.seed(db, skus=len(skus), units=lambda _: 30)
        count = args.servers if args.servers is not None else flash.SERVERS[args.scenario]
        servers, urls = flash.start_servers(db, count, {"ORDERMESH_DB_POOL_SIZE": "10"})
        worker_procs = flash.start_workers(db, workers, {"ORDERMESH_DB_POOL_SIZE": "4"})
        flash.settle(worker_procs)
        spies = _spy(args.py_spy, {"api": servers[0], **({"worker": worker_procs[0]} if worker_procs else {})})
        orders = flash.orders_for(args.scenario, 1, skus, args.orders)
        shared, started = flash.SharedCpu(), time.monotonic()
        rate = args.rate
        load = asyncio.run(
            flash.drive(
                urls,
                api_key,
                orders,
                concurrency=args.concurrency,
                schedule=(lambda number: number / rate) if rate else None,
                label=args.scenario,
            )
        )
        if worker_procs:
            flash.wait_drained(db, 0, "draining")
        seconds = time.monotonic() - started
        for spy in spies.values():
            spy.send_signal(signal.SIGINT)
            spy.wait()
        accepted = len(load.accepted)
        report = flash.summary(load, args.scenario, args.orders) | {
            "end_to_end_per_second": round(accepted / seconds, 1),
            "api_cpu_ms_per_order": flash.per_order_ms(flash.cpu_of(servers), accepted),
            "worker_cpu_ms_per_order": flash.per_order_ms(flash.cpu_of(worker_procs), accepted),
            **shared.per_order(accepted),
        }
        flash.stop_all(servers + worker_procs)
        print(json.dumps(report, indent=1))
        for name in spies:
            print(f"\nheaviest frames (own samples) in {name}:")
            for share, frame in heaviest(args.py_spy / f"{name}.txt"):
                print(f"{share:6.1%}  {frame}")
    finally:
        db.drop()


def _spy(directory: Path | None, procs: dict[str, flash.Proc]) -> dict[str, subprocess.Popen[bytes]]:
    if directory is None:
        return {}
    directory.mkdir(parents=True, exist_ok=True)
    return {
        name: subprocess.Popen(
            [
                *(str(PY_SPY), "record", "--pid", str(proc.process.pid), "--output", str(directory / f"{name}.txt")),
                *("--format", "raw", "--rate", "400", "--nonblocking", "--gil"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for name, proc in procs.items()
    }


def heaviest(folded: Path, top: int = 25) -> list[tuple[float, str]]:
    """The frames with the most samples of their own in a py-spy raw (folded) file."""
    own: Counter[str] = Counter()
    for line in folded.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        own[stack.rsplit(";", 1)[-1]] += int(count)
    total = sum(own.values()) or 1
    return [(count / total, frame) for frame, count in own.most_common(top)]


if __name__ == "__main__":
    main()
