#!/bin/sh
# The C accelerator's tests under valgrind (memcheck).
#
# Runs pytest with CPython's own allocator off (PYTHONMALLOC=malloc) so that
# every allocation is seen, and fails on any memcheck error whose stack
# is in the accelerator (_speedups) or in OpenSSL called by it: an invalid
# read or write, a use of uninitialised memory, a bad free. Errors in the
# interpreter (its start-up is not memcheck-clean) are counted, not judged. Leak checking is off (an interpreter "leaks" at
# exit by design). Slow (some 30 to 50 times), so the default selection is
# the accelerator's own tests without the concurrency and memory-growth ones.
#
#   scripts/valgrind.sh [pytest arguments]
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-$here/.venv/bin/python}
command -v valgrind >/dev/null || { echo "valgrind is not installed" >&2; exit 2; }
log=$(mktemp)
trap 'rm -f "$log"' EXIT
cd "$here"
if [ "$#" -eq 0 ]; then
    set -- tests/test_native.py tests/test_speedups.py tests/test_ocsp_stapling.py \
        -k "not concurrent and not memory and not leaks and not subprocess"
fi
status=0
PYTHONMALLOC=malloc valgrind --tool=memcheck --leak-check=no --num-callers=40 \
    --log-file="$log" "$python" -m pytest -q -p no:cacheprovider -p no:randomly "$@" \
    || status=$?
# One memcheck error is a block of "==pid== " lines ended by an empty one. It is
# the accelerator's when _speedups is among its innermost frames, before the
# first frame of the interpreter running Python code: an error in the
# accelerator itself, or in OpenSSL called by it. (Python code the accelerator
# calls, such as the end of a handshake, is the interpreter's: CPython 3.11's
# int.from_bytes leaves bytes memcheck calls uninitialised, for one.)
"$python" - "$log" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
blocks = re.split(r"\n==\d+== \n", text)
kinds = r"==\d+== (Invalid|Conditional|Use of|Mismatched|Source and|Syscall param)"
errors = [b for b in blocks if re.search(kinds, b)]
python = re.compile(r"_PyEval_EvalFrame|PyObject_Vectorcall|_PyObject_Call|PyObject_Call")

def ours(block: str) -> bool:
    for line in block.splitlines()[1:]:
        if python.search(line):
            return False
        if "_speedups" in line:
            return True
    return False

mine = [b for b in errors if ours(b)]
print(f"valgrind: {len(errors)} memcheck reports, {len(mine)} in the accelerator")
for block in mine:
    print(block)
sys.exit(1 if mine else 0)
PY
exit "$status"
