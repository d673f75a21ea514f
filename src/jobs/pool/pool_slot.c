/* jobs/pool/pool_slot.c: one worker slot and the task that supervises it.
 *
 * A slot's task runs this cycle until the pool stops:
 *
 *     start:  socketpair, spawn of the executable with the worker marker
 *             (its end of the pair as fd 3) on a pool thread, watch its
 *             pidfd, wait for HELLO
 *     serve:  read frames; PROGRESS goes to the job's callback, RESULT
 *             ends the job and frees the slot for the next one
 *     reap:   the stream ended (the worker died or was told to exit) or
 *             broke the protocol: wait for the exit status, close the
 *             stream, end the job the worker was running with the death's
 *             details, close the pidfd and its watcher
 *     backoff if the worker died before doing anything, then start again
 *
 * Spawning. posix_spawn() returns only once the child has exec'd, which
 * takes a millisecond or more: it runs on a thread of the thread pool
 * (coil_to_thread), so the loop never waits for it (inline, if that pool's
 * queue is full). pool_proc.c has the details.
 *
 * Seeing a death. The pidfd, watched with a uv_poll, turns readable when
 * the worker exits; exit_ready() reaps it, records the status and shuts
 * down the read side of the supervisor's socket. Reading then returns what
 * the worker wrote before it died, then the end of the stream, even if a
 * process the worker forked still holds its end of the socket. A RESULT
 * read before the end therefore still counts: a worker that dies after
 * answering fails no job.
 *
 * OOM. The kernel's OOM killer sends SIGKILL, like anyone else could. A
 * SIGKILL the pool did not send is called an OOM kill if the oom_kill
 * count in the supervisor's cgroup (memory.events, cgroup v2) rose since it
 * was last read. Workers live in the supervisor's cgroup unless moved.
 */
#include "jobs/pool/pool.h"
#include "jobs/pool/worker.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

enum {
    BACKOFF_FIRST_MS = 10,   /* delay after the first quick failure */
    BACKOFF_MAX_MS = 2000,   /* ... doubling up to this */
    QUICK_DEATH_MS = 1000,   /* a death this soon after spawn, with no job
                                done, is a quick failure */
};

/* ------------------------------------------------------------------ process */

/* A task parked until its slot's worker has exited (or exit_poll closed). */
typedef struct reap_wait {
    coil__wait wait;
    pool_slot *slot;
} reap_wait;

static void wake_reaper(pool_slot *s) {
    coil_task *t = s->reaper;
    if (!t) return;
    s->reaper = NULL;
    coil__wake(t, 0);
}

static bool reap_interrupt(coil__wait *w, int err) {
    (void)err;
    COIL_CONTAINER_OF(w, reap_wait, wait)->slot->reaper = NULL;
    return true;
}

/* Records the worker's end (see the file comment). */
static void exited(pool_slot *s, int64_t exit_status, int term_signal) {
    s->exited = true;
    s->exit_status = exit_status;
    s->term_signal = term_signal;
    coil__timer_stop(s->pool->loop, &s->escalate);
    if (s->fd >= 0) shutdown(s->fd, SHUT_RD);
    wake_reaper(s);
}

static void exit_ready(uv_poll_t *h, int status, int events) {
    (void)status, (void)events;
    pool_slot *s = h->data;
    int64_t code = 0;
    int sig = 0;
    int r = coil__proc_reap(s->pidfd, false, &code, &sig);
    if (r == 0) return; /* not yet */
    if (r < 0) code = -1; /* reaped behind our back (SIGCHLD ignored?) */
    uv_poll_stop(h);
    exited(s, code, sig);
}

static void poll_close_cb(uv_handle_t *h) {
    pool_slot *s = h->data;
    s->poll_open = false;
    wake_reaper(s);
}

/* Waits until done(s) or `deadline`, shielded from cancellation. Returns 0
 * or -ETIMEDOUT. Suspends. */
