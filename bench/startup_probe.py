#!/usr/bin/env python3
"""One start of a server, timed (bench/startup.sh runs it; not meant to be run by hand).

  startup_probe.py --log FILE --ready REGEX --endpoint URL [--deadline-s S] -- COMMAND ARGS...

Starts COMMAND (its output appended to FILE; it keeps running after this script exits), then
reports, from just before the exec:
  ready_s      wall seconds until a line of FILE matches REGEX (the server's own "ready" line)
  served_s     wall seconds until etcdctl's first successful read through URL returned
  *_cpu_s      the server's user+system CPU seconds at those moments (/proc/PID/stat)
as one JSON object on stdout, with the pid. The read is etcdctl's default (linearizable) get; a
try starts once the client port accepts TCP connections (cheap to poll, so the probe takes little
CPU from the server it measures), and each try has a 1 s command timeout. Exit code 1 when the
deadline passes or the server exits first (the JSON then says which).
"""
import argparse
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from urllib.parse import urlparse

TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        # utime and stime are fields 14 and 15 of the whole line: 12th and 13th after the name.
        return (int(fields[11]) + int(fields[12])) / TICKS_PER_SECOND
    except (OSError, IndexError, ValueError):
        return None


def port_accepts(host, port):
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--log", required=True)
    parser.add_argument("--ready", required=True)
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--deadline-s", type=float, default=60)
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    ready_pattern = re.compile(args.ready)
    url = urlparse(args.endpoint)
    env = dict(os.environ, ETCDCTL_API="3")

    log = open(args.log, "ab")
    offset = log.tell()
    started = time.monotonic()
    server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    result = {"pid": server.pid, "ready_s": None, "ready_cpu_s": None, "served_s": None, "served_cpu_s": None, "tries": 0, "error": None}
    deadline = started + args.deadline_s
    done = threading.Event()

    def watch_log():
        # Its own thread: the main loop waits up to a second inside an etcdctl call.
        pending = b""
        with open(args.log, "rb") as reader:
            reader.seek(offset)
            while not done.is_set():
                pending += reader.read()
                lines = pending.split(b"\n")
                pending = lines.pop()
                if any(ready_pattern.search(line.decode("utf-8", "replace")) for line in lines):
                    result["ready_cpu_s"] = cpu_seconds(server.pid)
                    result["ready_s"] = time.monotonic() - started
                    return
                time.sleep(0.005)

    watcher = threading.Thread(target=watch_log, daemon=True)
    watcher.start()
    while True:
        if time.monotonic() >= deadline:
            result["error"] = f"not {'ready' if result['ready_s'] is None else 'serving'} within {args.deadline_s} s"
            break
        if server.poll() is not None:
            result["error"] = f"exited with code {server.returncode}"
            break
        if result["served_s"] is None and port_accepts(url.hostname, url.port):
            result["tries"] += 1
            answered = subprocess.run(
                ["etcdctl", "--endpoints", args.endpoint, "--dial-timeout=1s", "--command-timeout=1s", "get", "startup-probe"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env).returncode == 0
            if answered:
                result["served_s"] = time.monotonic() - started
                result["served_cpu_s"] = cpu_seconds(server.pid)
        if result["served_s"] is not None and not watcher.is_alive():
            break
        time.sleep(0.01)
    done.set()
    json.dump(result, sys.stdout)
    print()
    return 0 if result["error"] is None else 1


if __name__ == "__main__":
    sys.exit(main())
