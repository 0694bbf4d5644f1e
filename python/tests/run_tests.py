"""Runs the package's unittest suite and closes with one line on stdout,
"python: N passed, N failed", which the project's test summary reads.
Exit status 0 only when nothing failed."""

import os
import sys
import unittest


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    suite = unittest.defaultTestLoader.discover(here)
    result = unittest.TextTestRunner(verbosity=2, stream=sys.stderr).run(suite)
    failed = len(result.failures) + len(result.errors) + len(result.unexpectedSuccesses)
    skipped = len(result.skipped)
    passed = result.testsRun - failed - skipped
    sys.stderr.flush()
    if skipped:
        print("python: %d tests skipped: %s" % (skipped, "; ".join(
            "%s (%s)" % (t.id(), why) for t, why in result.skipped)))
    print("python: %d passed, %d failed" % (passed, failed))
    return 0 if failed == 0 and result.testsRun > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