static int wait_for(pool_slot *s, bool (*done)(const pool_slot *s), coil_time deadline) {
    coil_scope shield;
    coil_scope_enter_shielded(&shield, deadline);
    int err = 0;
    while (!done(s) && !err) {
        reap_wait w = {{reap_interrupt}, s};
        s->reaper = coil__running();
        err = coil__park(&w.wait);
    }
    s->reaper = NULL;
    coil_scope_exit(&shield);
    return err;
}

static bool has_exited(const pool_slot *s) { return s->exited; }
static bool poll_closed(const pool_slot *s) { return !s->poll_open; }

void coil__slot_kill(pool_slot *s, int sig) {
    if (s->exited || s->pidfd < 0) return;
    coil__proc_signal(s->pidfd, sig);
    s->killed_with = sig;
}

/* One spawn, run on a pool thread. */
typedef struct spawn_call {
    const coil_pool *pool;
    int child_fd;  /* the worker's end of the socketpair */
    int pid;       /* out */
    int pidfd;     /* out */
    int err;       /* out: 0 or what failed */
    bool ran;      /* out: the spawn was attempted */
} spawn_call;

static void *spawn_on_thread(void *arg) {
    spawn_call *c = arg;
    c->err = coil__proc_spawn(c->pool, c->child_fd, &c->pid, &c->pidfd);
    c->ran = true;
    return NULL;
}

/* Watches the pidfd. If that fails, kills and reaps the worker at once
 * (waiting for a process that is dying anyway). */
static void watch_exit(pool_slot *s) {
    uv_loop_t *uv = &s->pool->loop->uv;
    if (uv_poll_init(uv, &s->exit_poll, s->pidfd) == 0) {
        s->exit_poll.data = s;
        s->poll_open = true;
        if (uv_poll_start(&s->exit_poll, UV_READABLE, exit_ready) == 0) return;
    }
    coil__slot_kill(s, SIGKILL);
    int64_t code = -1;
    int sig = 0;
    coil__proc_reap(s->pidfd, true, &code, &sig);
    exited(s, code, sig);
}

/* Starts the worker. Returns 0 with the stream open and the slot STARTING;
 * or an error, with the slot's pidfd telling whether a process exists (it
 * does when the task was interrupted while the spawn ran). Suspends. */
static int spawn(pool_slot *s) {
    coil_pool *p = s->pool;
    s->exited = false;
    s->pid = 0;
    s->spawned_at = coil_now();
    s->killed_with = s->fault = s->stage = 0;
    s->shut = false;
    s->jobs_done = 0;
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) return -errno;
    spawn_call c = {.pool = p, .child_fd = sv[1], .pidfd = -1};
    int err = coil_to_thread(spawn_on_thread, &c, NULL);
    if (err == -EAGAIN) err = (spawn_on_thread(&c), 0); /* its queue is full */
    close(sv[1]);
    if (!c.ran || c.err) {
        close(sv[0]);
        return c.ran ? c.err : err;
    }
    s->pid = c.pid;
    s->pidfd = c.pidfd;
    p->stats.spawned++;
    watch_exit(s);
    int oerr = coil_stream_open(sv[0], &s->stream);
    if (oerr) {
        close(sv[0]);
        coil__slot_kill(s, SIGKILL);
        return oerr;
    }
    s->fd = sv[0];
    s->state = SLOT_STARTING;
    return err; /* an interruption while the spawn ran: reaped by the caller */
}

/* ------------------------------------------------------------------ frames in */

/* Reads one frame (frame_stream.c): 1, 0 at a clean end of the stream,
 * -EPROTO for a bad or truncated frame, or a read error or the
 * interruption. Suspends. */
static int read_frame(pool_slot *s, coil__frame_hdr *hdr, uint8_t **payload) {
    int r = coil__frame_read_stream(s->stream, hdr, payload);
    return r == -ENODATA ? -EPROTO : r;
}

/* Handles one frame from a ready worker; takes `payload`. Returns 0 or
 * -EPROTO. Does not suspend. */
