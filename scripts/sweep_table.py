#!/usr/bin/env python3
"""The README's table of a recovery sweep: err_max mean +- standard error
over the seeds, the directions each seed found, and the smallest n at which
every seed has err_max < 0.05 with every direction found.

    scripts/sweep_table.py docs/sweep_estimated.csv [--dist gauss,...] [--refit 0,5]
                           [--thin t,gauss] [--skip 'TEXT;TEXT']

One row per (dist, noise, method), and per first layer w when the file
has several; the method is named from loss, score,
route (with exact scores the route used), refit, the S_4 estimator's thin
rule, llsfe's lowest automatic shrink and the swap rounds (the sign-free
loss named first). Standard library only."""
import argparse
import csv
import math
import sys
from collections import defaultdict


def n_text(n):
    e = int(math.floor(math.log10(n) + 1e-9))
    if n % 10 ** e:
        return "%d" % n
    m = n // 10 ** e
    return "10^%d" % e if m == 1 else "%d x 10^%d" % (m, e)


def method_of(row):
    if row["loss"] == "l2":
        return "l2"
    if row["loss"] == "signfree":
        return "sign-free loss, " + method_of(dict(row, loss="landscape"))
    if row["score"] == "llsfe" and row["route"] == "auto":
        refit = row.get("refit", "0")
        thin = row.get("s4_thin", "-")
        floor = row.get("shrink_min", "-")
        swap = row.get("swap", "0")
        return "llsfe projected, " + ("no refit" if refit in ("0", "-") else "refit %s" % refit) \
            + ("" if thin == "-" else ", thin %s" % thin) \
            + ("" if floor == "-" else ", shrink-min %s" % floor) \
            + ("" if swap in ("0", "-") else ", swap %s" % swap)
    if row["score"] == "llsfe":
        return "llsfe " + row["route"]
    if row["score"] == "exact":
        return "exact g and H (quadratic S_4)" if row["route"] == "quadratic" \
            else "exact scores (%s S_4)" % row.get("route_used", row["route"])
    return row["score"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results")
    ap.add_argument("--dist", help="comma-separated inputs to show (default all)")
    ap.add_argument("--refit", help="comma-separated refit counts of the projected route's "
                    "rows to show (default all)")
    ap.add_argument("--thin", help="comma-separated thin rules of the projected route's rows "
                    "to show (default all)")
    ap.add_argument("--skip", help="semicolon-separated texts: methods whose name contains one "
                    "are left out")
    args = ap.parse_args()
    with open(args.results, newline="") as f:
        rows = [r for r in csv.DictReader(ln for ln in f if not ln.startswith("#"))]
    k = {r["k"] for r in rows}
    # With more than one first layer in the file, each w gets its own rows.
    several_w = len({r.get("w", "") for r in rows}) > 1
    cells = defaultdict(list)  # (dist, noise, method) -> n -> [(seed, err, found)]
    order = []
    for r in rows:
        if args.dist and r["dist"] not in args.dist.split(","):
            continue
        if not r["status"].startswith("ok"):
            continue
        if (args.thin and r.get("s4_thin", "-") != "-"
                and r["s4_thin"] not in args.thin.split(",")):
            continue
        if (args.refit and r.get("refit", "-") != "-"
                and r["refit"] not in args.refit.split(",")):
            continue
        dist = "%s, w %s" % (r["dist"], r["w"]) if several_w else r["dist"]
        key = (dist, r["noise"], method_of(r))
        if args.skip and any(t and t in key[2] for t in args.skip.split(";")):
            continue
        if key not in cells:
            order.append(key)
            cells[key] = defaultdict(list)
        cells[key][int(r["n"])].append((int(r["seed"]), float(r["err_max"]), int(r["distinct"])))
    ns = sorted({n for c in cells.values() for n in c})
    out = sys.stdout
    out.write("| dist | noise | method | %s | smallest n with err < 0.05, all found |\n"
              % " | ".join("n = " + n_text(n) for n in ns))
    out.write("|---|---|---|%s---|\n" % ("---|" * len(ns)))
    kk = int(next(iter(k))) if len(k) == 1 else None
    dists = list(dict.fromkeys(key[0] for key in order))

    def rank(method):
        for i, m in enumerate(("llsfe projected, refit", "llsfe projected, no", "llsfe",
                               "exact scores", "exact g", "hermite")):
            if method.startswith(m):
                return i
        return 9

    order.sort(key=lambda key: (dists.index(key[0]), float(key[1]), rank(key[2]), key[2]))
    for key in order:
        c = cells[key]
        parts, smallest = [], None
        for n in ns:
            runs = sorted(c.get(n, []))
            if not runs:
                parts.append("not run")
                continue
            errs = [e for _, e, _ in runs]
            m = sum(errs) / len(errs)
            se = (math.sqrt(sum((e - m) ** 2 for e in errs) / (len(errs) - 1) / len(errs))
                  if len(errs) > 1 else float("nan"))
            found = "/".join(str(fd) for _, _, fd in runs)
            parts.append("%.3g ± %.2g (%d seeds; found %s)" % (m, se, len(runs), found))
            if smallest is None and all(e < 0.05 and (kk is None or fd == kk)
                                        for _, e, fd in runs):
                smallest = n
        run_ns = [n for n in ns if c.get(n)]
        tail = n_text(smallest) if smallest else "none up to " + n_text(max(run_ns))
        out.write("| %s | %s | %s | %s | %s |\n" % (key[0], key[1], key[2], " | ".join(parts),
                                                    tail))


if __name__ == "__main__":
    main()
