/* runtime/combinators.c: gather, race and as_completed, built on task groups.
 *
 * Each call runs in a small wrapper task that stores the call's result in
 * calls[i].result and then reports success to the group, so that one call's
 * failure never cancels the others through the group's own rule; each
 * combinator applies its own rule instead (race cancels the rest on the
 * first success).
 */
#include "runtime/internal.h"

#include <stdlib.h>

typedef struct combo combo;
typedef void (*on_result)(combo *c, size_t i);

struct combo {
    coil_group *group;
    coil_call *calls;
    on_result done;         /* what to do when call i finishes */
    bool won;               /* race: someone succeeded */
    size_t winner;          /* race: who */
    int last_err;           /* race: last failure */
    coil_as_completed *ac;  /* as_completed */
};

typedef struct slot {
    combo *c;
    size_t i;
} slot;

static coil_result run_call(void *arg) {
    slot *s = arg;
    coil_call *call = &s->c->calls[s->i];
    call->result = call->fn(call->arg);
    s->c->done(s->c, s->i);
    return coil_ok(NULL);
}

/* Spawns every call into c->group. On failure, cancels what was spawned and
 * returns -ENOMEM; the caller must still wait for the group. */
static int spawn_all(combo *c, slot *slots, size_t n) {
    for (size_t i = 0; i < n; i++) {
        c->calls[i].result = coil_fail(-ECANCELED);
        slots[i].c = c;
        slots[i].i = i;
    }
    for (size_t i = 0; i < n; i++) {
        coil_spawn_opts opts = {.name = c->calls[i].name};
        if (!coil_group_spawn_at(c->group, &opts, run_call, &slots[i], __FILE__, __LINE__)) {
            coil_group_cancel(c->group);
            return -ENOMEM;
        }
    }
    return 0;
}

static int run_all(combo *c, size_t n) {
    slot *slots = malloc((n ? n : 1) * sizeof *slots);
    if (!slots) return -ENOMEM;
    coil_group g;
    coil_group_init(&g);
    c->group = &g;
    int spawn_err = spawn_all(c, slots, n);
    int err = coil_group_wait(&g);
    coil_group_destroy(&g);
    free(slots);
    return spawn_err ? spawn_err : err;
}

static void gather_done(combo *c, size_t i) { (void)c; (void)i; }

int coil_gather(coil_call *calls, size_t n) {
    combo c = {.calls = calls, .done = gather_done};
    int err = run_all(&c, n);
    if (err) return err;
    for (size_t i = 0; i < n; i++)
        if (calls[i].result.err) return calls[i].result.err;
    return 0;
}

static void race_done(combo *c, size_t i) {
    int err = c->calls[i].result.err;
    if (err) {
        c->last_err = err;
        return;
    }
    if (!c->won) {
        c->won = true;
        c->winner = i;
        coil_group_cancel(c->group);
    }
}

int coil_race(coil_call *calls, size_t n, size_t *winner) {
    if (n == 0) return -EINVAL;
    combo c = {.calls = calls, .done = race_done, .last_err = -ECANCELED};
    int err = run_all(&c, n);
    if (c.won) {
        if (winner) *winner = c.winner;
        return 0;
    }
    return err ? err : c.last_err;
}

/* ------------------------------------------------------------------ as_completed */

static void ac_done(combo *c, size_t i) {
    coil_as_completed *ac = c->ac;
    ac->done[ac->finished++] = i;
    coil__wake_one(&ac->waiters, NULL, 0);
}

/* Cancels and awaits what is still running, closes the group and frees the
 * bookkeeping. Suspends. */
static void release(coil_as_completed *ac) {
    coil_group_cancel(&ac->group);
    coil_group_wait(&ac->group);
    coil_group_destroy(&ac->group);
    free(ac->state);
    free(ac->slots);
    free(ac->done);
    ac->slots = NULL;
    ac->state = NULL;
    ac->done = NULL;
}

int coil_as_completed_start(coil_as_completed *ac, coil_call *calls, size_t n) {
    ac->calls = calls;
    ac->n = n;
    ac->returned = ac->finished = 0;
    coil__list_init(&ac->waiters);
    ac->done = malloc((n ? n : 1) * sizeof *ac->done);
    combo *c = calloc(1, sizeof *c);
    slot *slots = malloc((n ? n : 1) * sizeof *slots);
    ac->slots = slots;
    ac->state = c;
    coil_group_init(&ac->group);
    if (!ac->done || !c || !slots) {
        release(ac); /* nothing was spawned: this only closes the group */
        return -ENOMEM;
    }
    c->group = &ac->group;
    c->calls = calls;
    c->done = ac_done;
    c->ac = ac;
    return spawn_all(c, slots, n);
}

int coil_as_completed_next(coil_as_completed *ac, size_t *index) {
    int err = coil_check_cancel(); /* level-triggered, even with results ready */
    if (err) return err;
    if (ac->returned == ac->n) return -EPIPE;
    while (ac->returned == ac->finished) {
        coil__waiter w;
        err = coil__wait_on(&ac->waiters, &w);
        if (err) return err;
    }
    *index = ac->done[ac->returned++];
    return 0;
}

void coil_as_completed_stop(coil_as_completed *ac) {
    if (!ac->slots) return; /* a failed start already released everything */
    release(ac);
}
