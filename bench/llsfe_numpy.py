#!/usr/bin/python3
"""llsfe in vectorised NumPy: the comparison a Python user would write (issue 3).

The local-likelihood score estimator with a fixed Gaussian bandwidth h, at
the samples, each left out of its own estimate (METHOD.md section 3):

    w_ij = exp(-|x_j - x_i|^2 / (2 h^2)),  w_ii = 0
    mu_i = sum_j w_ij (x_j - x_i) / K0_i,  Sig_i = local covariance
    g_i = Sig_i^{-1} mu_i,                 H_i = I / h^2 - Sig_i^{-1}

Distances by the |x|^2 + |q|^2 - 2 q.x expansion (data centred first), the
moments by matrix products, Sig^{-1} by np.linalg.inv, all over blocks of
query rows so that memory stays bounded. It times itself (the estimator,
not the CSV reading), compares with the C output S.csv (columns g_1..g_d,
h_i_j for i <= j, 1-based, row-major upper triangle) and fails unless the
largest relative difference is within --tol (default 1e-8).

The C side is the raw closed form, run as
    scoreloss score --method llsfe --bandwidth H --strategy allpairs --shrink 0 \\
        --input X.csv -o S.csv
With --scoreloss PATH this script runs that command itself, times it
(wall time including its CSV input and output, so the ratio is a lower
bound) and prints the speed ratio; --c-seconds T gives the ratio against
the C estimator's own time instead (bench_llsfe prints it).

Needs NumPy (Debian: apt-get install python3-numpy, for /usr/bin/python3).
Example (n = 16384, d = 10, h = n^(-1/16) = 0.5453):
    /usr/bin/python3 bench/llsfe_numpy.py --input X.csv --bandwidth 0.5453 \\
        --scores S.csv --scoreloss build/scoreloss
"""
import argparse
import subprocess
import sys
import time

try:
    import numpy as np
except ImportError:
    sys.exit("llsfe_numpy.py: NumPy is missing (apt-get install python3-numpy, "
             "then run with /usr/bin/python3)")


def read_csv(path):
    """Header of names after optional '#' comment lines, then numbers."""
    with open(path) as f:
        lines = [ln for ln in f if ln.strip() and not ln.startswith("#")]
    if not lines:
        sys.exit(f"{path}: no header")
    names = [s.strip() for s in lines[0].split(",")]
    data = np.loadtxt(lines[1:], delimiter=",", ndmin=2)
    if data.shape[1] != len(names):
        sys.exit(f"{path}: {data.shape[1]} columns under {len(names)} names")
    return names, data


def columns(names, data, wanted, path):
    missing = [w for w in wanted if w not in names]
    if missing:
        sys.exit(f"{path}: missing column(s) {', '.join(missing)}")
    return data[:, [names.index(w) for w in wanted]]


def samples(path):
    names, data = read_csv(path)
    d = 0
    while f"x{d + 1}" in names:
        d += 1
    if d == 0:
        sys.exit(f"{path}: no columns x1..xd")
    return columns(names, data, [f"x{i + 1}" for i in range(d)], path)


def llsfe(X, h, block=1024):
    """g (n x d) and H (n x d x d) at the samples, leave-one-out."""
    n, d = X.shape
    Xc = X - X.mean(axis=0)  # centred: the distance expansion keeps its digits
    sq = np.einsum("ja,ja->j", Xc, Xc)
    # Features for the second moments: x x' flattened, one row per sample.
    XX = (Xc[:, :, None] * Xc[:, None, :]).reshape(n, d * d)
    G = np.empty((n, d))
    H = np.empty((n, d, d))
    eye = np.eye(d) / (h * h)
    for lo in range(0, n, block):
        hi = min(n, lo + block)
        Q = Xc[lo:hi]
        D2 = sq[lo:hi, None] + sq[None, :] - 2.0 * (Q @ Xc.T)
        np.maximum(D2, 0.0, out=D2)
        W = np.exp(D2 * (-0.5 / (h * h)))
        W[np.arange(hi - lo), np.arange(lo, hi)] = 0.0  # leave the query out
        K0 = W.sum(axis=1)
        mean = (W @ Xc) / K0[:, None]
        mu = mean - Q
        Sig = ((W @ XX) / K0[:, None]).reshape(-1, d, d) - mean[:, :, None] * mean[:, None, :]
        Sinv = np.linalg.inv(Sig)
        G[lo:hi] = np.einsum("iab,ib->ia", Sinv, mu)
        H[lo:hi] = eye - Sinv
    return G, H


