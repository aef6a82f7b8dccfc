#!/bin/sh
# The C accelerator's tests under AddressSanitizer and UndefinedBehaviorSanitizer.
#
# Builds _speedups.c with -fsanitize=address,undefined into a copy of the
# committed tree (the installed build is untouched) and runs pytest there with
# the sanitizer runtimes preloaded. Any report fails the run (UBSan halts on
# error; ASan always does). Leak detection is off: CPython itself "leaks" at exit.
#
#   scripts/sanitize.sh [pytest arguments]   (default: the accelerator's own tests)
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-$here/.venv/bin/python}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
git -C "$here" archive HEAD | tar -x -C "$work"
include=$("$python" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
suffix=$("$python" -c 'import sysconfig; print(sysconfig.get_config_var("EXT_SUFFIX"))')
cc=${CC:-gcc}
"$cc" -shared -fPIC -g -O1 -fno-omit-frame-pointer -fsanitize=address,undefined \
    -I"$include" "$work/tlstiming/_recording/_speedups.c" \
    -o "$work/tlstiming/_recording/_speedups$suffix"
cd "$work"
if [ "$#" -eq 0 ]; then
    set -- tests/test_native.py tests/test_speedups.py tests/test_data_path.py
fi
LD_PRELOAD="$("$cc" -print-file-name=libasan.so) $("$cc" -print-file-name=libubsan.so)" \
ASAN_OPTIONS=detect_leaks=0 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
PYTHONPATH="$work" "$python" -m pytest -q -p no:cacheprovider "$@"
