#!/bin/sh
# tests/source/checksrc.sh SRC_DIR: the calls coil's C does not make, as
# curl's checksrc refuses them. Each has a bounded or reentrant form:
#
#   sprintf  -> snprintf            strcpy, strcat -> memcpy with a length,
#   strtok   -> strtok_r            atoi -> strtol with its end and errno
#   gets     -> fgets
#
# A match inside a comment counts too: say "snprintf" there. Prints every
# offending line and exits 1 if there is one.
set -eu
src=${1:?usage: checksrc.sh SRC_DIR}
if grep -rnE '(^|[^a-z_])(sprintf|strcpy|strcat|strtok|atoi|gets)[[:space:]]*\(' \
        --include='*.c' --include='*.h' "$src"; then
    echo "checksrc: banned calls above (see tests/source/checksrc.sh)" >&2
    exit 1
fi
echo "checksrc: $(find "$src" -name '*.[ch]' | wc -l) files clean"
