/* runtime/diag.c: task dumps.
 *
 * coil_dump_tasks() walks the loop's list of tasks on the loop's own
 * thread, so it reads them without locks; the SIGUSR1 dump (watchdog.c)
 * gets here through coil_call_soon_threadsafe() for the same reason.
 *
 * Busy time. loop.c times a task's resumes one by one while they are not
 * cheap, which gives t->busy_ns exactly (to the clock's ~20 ns). Runs of
 * cheap resumes (under 2 us each) are timed 64 at a time instead; each task
 * counts its share in t->fast_resumes and is charged the loop's average for
 * such resumes (fast_ns / fast_resumes). So the figure is exact for tasks
 * that do real work per resume and within a few microseconds per resume for
 * tasks that mostly yield. The running task's current slice is not in it.
 */
#include "runtime/diag.h"

const char *coil__task_state_name(uint8_t state) {
    switch (state) {
    case COIL__READY: return "ready";
    case COIL__RUNNING: return "running";
    case COIL__PARKED: return "parked";
    default: return "done";
    }
}

coil_time coil__task_busy(const coil_task *t) {
    const coil_loop *loop = t->loop;
    coil_time busy = t->busy_ns;
    if (t->fast_resumes && loop->fast_resumes)
        busy += (coil_time)((double)loop->fast_ns * ((double)t->fast_resumes /
                                                     (double)loop->fast_resumes));
    return busy;
}

static void dump_task(FILE *out, const coil_task *t, coil_time now) {
    fprintf(out, "  #%-4llu %-20s %-7s spawned at %s:%d", (unsigned long long)t->id,
            coil_task_name(t), coil__task_state_name(t->state), t->spawn_file ? t->spawn_file : "?",
            t->spawn_line);
    if (t->state == COIL__PARKED)
        fprintf(out, "  parked at %s:%d", t->park_file ? t->park_file : "?", t->park_line);
    else if (t->state == COIL__READY && t->park_file)
        fprintf(out, "  resumes at %s:%d", t->park_file, t->park_line);
    fprintf(out, "  age %.1f ms  busy %.3f ms\n", (double)(now - t->created) / 1e6,
            (double)coil__task_busy(t) / 1e6);
}

void coil_dump_tasks(FILE *out) {
    coil_loop *loop = coil__tls_loop;
    if (!loop) return;
    coil_time now = coil_now();
    if (loop->diag)
        fprintf(out, "coil: loop %llu: %zu tasks alive, %llu spawned\n",
                (unsigned long long)loop->diag->id, loop->ntasks,
                (unsigned long long)loop->spawned);
    else
        fprintf(out, "coil: %zu tasks alive, %llu spawned\n", loop->ntasks,
                (unsigned long long)loop->spawned);
    coil__list *it;
    coil__list_foreach(it, &loop->tasks) dump_task(out, COIL_CONTAINER_OF(it, coil_task, all_link), now);
    fflush(out);
}
