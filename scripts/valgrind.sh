#!/bin/sh
# The C accelerator's tests under valgrind (memcheck).
#
# Runs pytest with CPython's own allocator off (PYTHONMALLOC=malloc) so that
# every allocation is seen, and fails on any memcheck error whose stack
# passes through the accelerator (_speedups): an invalid read or write, a
# use of uninitialised memory, a bad free. Errors wholly inside the
# interpreter or OpenSSL (an interpreter's start-up is not memcheck-clean)
# are counted, not judged. Leak checking is off (an interpreter "leaks" at
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
# One memcheck error is a block of "==pid== " lines ended by an empty one.
"$python" - "$log" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
blocks = re.split(r"\n==\d+== \n", text)
errors = [b for b in blocks if re.search(r"==\d+== (Invalid|Conditional|Use of|Mismatched|Source and|Syscall param)", b)]
ours = [b for b in errors if "_speedups" in b]
print(f"valgrind: {len(errors)} memcheck reports, {len(ours)} through the accelerator")
for block in ours:
    print(block)
sys.exit(1 if ours else 0)
PY
exit "$status"
