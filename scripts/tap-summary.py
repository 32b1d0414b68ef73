#!/usr/bin/env python3
"""Counts TAP results across meson test logs (testlog.json) and plain TAP
files (*.tap: ok/not ok lines and a plan); prints "N passed, N failed".

A test program that failed without reporting a failing TAP line (a crash, a
timeout, a valgrind error at exit) counts as one failure of its own."""
import json
import re
import sys

passed = failed = skipped = 0
for path in sys.argv[1:]:
    try:
        lines = open(path, encoding="utf-8", errors="replace").read().splitlines()
    except OSError:
        print(f"missing log {path}: counted as a failure")
        failed += 1
        continue
    if path.endswith(".tap"):
        p = sum(1 for l in lines if re.match(r"^ok\b", l))
        f = sum(1 for l in lines if re.match(r"^not ok\b", l))
        plan = [int(m.group(1)) for l in lines for m in [re.match(r"^1\.\.(\d+)", l)] if m]
        if plan and p + f < plan[0]:
            print(f"{path}: {p + f} of {plan[0]} planned results: the rest counted as failures")
            f += plan[0] - p - f
        if not plan and p + f == 0:
            print(f"{path}: no results: counted as a failure")
            f = 1
        passed += p
        failed += f
        continue
    for line in lines:
        t = json.loads(line)
        out = t.get("stdout") or t.get("stdo") or ""
        p = f = 0
        for l in out.splitlines():
            if re.match(r"^ok\b", l):
                if re.search(r"#\s*SKIP", l, re.I):
                    skipped += 1
                else:
                    p += 1
            elif re.match(r"^not ok\b", l):
                if re.search(r"#\s*TODO", l, re.I):
                    continue
                f += 1
        bad = t.get("result") not in ("OK", "SKIP", "EXPECTEDFAIL")
        if bad and f == 0:
            f = 1
            print(f"{path}: {t.get('name')}: {t.get('result')} without a failing TAP line")
        passed += p
        failed += f
if passed + failed == 0:
    print("no test results found: counted as a failure")
    failed = 1
if skipped:
    print(f"({skipped} skipped)")
print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
