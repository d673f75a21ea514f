#!/bin/sh
# tests/source/exports.sh LIBCOIL_SO: the shared library exports coil's
# names (coil_*, and the coil__* that its own headers' macros reach) and
# nothing of the libraries linked into it, such as Boost.Context's
# jump_fcontext and make_fcontext. Prints what else it exports, exits 1.
set -eu
lib=${1:?usage: exports.sh LIBCOIL_SO}
others=$(nm -D --defined-only "$lib" | awk '$2 ~ /^[TDBRVW]$/ {print $3}' |
         grep -vE '^(coil_|coil__|llhttp_|_init$|_fini$|_edata$|_end$|__bss_start$)' || true)
if [ -n "$others" ]; then
    echo "exports.sh: $lib exports names that are not coil's:" >&2
    echo "$others" >&2
    exit 1
fi
echo "exports.sh: $(nm -D --defined-only "$lib" | wc -l) symbols, all coil's"
