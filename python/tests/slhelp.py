"""Helpers for the tests: the command line, its CSV files, a temporary
directory per test class."""

import os
import shutil
import subprocess
import tempfile
import unittest

import numpy as np

CLI = os.environ.get("SCORELOSS_CLI")
PLUGIN = os.environ.get("SCORELOSS_PLUGIN") or None


def read_csv(path):
    """(names, data) of a scoreloss CSV file: '#' comments, a header row,
    rows of numbers."""
    with open(path) as f:
        lines = [ln for ln in f.read().splitlines() if ln and not ln.startswith("#")]
    names = lines[0].split(",")
    data = np.array([[float(v) for v in ln.split(",")] for ln in lines[1:]], dtype=np.float64)
    return names, data.reshape(len(lines) - 1, len(names))


def write_csv(path, names, data):
    """Columns as scoreloss reads them, with 17 significant digits (exact)."""
    with open(path, "w") as f:
        f.write(",".join(names) + "\n")
        for row in np.atleast_2d(data):
            f.write(",".join("%.17g" % v for v in row) + "\n")


def write_x(path, X):
    write_csv(path, ["x%d" % (j + 1) for j in range(X.shape[1])], X)


class CliCase(unittest.TestCase):
    """A test class with a temporary directory and the scoreloss command."""

    @classmethod
    def setUpClass(cls):
        if not CLI:
            raise unittest.SkipTest("SCORELOSS_CLI (the scoreloss command) is not set")
        cls.tmp = tempfile.mkdtemp(prefix="sl_py_")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def path(self, name):
        return os.path.join(self.tmp, name)

    def cli(self, *args, ok=True):
        """Runs scoreloss with args; returns (exit status, stdout, stderr)."""
        p = subprocess.run([CLI] + [str(a) for a in args], capture_output=True, text=True,
                           cwd=self.tmp)
        if ok and p.returncode != 0:
            self.fail("scoreloss %s failed (%d): %s" % (" ".join(map(str, args)), p.returncode,
                                                       p.stderr.strip()))
        return p.returncode, p.stdout, p.stderr