static int handle_frame(pool_slot *s, const coil__frame_hdr *hdr, uint8_t *payload) {
    if (hdr->type == COIL__FRAME_PROGRESS) {
        int percent;
        const char *msg;
        size_t msg_len;
        int err = coil__frame_progress_decode(payload, hdr->length, &percent, &msg, &msg_len);
        if (!err) coil__job_progress(s, hdr->id, percent, msg); /* NUL-terminated */
        free(payload);
        return err ? -EPROTO : 0;
    }
    coil__frame_result res;
    pool_job *job = hdr->id ? coil__slot_job(s, hdr->id) : NULL;
    if (hdr->type != COIL__FRAME_RESULT || !job || !job->sent ||
        coil__frame_result_decode(payload, hdr->length, &res) != 0) {
        free(payload);
        return -EPROTO;
    }
    coil__job_finish_result(s, job, &res, payload);
    return 0;
}

/* Waits for HELLO. Returns 0 (the slot is IDLE), -ECHILD (the worker
 * died, said something else, or was not ready in time), or the
 * interruption. Suspends. */
static int await_hello(pool_slot *s) {
    coil_scope sc;
    coil_scope_enter(&sc, coil_now() + s->pool->cfg.spawn_timeout);
    coil__frame_hdr hdr;
    uint8_t *payload = NULL;
    int r = read_frame(s, &hdr, &payload);
    int fired = coil_scope_exit(&sc);
    uint32_t pid = 0;
    if (r == 1 && hdr.type == COIL__FRAME_HELLO &&
        coil__frame_hello_decode(payload, hdr.length, &pid) == 0 && (int)pid == s->pid) {
        free(payload);
        s->state = SLOT_IDLE;
        return 0;
    }
    free(payload);
    if (fired) return -ECHILD; /* our own deadline: not ready in time */
    return r < 0 && r != -EPROTO ? r : -ECHILD;
}

/* ------------------------------------------------------------------ reaping */

/* Reads the cgroup's oom_kill count; 0 if unknown. */
static uint64_t read_oom_kills(const char *path) {
    if (!path[0]) return 0;
    FILE *f = fopen(path, "re");
    if (!f) return 0;
    char line[128];
    unsigned long long v = 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "oom_kill %llu", &v) == 1) break;
    fclose(f);
    return v;
}

/* Whether the worker's death looks like the OOM killer's (file comment). */
static bool oom_killed(pool_slot *s) {
    coil_pool *p = s->pool;
    if (s->term_signal != SIGKILL || s->killed_with == SIGKILL) return false;
    uint64_t now = read_oom_kills(p->oom_events);
    bool rose = now > p->oom_kills;
    p->oom_kills = now;
    return rose;
}

/* Makes sure the worker is gone and everything about it released; ends
 * its job. Shielded: runs to the end even in a cancelled task. Suspends. */
static void reap(pool_slot *s) {
    coil_pool *p = s->pool;
    if (!s->exited && s->pidfd >= 0) {
        /* A worker that closed its socket exits at once; give it the grace
         * period, then make sure. */
        bool grace = !s->fault;
        if (!grace || wait_for(s, has_exited, coil_now() + p->cfg.kill_grace))
            coil__slot_kill(s, SIGKILL);
        wait_for(s, has_exited, COIL_NEVER);
    }
    if (s->stream) {
        coil_scope shield;
        coil_scope_enter_shielded(&shield, COIL_NEVER);
        s->fd = -1;
        coil_stream_close_reset(s->stream);
        s->stream = NULL;
        coil_scope_exit(&shield);
    }
    bool oom = s->exited && oom_killed(s);
    bool had_job = s->njobs > 0;
    coil__job_finish_death(s, oom);
    if (s->poll_open) {
        uv_close((uv_handle_t *)&s->exit_poll, poll_close_cb);
        wait_for(s, poll_closed, COIL_NEVER);
    }
    if (s->pidfd >= 0) close(s->pidfd);
    s->pidfd = -1;
    bool quick = !had_job && s->jobs_done == 0 &&
                 coil_now() - s->spawned_at < COIL_MSEC(QUICK_DEATH_MS);
    s->quick_failures = quick ? s->quick_failures + 1 : 0;
    s->state = SLOT_DOWN;
    s->awaiting = false; /* the next worker starts plain */
    s->pid = 0;
    coil_event_set(&p->changed);
}

/* ------------------------------------------------------------------ the task */

