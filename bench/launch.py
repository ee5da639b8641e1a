"""Run one command and report its own CPU time and peak memory: `python3.13 -S -I launch.py <json>`.

The bench's parent is big (moto, the dev stack); a process it spawns starts with the parent's memory
high-water mark (Linux keeps ru_maxrss across exec). This small launcher spawns the measured process
instead, so that wait4's ru_maxrss and CPU times are the measured process's own.
Input: {"argv": [...], "env": {...}, "stdout": path}. Output: one JSON line.
"""

import json
import os
import sys
import time

spec = json.loads(sys.argv[1])
out = os.open(spec["stdout"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
began = time.perf_counter()
pid = os.posix_spawn(
    spec["argv"][0],
    spec["argv"],
    spec["env"],
    file_actions=[(os.POSIX_SPAWN_DUP2, out, 1), (os.POSIX_SPAWN_DUP2, out, 2)],
)
_, status, usage = os.wait4(pid, 0)
wall = time.perf_counter() - began
print(
    json.dumps(
        {
            "exit": os.waitstatus_to_exitcode(status),
            "cpu": usage.ru_utime + usage.ru_stime,
            "wall": wall,
            "maxrss_kb": usage.ru_maxrss,
        }
    )
)
