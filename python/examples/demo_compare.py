#!/usr/bin/env python3
"""Three losses on a non-Gaussian input, and the landscape behind them.

Samples a non-Gaussian input, plants a ReLU network, and recovers it over
several seeds with
  - the landscape-designed loss from scores estimated from the samples
    (llsfe), the point of scoreloss;
  - the same loss built from the Gaussian's scores (hermite: g = -x,
    H = -I), the design that assumes Gaussian inputs;
  - the plain squared loss over (W, a) from random starts;
  - and, as the reference, the designed loss from the exact scores.
It prints one row per method: the recovery error in its max form (zero only
when every true direction is found; mean and worst over the seeds), the
true directions found, the worst matched angle, the held-out prediction
error and the seconds per run.

Then, with matplotlib installed, it draws the landscape loss over the angles
of the two whitened columns (k = 2) for estimated and Gaussian scores side
by side, the true directions marked, into demo_landscape.png. Each panel is
in its own whitened coordinates (the whitening comes from M2 of its
scores), so the truth sits at different angles in the two.

    SCORELOSS_LIB=build/libscoreloss.so PYTHONPATH=python \\
        /usr/bin/python3 python/examples/demo_compare.py [--dist student] [--n 5000]
"""

import argparse
import sys
import time

import numpy as np

import scoreloss as sl

METHODS = [
    ("designed, estimated scores (llsfe)", dict(loss="landscape", score="llsfe")),
    ("designed, Gaussian scores (hermite)", dict(loss="landscape", score="hermite")),
    ("squared loss (l2)", dict(loss="l2")),
    ("designed, exact scores (reference)", dict(loss="landscape", score="exact")),
]


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dist", default="student", help="input distribution (default student)")
    p.add_argument("--d", type=int, default=4, help="input dimension (default 4)")
    p.add_argument("--k", type=int, default=2, help="hidden units (default 2)")
    p.add_argument("--n", type=int, default=5000, help="samples (default 5000)")
    p.add_argument("--bandwidth", default="auto", help="llsfe bandwidth (default auto)")
    p.add_argument("--seeds", type=int, default=3, help="runs per method (default 3)")
    p.add_argument("--noise", type=float, default=0.05, help="label noise (default 0.05)")
    p.add_argument("--grid", type=int, default=81, help="landscape grid (default 81)")
    p.add_argument("--png", default="demo_landscape.png", help="the picture's file name")
    args = p.parse_args()

    dist = sl.Distribution(args.dist, args.d)
    print("input %s, d = %d, k = %d ReLU units, n = %d, noise %g, seeds 1..%d"
          % (dist.name, args.d, args.k, args.n, args.noise, args.seeds))
    rows = []
    data = []
    for seed in range(1, args.seeds + 1):
        X = sl.sample(dist, args.n, seed=seed)
        y, W, a = sl.plant(X, args.k, a="positive", noise=args.noise, seed=seed)
        data.append((X, y, W, a))
    for label, kw in METHODS:
        if kw.get("score") == "exact" and not dist.has_exact_scores:
            continue
        errs, found, angles, pred, secs = [], [], [], [], []
        for seed, (X, y, W, a) in enumerate(data, start=1):
            extra = dict(dist=dist) if kw.get("score") == "exact" else {}
            if kw.get("score") == "llsfe":
                extra["bandwidth"] = args.bandwidth
            t0 = time.perf_counter()
            r = sl.recover(X, y, args.k, truth=(W, a), seed=seed, **kw, **extra)
            secs.append(time.perf_counter() - t0)
            errs.append(r.err_max)
            found.append(r.distinct)
            angles.append(r.worst_angle)
            pred.append(r.holdout_error)
        rows.append((label, np.mean(errs), np.max(errs), np.mean(found), np.max(angles),
                     np.mean(pred), np.mean(secs)))
    head = ("method", "err_max", "worst", "found", "max angle", "held-out", "seconds")
    w0 = max(len(r[0]) for r in rows)
    print()
    print("%-*s  %8s %8s %6s %10s %9s %8s" % ((w0,) + head))
    for r in rows:
        print("%-*s  %8.4f %8.4f %6.2f %9.1f° %9.4f %8.2f"
              % (w0, r[0], r[1], r[2], r[3], r[4], r[5], r[6]))
    print("\nerr_max: mean (and worst) over seeds of max(1 - min_i max_j |cos|, 1 - min_j max_i "
          "|cos|);\nfound: true directions some estimate matches best, of %d; held-out: relative"
          " MSE." % args.k)

    if args.k != 2:
        print("\nlandscape picture: skipped (the angle square needs k = 2)")
        return 0
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("\nlandscape picture: skipped, matplotlib is not installed "
              "(apt-get install python3-matplotlib)")
        return 0
    if not hasattr(sl, "landscape"):
        print("\nlandscape picture: skipped, the library has no landscape planes")
        return 0
    X, y, W, a = data[0]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.6), constrained_layout=True)
    for ax, (title, score) in zip(axes, [("estimated scores (llsfe)", "llsfe"),
                                         ("Gaussian scores (hermite)", "hermite")]):
        bw = dict(bandwidth=args.bandwidth) if score == "llsfe" else {}
        L = sl.landscape(X, y, 2, score=score, truth=(W, a), plane="angles", grid=args.grid, **bw)
        cs = ax.contourf(L.u, L.v, L.loss, levels=30, cmap="viridis")
        fig.colorbar(cs, ax=ax)
        j, i = np.unravel_index(np.argmin(L.loss), L.loss.shape)
        ax.plot([m[1] for m in L.marks], [m[2] for m in L.marks], "r*", ms=12, label="truth")
        ax.plot(L.u[i], L.v[j], "wo", mfc="none", ms=10, label="lowest grid point")
        ax.set_title("landscape loss, %s" % title)
        ax.set_xlabel("angle of b_1 (rad)")
        ax.set_ylabel("angle of b_2 (rad)")
        ax.legend(loc="upper right", fontsize=8)
    fig.suptitle("%s input, d = %d: the designed loss over the whitened angles" % (dist.name,
                                                                                   args.d))
    fig.savefig(args.png, dpi=110)
    print("\nlandscape picture: %s" % args.png)
    return 0


if __name__ == "__main__":
    sys.exit(main())