const char *coil__slot_state_name(slot_state st) {
    switch (st) {
    case SLOT_DOWN: return "down";
    case SLOT_STARTING: return "starting";
    case SLOT_IDLE: return "idle";
    case SLOT_BUSY: return "busy";
    default: return "retiring";
    }
}

int coil__slot_start(pool_slot *s) {
    coil_pool *p = s->pool;
    int err = spawn(s);
    if (!err) err = await_hello(s);
    s->tried = true;
    s->start_err = err;
    if (err) {
        p->stats.spawn_failures++;
        if (!s->fault) s->fault = err == -ECANCELED ? -ECANCELED : -ECHILD;
        unsigned failures = s->quick_failures;
        reap(s); /* sets p->changed */
        s->quick_failures = failures + 1; /* a failed start is always quick */
        return err;
    }
    coil_event_set(&p->changed);
    coil__pool_dispatch(p);
    return 0;
}

void coil__slot_shut(pool_slot *s) {
    if (s->shut || !s->stream) return;
    s->shut = true;
    coil_stream_shutdown(s->stream);
}

/* Reads frames until the worker is gone. Returns 0 at the end of the
 * stream, or the fault. Suspends. */
static int serve(pool_slot *s) {
    coil_pool *p = s->pool;
    for (;;) {
        if (p->stopping && p->queued == 0 && s->state == SLOT_IDLE) coil__slot_shut(s);
        coil__frame_hdr hdr;
        uint8_t *payload = NULL;
        int r = read_frame(s, &hdr, &payload);
        if (r <= 0) return r;
        r = handle_frame(s, &hdr, payload);
        if (r) return r;
    }
}

static bool should_quit(const coil_pool *p) {
    return coil_check_cancel() != 0 || (p->stopping && p->queued == 0);
}

/* Waits before a respawn after quick failures, shorter if the pool stops
 * with nothing left to do. Suspends. */
static void backoff(pool_slot *s) {
    coil_pool *p = s->pool;
    if (s->quick_failures == 0) return;
    unsigned shift = s->quick_failures - 1 < 8 ? s->quick_failures - 1 : 8;
    coil_time delay = COIL_MSEC(BACKOFF_FIRST_MS) << shift;
    if (delay > COIL_MSEC(BACKOFF_MAX_MS)) delay = COIL_MSEC(BACKOFF_MAX_MS);
    coil_time deadline = coil_now() + delay;
    if (!p->stopping) {
        coil_scope sc;
        coil_scope_enter(&sc, deadline);
        coil_event_wait(&p->stopped);
        coil_scope_exit(&sc);
    }
    if (p->stopping && p->queued) coil_sleep_until(deadline);
}

coil_result coil__slot_main(void *arg) {
    pool_slot *s = arg;
    coil_pool *p = s->pool;
    for (;;) {
        if (s->state != SLOT_DOWN) { /* started (and maybe already given a job) */
            int r = serve(s);
            if (r) s->fault = r;
            reap(s);
        }
        if (should_quit(p)) break;
        backoff(s);
        if (should_quit(p)) break;
        coil__slot_start(s);
    }
    return coil_ok(NULL);
}

/* ------------------------------------------------------------------ stopping a job */

void coil__slot_escalate_fire(coil__timer *t) {
    pool_slot *s = COIL_CONTAINER_OF(t, pool_slot, escalate);
    coil__slot_escalate(s);
}

void coil__slot_escalate(pool_slot *s) {
    coil_pool *p = s->pool;
    if (s->exited || !s->njobs) return;
    s->stage++;
    coil_time wait;
    if (s->stage == 1 && p->cfg.cancel_grace >= 0) { /* CANCEL is out: give it time */
        wait = p->cfg.cancel_grace;
    } else if (s->stage <= 2) {
        s->stage = 2;
        coil__slot_kill(s, SIGTERM);
        wait = p->cfg.kill_grace;
    } else {
        coil__slot_kill(s, SIGKILL);
        return;
    }
    if (coil__timer_start(p->loop, &s->escalate, coil_now() + wait)) coil__slot_kill(s, SIGKILL);
}
