"""Warm overhead of the built handlers over stub adapters, in a Python 3.13 process (run by bench)."""

import contextlib
import json
import os
import statistics
import time

from bench.stubs import stub_handlers


def main(calls: int) -> None:
    timings = {}
    with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
        handlers = stub_handlers()
    for endpoint, (handler, event) in handlers.items():
        samples = []
        with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):  # EMF metric lines
            for _ in range(calls):
                began = time.perf_counter()
                handler(event, None)
                samples.append((time.perf_counter() - began) * 1000)
        samples.sort()
        timings[endpoint] = (statistics.median(samples), samples[int(len(samples) * 0.99) - 1])
    print(json.dumps(timings))
