#!/bin/sh
# The Python package's unittest suite (python/tests), against the built
# library and command line.
#
#   test_python.sh PATH/TO/libscoreloss.so PATH/TO/scoreloss [PATH/TO/plugin_gumbel.so]
#
# Runs the first interpreter that imports numpy among $SCORELOSS_PYTHON,
# /usr/bin/python3 and the python3 on PATH (Debian's python3-numpy is the
# package's only dependency; `make deps` installs it). Without one it prints
# why and exits 77, which meson reports as a skip.
#
# A library built with AddressSanitizer cannot be loaded into an
# uninstrumented interpreter unless the sanitizer runtime is preloaded; it is
# then preloaded, and leak detection is turned off for this process only
# (the interpreter keeps its own objects until exit, which LeakSanitizer
# would report; the C suites check the library's leaks).

LIB=${1:?usage: test_python.sh PATH/TO/libscoreloss.so PATH/TO/scoreloss [plugin.so]}
CLI=${2:?usage: test_python.sh PATH/TO/libscoreloss.so PATH/TO/scoreloss [plugin.so]}
PLUGIN=${3:-}
case $LIB in /*) ;; *) LIB=$(pwd)/$LIB ;; esac
case $CLI in /*) ;; *) CLI=$(pwd)/$CLI ;; esac
if [ -n "$PLUGIN" ]; then
    case $PLUGIN in /*) ;; *) PLUGIN=$(pwd)/$PLUGIN ;; esac
fi
HERE=$(cd "$(dirname "$0")" && pwd)
PYDIR=$HERE/../python

PY=
for cand in "${SCORELOSS_PYTHON:-}" /usr/bin/python3 python3; do
    [ -n "$cand" ] || continue
    if "$cand" -c 'import numpy' >/dev/null 2>&1; then
        PY=$cand
        break
    fi
done
if [ -z "$PY" ]; then
    echo "python: SKIP: no Python 3 interpreter with numpy found (tried \$SCORELOSS_PYTHON," \
        "/usr/bin/python3, python3 on PATH); install python3-numpy (make deps)"
    echo "python: 0 passed, 0 failed"
    exit 77
fi

ASAN=$(ldd "$LIB" 2>/dev/null | awk '/libasan\.so/ { print $3; exit }')
if [ -n "$ASAN" ]; then
    LD_PRELOAD=$ASAN${LD_PRELOAD:+:$LD_PRELOAD}
    ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0
    export LD_PRELOAD ASAN_OPTIONS
fi

SCORELOSS_LIB=$LIB
SCORELOSS_CLI=$CLI
SCORELOSS_PLUGIN=$PLUGIN
PYTHONPATH=$PYDIR${PYTHONPATH:+:$PYTHONPATH}
PYTHONDONTWRITEBYTECODE=1
export SCORELOSS_LIB SCORELOSS_CLI SCORELOSS_PLUGIN PYTHONPATH PYTHONDONTWRITEBYTECODE

echo "python: $("$PY" -c 'import sys, numpy; print(sys.executable, sys.version.split()[0], "numpy", numpy.__version__)')"
exec "$PY" "$PYDIR/tests/run_tests.py"
