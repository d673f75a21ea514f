/* runtime/log.c: diagnostics written to stderr, and coil_strerror. */
#include "runtime/internal.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

void coil__log(const char *fmt, ...) {
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    /* One write per line, so lines from several threads do not interleave. */
    fprintf(stderr, "coil: %s\n", line);
}

void coil__panic(const char *file, int line, const char *msg) {
    fprintf(stderr, "coil: fatal: %s (%s:%d)\n", msg, file, line);
    abort();
}

void coil__report_lost_failure(coil_task *t) {
    int err = t->result.err;
    if (!err || err == -ECANCELED || t->failure_reported) return;
    t->failure_reported = true;
    coil__log("detached task '%s' spawned at %s:%d failed: %s (%s)", coil_task_name(t),
              t->spawn_file ? t->spawn_file : "?", t->spawn_line, coil_strerror(err),
              coil_err_name(err));
}

#define COIL__ERR_NAME(code, msg) case code: return #code;
#define COIL__ERR_MSG(code, msg)  case code: return msg;

const char *coil_err_name(int err) {
    switch (err < 0 ? -err : err) {
        COIL_ERRNO_MAP(COIL__ERR_NAME)
    default: return "E?";
    }
}

const char *coil_strerror(int err) {
    if (err == 0) return "success";
    switch (err < 0 ? -err : err) {
        COIL_ERRNO_MAP(COIL__ERR_MSG)
    default: return strerror(err < 0 ? -err : err);
    }
}
