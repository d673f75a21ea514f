#!/bin/sh
# tests/source/install_build.sh SRC BUILD [CFLAGS...]: installs BUILD into a
# temporary prefix and builds, against it and as the README says
# (cc -std=c11 prog.c $(pkg-config --cflags --libs coil)), every
# examples/*.c and every program in the docs: a ```c block of README.md or
# docs/*.md with an int main( and no "..." elision. A block without
# #include lines gets <coil/coil.h> and the C headers it is shown with.
# An implicit declaration fails the build. CFLAGS are added (a sanitized
# build's library needs its sanitizer in the program too). Prints each
# failure's compiler output and exits 1.
set -eu
src=${1:?usage: install_build.sh SRC BUILD [CFLAGS...]}
build=${2:?usage: install_build.sh SRC BUILD [CFLAGS...]}
shift 2
tmp=$(mktemp -d "${TMPDIR:-/tmp}/coil-install-XXXXXX")
trap 'rm -rf "$tmp"' EXIT
cmake --install "$build" --prefix "$tmp/prefix" >/dev/null
export PKG_CONFIG_PATH="$(dirname "$(find "$tmp/prefix" -name coil.pc | head -1)")"
cflags=$(pkg-config --cflags coil)
libs=$(pkg-config --libs coil)
mkdir -p "$tmp/blocks"
python3 - "$src" "$tmp/blocks" <<'PY'
import re, sys, glob, os
src, out = sys.argv[1], sys.argv[2]
files = [os.path.join(src, 'README.md')] + sorted(glob.glob(os.path.join(src, 'docs', '*.md')))
for f in files:
    text = open(f).read()
    for i, m in enumerate(re.finditer(r'```c\n(.*?)```', text, re.S)):
        block = m.group(1)
        if 'int main(' not in block or re.search(r'^\s*\.\.\.', block, re.M) or '    ...' in block:
            continue
        name = '%s_%d.c' % (os.path.basename(f)[:-3], i)
        if '#include' not in block:
            block = ('#include <coil/coil.h>\n#include <errno.h>\n#include <stdio.h>\n'
                     '#include <stdlib.h>\n#include <string.h>\n\n' + block)
        open(os.path.join(out, name), 'w').write(block)
PY
failed=0 built=0
for prog in "$src"/examples/*.c "$tmp"/blocks/*.c; do
    [ -e "$prog" ] || continue
    # An example's other libraries: " * pkg-config: MODULE..." in its comment.
    extra=$(sed -n 's/^ \* pkg-config: //p' "$prog" | head -1)
    extra_flags=""
    [ -n "$extra" ] && extra_flags=$(pkg-config --cflags --libs $extra)
    # shellcheck disable=SC2086
    if cc -std=c11 -Werror=implicit-function-declaration -Werror=incompatible-pointer-types \
            "$@" "$prog" $cflags $libs $extra_flags -o "$tmp/a.out" 2>"$tmp/err"; then
        built=$((built + 1))
    else
        echo "install_build: $(basename "$prog") does not build against the installed coil:"
        cat "$tmp/err"
        failed=$((failed + 1))
    fi
done
echo "install_build: $built programs built, $failed failed"
[ "$failed" -eq 0 ]
