/* runtime/diag.c: task dumps. */
#include "runtime/internal.h"

static const char *state_name(uint8_t state) {
    switch (state) {
    case COIL__READY: return "ready";
    case COIL__RUNNING: return "running";
    case COIL__PARKED: return "parked";
    default: return "done";
    }
}

void coil_dump_tasks(FILE *out) {
    coil_loop *loop = coil__tls_loop;
    if (!loop) return;
    coil_time now = coil_now();
    fprintf(out, "coil: %zu tasks alive, %llu spawned\n", loop->ntasks,
            (unsigned long long)loop->spawned);
    coil__list *it;
    coil__list_foreach(it, &loop->tasks) {
        coil_task *t = COIL_CONTAINER_OF(it, coil_task, all_link);
        fprintf(out, "  #%llu %-20s %-7s spawned %s:%d", (unsigned long long)t->id,
                coil_task_name(t), state_name(t->state), t->spawn_file ? t->spawn_file : "?",
                t->spawn_line);
        if (t->state == COIL__PARKED || t->state == COIL__READY)
            fprintf(out, "  at %s:%d", t->park_file ? t->park_file : "?", t->park_line);
        fprintf(out, "  age %.1f ms  busy %.1f ms\n", (double)(now - t->created) / 1e6,
                (double)t->busy_ns / 1e6);
    }
    fflush(out);
}
