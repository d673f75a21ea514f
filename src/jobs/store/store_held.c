/* jobs/store/store_held.c: the jobs this process's scheduler holds, as the
 * writer knows them: the fence between a cancel and a job on its way to a
 * worker.
 *
 * The scheduler hands a peeked job to a worker before its start is written
 * (so that no worker waits for an fsync). Between the peek and the start
 * the store says `queued`, yet the job may already run. A cancel in that
 * gap must not make the job `cancelled` at once, for then a job reported
 * as never run would run. So the writer remembers which jobs a peek handed
 * out and which of them are not started yet:
 *
 *     peek ----> held ----> start (running: a cancel flags it)
 *                  |
 *                  +------> release (never ran: given back, or cancelled
 *                           if a cancel came meanwhile)
 *
 * A cancel of a held job flags it (cancel_requested, state unchanged) and
 * answers `running`: the scheduler stops it, and its record makes it
 * cancelled. A queued job flagged so exists only while held; one left
 * behind by a process that died is cancelled by requeue_running.
 *
 * The set lives in the writer thread alone, so it needs no lock. It is
 * changed inside transactions, so every change is logged and undone if the
 * transaction rolls back: the set always matches what was committed. It
 * holds at most the scheduler's window (tens to a few thousand seqs), so a
 * flat array with linear search is the right structure.
 */
#include "jobs/store/sqlite.h"

#include <stdlib.h>

/* Grows a buffer of `size`-byte items to room for one more. */
static int grow(void **items, size_t n, size_t *cap, size_t size) {
    if (n < *cap) return SQLITE_OK;
    size_t ncap = *cap ? *cap * 2 : 64;
    void *p = realloc(*items, ncap * size);
    if (!p) return SQLITE_NOMEM;
    *items = p;
    *cap = ncap;
    return SQLITE_OK;
}

static ptrdiff_t find(const coil__store *s, int64_t seq) {
    for (size_t i = 0; i < coil__sq(s)->nheld; i++)
        if (coil__sq(s)->held[i] == seq) return (ptrdiff_t)i;
    return -1;
}

static int log_change(coil__store *s, int64_t seq, bool added) {
    int rc = grow((void **)&coil__sq(s)->held_log, coil__sq(s)->nheld_log, &coil__sq(s)->cap_held_log, sizeof *coil__sq(s)->held_log);
    if (rc != SQLITE_OK) return rc;
    coil__sq(s)->held_log[coil__sq(s)->nheld_log++] = (coil__held_change){.seq = seq, .added = added};
    return SQLITE_OK;
}

/* Adds or removes without logging; the room was made beforehand. */
static void put(coil__store *s, int64_t seq) { coil__sq(s)->held[coil__sq(s)->nheld++] = seq; }
static void take(coil__store *s, size_t i) { coil__sq(s)->held[i] = coil__sq(s)->held[--coil__sq(s)->nheld]; }

bool coil__held_has(const coil__store *s, int64_t seq) { return find(s, seq) >= 0; }

int coil__held_add(coil__store *s, int64_t seq) {
    if (find(s, seq) >= 0) return SQLITE_OK;
    int rc = grow((void **)&coil__sq(s)->held, coil__sq(s)->nheld, &coil__sq(s)->cap_held, sizeof *coil__sq(s)->held);
    if (rc == SQLITE_OK) rc = log_change(s, seq, true);
    if (rc == SQLITE_OK) put(s, seq);
    return rc;
}

int coil__held_remove(coil__store *s, int64_t seq) {
    ptrdiff_t i = find(s, seq);
    if (i < 0) return SQLITE_OK;
    int rc = log_change(s, seq, false);
    if (rc == SQLITE_OK) take(s, (size_t)i);
    return rc;
}

void coil__held_txn_begin(coil__store *s) { coil__sq(s)->nheld_log = 0; }

void coil__held_txn_undo(coil__store *s) {
    /* In reverse: a seq removed was in the set, so there is room for it. */
    while (coil__sq(s)->nheld_log) {
        coil__held_change c = coil__sq(s)->held_log[--coil__sq(s)->nheld_log];
        if (c.added) take(s, (size_t)find(s, c.seq));
        else put(s, c.seq);
    }
}

void coil__held_free(coil__store *s) {
    free(coil__sq(s)->held);
    free(coil__sq(s)->held_log);
    coil__sq(s)->held = NULL;
    coil__sq(s)->held_log = NULL;
    coil__sq(s)->nheld = coil__sq(s)->cap_held = coil__sq(s)->nheld_log = coil__sq(s)->cap_held_log = 0;
}
