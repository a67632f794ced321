"""How fast this machine is right now at the two kinds of work the load benchmark is made of:
Python bytecode, and small messages between two processes over loopback TCP.

A shared virtual machine's speed changes by several times from one hour to the next (README,
Performance: the same commit held 9,051 and 2,263 edits/s three hours apart). `bench/load.py`
prints these figures before and after its table, so that two runs can be told apart by the
machine as well as by the code.

    .venv/bin/python bench/calibrate.py     # prints one JSON object
"""

import json
import os
import socket
import subprocess
import sys
import time

LOOP = 5_000_000
ROUND_TRIPS = 20_000
MESSAGE = b"x" * 64


def python_seconds():
    started = time.perf_counter()
    total = 0
    for i in range(LOOP):
        total += i
    return time.perf_counter() - started


def echo():
    """The other end, in a process of its own: echo one connection until it closes."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        print(server.getsockname()[1], flush=True)
        connection, _ = server.accept()
        with connection:
            connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            while data := connection.recv(65536):
                connection.sendall(data)


def round_trip_microseconds():
    """Mean time for a 64-byte message to go to the echo process and back; the two processes
    on different cores, as the server and the generator are."""
    pin = hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) >= 2
    child = subprocess.Popen(
        [sys.executable, __file__, "--echo"],
        stdout=subprocess.PIPE,
        text=True,
        preexec_fn=(lambda: os.sched_setaffinity(0, {0})) if pin else None,
    )
    try:
        if pin:
            os.sched_setaffinity(0, {1})
        port = int(child.stdout.readline())
        with socket.create_connection(("127.0.0.1", port)) as connection:
            connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            started = time.perf_counter()
            for _ in range(ROUND_TRIPS):
                connection.sendall(MESSAGE)
                received = 0
                while received < len(MESSAGE):
                    received += len(connection.recv(len(MESSAGE) - received))
            elapsed = time.perf_counter() - started
    finally:
        child.wait(timeout=10)
    return elapsed / ROUND_TRIPS * 1e6


def measure():
    return {
        "python_loop_s": round(python_seconds(), 3),
        "loopback_round_trip_us": round(round_trip_microseconds(), 1),
    }


def describe(figures):
    return (
        f"Python loop {figures['python_loop_s']:.2f} s, "
        f"loopback round trip {figures['loopback_round_trip_us']:.1f} us"
    )


if __name__ == "__main__":
    if sys.argv[1:] == ["--echo"]:
        echo()
    else:
        print(json.dumps(measure()))