def product_floor(X, h, block):
    """Seconds NumPy's OpenBLAS spends on W @ F alone, block by block: W the
    kernel weights of a block of queries (computed outside the timer), F the
    n x (1 + d + d(d+1)/2) features. No all-pairs llsfe can take less than this
    product (bench_llsfe measures the C estimator at 1.1 times it), so the
    NumPy time over it bounds the ratio any implementation can reach."""
    n, d = X.shape
    Xc = X - X.mean(axis=0)
    iu = np.triu_indices(d)
    F = np.hstack([np.ones((n, 1)), Xc, (Xc[:, :, None] * Xc[:, None, :])[:, iu[0], iu[1]]])
    sq = np.einsum("ja,ja->j", Xc, Xc)
    total = 0.0
    for lo in range(0, n, block):
        hi = min(n, lo + block)
        D2 = sq[lo:hi, None] + sq[None, :] - 2.0 * (Xc[lo:hi] @ Xc.T)
        W = np.exp(np.maximum(D2, 0.0) * (-0.5 / (h * h)))
        t0 = time.perf_counter()
        W @ F
        total += time.perf_counter() - t0
    return total


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--input", required=True, help="samples X.csv, columns x1..xd")
    ap.add_argument("--bandwidth", required=True, type=float, help="fixed bandwidth h > 0")
    ap.add_argument("--scores", help="the C output S.csv to compare with")
    ap.add_argument("--scoreloss", help="the scoreloss binary: run it to write --scores, timed")
    ap.add_argument("--c-seconds", type=float,
                    help="the C estimator's time on the same data, for the ratio")
    ap.add_argument("--tol", type=float, default=1e-8, help="largest relative difference allowed")
    ap.add_argument("--block", type=int, default=1024, help="query rows per block")
    args = ap.parse_args()
    if not args.bandwidth > 0:
        sys.exit("--bandwidth must be > 0")
    if args.scoreloss and not args.scores:
        sys.exit("--scoreloss needs --scores (the file it writes)")

    X = samples(args.input)
    n, d = X.shape
    h = args.bandwidth

    t0 = time.perf_counter()
    G, H = llsfe(X, h, args.block)
    t_np = time.perf_counter() - t0
    print(f"numpy llsfe: n = {n}, d = {d}, h = {h:g}: {t_np:.3f} s")
    t_mm = product_floor(X, h, args.block)
    print(f"of which unavoidable: the kernel weights times the {1 + d + d * (d + 1) // 2} "
          f"moment features (1, x, upper triangle of x x'), the product every all-pairs "
          f"llsfe needs, through the same OpenBLAS: {t_mm:.3f} s")
    print(f"ceiling on the speed ratio of any all-pairs implementation over this one: "
          f"{t_np / t_mm:.1f}")

    if args.scoreloss:
        cmd = [args.scoreloss, "score", "--method", "llsfe", "--bandwidth", repr(h),
               "--strategy", "allpairs", "--shrink", "0", "--input", args.input,
               "-o", args.scores]
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True)
        t_c = time.perf_counter() - t0
        print(f"C llsfe ({' '.join(cmd[1:])}): {t_c:.3f} s including CSV input and output")
        print(f"speed ratio numpy / C (C process wall time): {t_np / t_c:.1f}")
    if args.c_seconds:
        print(f"speed ratio numpy / C (C estimator {args.c_seconds:.3f} s): "
              f"{t_np / args.c_seconds:.1f}")

    if args.scores:
        iu = np.triu_indices(d)  # row-major upper triangle, as the C writes it
        names, data = read_csv(args.scores)
        gnames = [f"g_{i + 1}" for i in range(d)]
        hnames = [f"h_{i + 1}_{j + 1}" for i, j in zip(*iu)]
        Gc = columns(names, data, gnames, args.scores)
        Hc = columns(names, data, hnames, args.scores)
        if Gc.shape[0] != n:
            sys.exit(f"{args.scores}: {Gc.shape[0]} rows for {n} samples")
        Hn = H[:, iu[0], iu[1]]
        # Point by point, relative to the size of the C's g and H there.
        rg = np.linalg.norm(G - Gc, axis=1) / np.maximum(np.linalg.norm(Gc, axis=1), 1e-300)
        rh = np.linalg.norm(Hn - Hc, axis=1) / np.maximum(np.linalg.norm(Hc, axis=1), 1e-300)
        worst = max(rg.max(), rh.max())
        print(f"largest relative difference from {args.scores}: g {rg.max():.2e} "
              f"(point {rg.argmax() + 1}), H {rh.max():.2e} (point {rh.argmax() + 1})")
        if not worst <= args.tol:
            sys.exit(f"FAILED: {worst:.2e} > {args.tol:g}")
        print(f"same answers within {args.tol:g}")


if __name__ == "__main__":
    main()
