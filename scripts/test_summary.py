#!/usr/bin/env python3
"""Prints one closing line for the whole suite from meson's test log:
each check suite's own counts ("Checks: N, Failures: F, Errors: E") summed,
plus one per test that reports no counts of its own."""
import json
import re
import sys

passed = failed = 0
with open(sys.argv[1]) as f:
    for line in f:
        t = json.loads(line)
        out = t.get("stdout", "") or ""
        m = re.search(r"Checks: (\d+), Failures: (\d+), Errors: (\d+)", out)
        c = re.search(r"^\w+: (\d+) passed, (\d+) failed$", out, re.M)
        if m:
            n, fl, er = map(int, m.groups())
            passed += n - fl - er
            failed += fl + er
        elif c:
            passed += int(c.group(1))
            failed += int(c.group(2))
        elif t.get("result") == "OK":
            passed += 1
        else:
            failed += 1
        if t.get("result") not in ("OK", "SKIP") and not (m and (m.group(2) != "0" or m.group(3) != "0")):
            # a crash or timeout after the counts were printed still fails
            if m or c:
                failed += 1
print(f"tests: {passed} passed, {failed} failed")
