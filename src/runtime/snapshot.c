/* runtime/snapshot.c: every loop's tasks as JSON, for `coil ps` and GET
 * /debug/tasks (the contract is coil_tasks_snapshot in runtime.h).
 *
 * A loop's tasks may be read only on its own thread, so the caller posts a
 * callback to each loop (coil_call_soon_threadsafe) and waits for their
 * parts. A loop that does not answer in time (it is stalled, or closing)
 * is named in "unanswered" rather than waited for. The parts' buffer is
 * shared and counted: whoever lets go of it last, the caller or a late
 * loop, frees it, so a late answer never writes into freed memory.
 */
#include "runtime/diag.h"
#include "runtime/json_text.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum { SNAPSHOT_LOOPS_MAX = 256 };

typedef struct snapshot snapshot;

typedef struct part {
    snapshot *snap;
    uint64_t loop_id;
    coil__json_text json;     /* this loop's object, once answered */
    bool answered;
} part;

struct snapshot {
    pthread_mutex_t mu;
    pthread_cond_t answered;
    int refs;                 /* the caller, and each loop not yet answered */
    size_t nparts, nanswered;
    part parts[SNAPSHOT_LOOPS_MAX];
};

static void unref_locked_then_unlock(snapshot *s) {
    bool last = --s->refs == 0;
    pthread_mutex_unlock(&s->mu);
    if (!last) return;
    for (size_t i = 0; i < s->nparts; i++) free(s->parts[i].json.s);
    pthread_cond_destroy(&s->answered);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

static void put_site(coil__json_text *b, const char *file, int line) {
    if (!file) {
        coil__json_lit(b, "null");
        return;
    }
    char site[512];
    int n = snprintf(site, sizeof site, "%s:%d", file, line);
    coil__json_str(b, site, (size_t)n < sizeof site ? (size_t)n : sizeof site - 1);
}

/* One task: {"id", "name", "state", "spawned_at", "parked_at", "age_ms",
 * "busy_ms", "parent"}. */
static void put_task(coil__json_text *b, const coil_task *t, coil_time now) {
    coil__json_lit(b, "{\"id\":");
    coil__json_int(b, (int64_t)t->id);
    coil__json_lit(b, ",\"name\":");
    const char *name = coil_task_name(t);
    coil__json_str(b, name, strlen(name));
    coil__json_lit(b, ",\"state\":");
    const char *state = coil__task_state_name(t->state);
    coil__json_str(b, state, strlen(state));
    coil__json_lit(b, ",\"spawned_at\":");
    put_site(b, t->spawn_file, t->spawn_line);
    coil__json_lit(b, ",\"parked_at\":");
    bool parked = t->state == COIL__PARKED || (t->state == COIL__READY && t->park_file);
    put_site(b, parked ? t->park_file : NULL, t->park_line);
    coil__json_lit(b, ",\"age_ms\":");
    coil__json_real(b, (double)(now - t->created) / 1e6);
    coil__json_lit(b, ",\"busy_ms\":");
    coil__json_real(b, (double)coil__task_busy(t) / 1e6);
    coil__json_lit(b, ",\"parent\":");
    if (t->group && t->group->owner) coil__json_int(b, (int64_t)t->group->owner->id);
    else coil__json_lit(b, "null");
    coil__json_lit(b, "}");
}

/* On the loop's thread. */
static void answer(void *arg) {
    part *p = arg;
    snapshot *s = p->snap;
    coil_loop *loop = coil__tls_loop;
    coil__json_text b = {0};
    coil_time now = coil_now();
    coil__json_lit(&b, "{\"loop\":");
    coil__json_int(&b, (int64_t)p->loop_id);
    coil__json_lit(&b, ",\"tasks_alive\":");
    coil__json_int(&b, (int64_t)loop->ntasks);
    coil__json_lit(&b, ",\"spawned\":");
    coil__json_int(&b, (int64_t)loop->spawned);
    coil__json_lit(&b, ",\"tasks\":[");
    coil__list *it;
    bool first = true;
    coil__list_foreach(it, &loop->tasks) {
        if (!first) coil__json_lit(&b, ",");
        first = false;
        put_task(&b, COIL_CONTAINER_OF(it, coil_task, all_link), now);
    }
    coil__json_lit(&b, "]}");
    pthread_mutex_lock(&s->mu);
    p->json = b;
    p->answered = true;
    s->nanswered++;
    pthread_cond_signal(&s->answered);
    unref_locked_then_unlock(s);
}

/* Under the registry's lock: asks one loop. */
static void ask(coil__diag *d, void *arg) {
    snapshot *s = arg;
    if (s->nparts == SNAPSHOT_LOOPS_MAX) return;
    part *p = &s->parts[s->nparts];
    *p = (part){.snap = s, .loop_id = d->id};
    pthread_mutex_lock(&s->mu);
    s->refs++;
    pthread_mutex_unlock(&s->mu);
    if (coil_call_soon_threadsafe(d->loop, answer, p) != 0) {
        pthread_mutex_lock(&s->mu);
        s->refs--; /* it will never answer: leave it unanswered */
        pthread_mutex_unlock(&s->mu);
    }
    s->nparts++;
}

int coil_tasks_snapshot(char **out, coil_time timeout) {
    if (!out) return -EINVAL;
    *out = NULL;
    if (coil__tls_loop) return -EDEADLK; /* this loop could not answer while it waits */
    snapshot *s = calloc(1, sizeof *s);
    if (!s) return -ENOMEM;
    pthread_mutex_init(&s->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->answered, &ca);
    pthread_condattr_destroy(&ca);
    s->refs = 1;
    coil__watchdog_each(ask, s);
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    coil_time ns = (coil_time)until.tv_nsec + (timeout > 0 ? timeout : 0);
    until.tv_sec += (time_t)(ns / 1000000000);
    until.tv_nsec = (long)(ns % 1000000000);
    pthread_mutex_lock(&s->mu);
    while (s->nanswered < s->nparts &&
           pthread_cond_timedwait(&s->answered, &s->mu, &until) == 0) {
    }
    coil__json_text b = {0};
    coil__json_lit(&b, "{\"pid\":");
    coil__json_int(&b, getpid());
    coil__json_lit(&b, ",\"loops\":[");
    bool first = true;
    for (size_t i = 0; i < s->nparts; i++) {
        if (!s->parts[i].answered) continue;
        if (!first) coil__json_lit(&b, ",");
        first = false;
        coil__json_raw(&b, s->parts[i].json.s, s->parts[i].json.len);
    }
    coil__json_lit(&b, "],\"unanswered\":[");
    first = true;
    for (size_t i = 0; i < s->nparts; i++) {
        if (s->parts[i].answered) continue;
        if (!first) coil__json_lit(&b, ",");
        first = false;
        coil__json_int(&b, (int64_t)s->parts[i].loop_id);
    }
    coil__json_lit(&b, "]}");
    bool failed = b.failed;
    for (size_t i = 0; i < s->nparts; i++) failed |= s->parts[i].answered && s->parts[i].json.failed;
    unref_locked_then_unlock(s);
    if (failed) {
        free(b.s);
        return -ENOMEM;
    }
    *out = b.s;
    return 0;
}
