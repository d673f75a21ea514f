/* jobs/pool/pool_run.c: running one job, from the submitter's side.
 *
 * coil_pool_run() builds a pool_job on the calling task's stack and either
 * hands it to an idle slot at once or queues it. Then the submitter loops
 * in job_wait(): every time it wakes, it looks at the job and does the
 * next thing that needs a task, until the job is DONE:
 *
 *   RUNNING, RUN not sent         write the RUN frame, arm the timeout
 *   RUNNING, must stop, not sent  give the slot back: the job never ran
 *   RUNNING, must stop            write the CANCEL frame, start the slot's
 *                                 escalation (SIGTERM, SIGKILL)
 *   otherwise                     park until something changes
 *
 * What changes a job, outside the submitter: dispatch (QUEUED to RUNNING),
 * the slot task (a RESULT, or the worker's death: DONE; or requeued when
 * its worker died before the RUN went out), the timeout timer and
 * coil_pool_stop (a stop request), and the submitter's own interruption.
 * Each of them updates the job and then wakes the submitter if it is
 * parked on it; all of them run on the loop's thread, so they never race.
 *
 * The submitter's writes are shielded from its cancellation: a frame is
 * never torn, and a cancelled caller still stops its job properly. After
 * the first interruption its parks are no longer interruptible: it waits
 * for the job to stop, which the escalation bounds.
 */
#include "jobs/pool/pool.h"
#include "jobs/pool/worker.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ waking */

static void wake_submitter(pool_job *job) {
    if (!job->parked) return;
    job->parked = false;
    coil__wake(job->task, 0);
}

static bool job_interrupt(coil__wait *w, int err) {
    (void)err;
    COIL_CONTAINER_OF(w, pool_job, wait)->parked = false;
    return true;
}

/* Parks the submitter until the job changes. Returns 0, or the
 * interruption if `interruptible`. Suspends. */
static int park(pool_job *job, bool interruptible) {
    job->wait.interrupt = interruptible ? job_interrupt : NULL;
    job->parked = true;
    int err = coil__park(&job->wait);
    job->parked = false; /* also when it returned without parking */
    return err;
}

void coil__job_request_stop(pool_job *job, int reason) {
    if (job->state != JOB_RUNNING || job->stop) return;
    job->stop = reason;
    wake_submitter(job);
}

static void timeout_fire(coil__timer *t) {
    coil__job_request_stop(COIL_CONTAINER_OF(t, pool_job, timeout), -ETIMEDOUT);
}

/* ------------------------------------------------------------------ queue */

pool_job *coil__slot_job(const pool_slot *s, uint64_t id) {
    for (coil__list *n = s->jobs.next; n != &s->jobs; n = n->next) {
        pool_job *job = COIL_CONTAINER_OF(n, pool_job, slot_link);
        if (!id || job->id == id) return job;
    }
    return NULL;
}

/* How many jobs of `job`'s kind slot `s` runs. */
static unsigned same_kind(const pool_slot *s, const pool_job *job) {
    unsigned n = 0;
    for (coil__list *l = s->jobs.next; l != &s->jobs; l = l->next) {
        const pool_job *o = COIL_CONTAINER_OF(l, pool_job, slot_link);
        n += o->kind_len == job->kind_len && memcmp(o->kind, job->kind, job->kind_len) == 0;
    }
    return n;
}

/* The slot `job` can go to now, or NULL. An awaiting job joins a worker
 * that already runs awaiting jobs if its kind has room there, which leaves
 * the other workers to plain jobs; else it takes an idle worker. A plain
 * job takes an idle worker that has never run awaiting jobs. */
static pool_slot *slot_for(coil_pool *p, const pool_job *job) {
    pool_slot *idle = NULL;
    for (size_t i = 0; i < p->cfg.workers; i++) {
        pool_slot *s = &p->slots[i];
        if (job->awaiting && s->state == SLOT_BUSY && s->awaiting && !s->killed_with &&
            same_kind(s, job) < job->awaiting)
            return s;
        if (s->state == SLOT_IDLE && (job->awaiting || !s->awaiting) && !idle) idle = s;
    }
    return idle;
}

static void assign(pool_job *job, pool_slot *s) {
    job->state = JOB_RUNNING;
    job->slot = s;
    job->started = coil_now();
    s->state = SLOT_BUSY;
    s->awaiting = s->awaiting || job->awaiting;
    coil__list_push_back(&s->jobs, &job->slot_link);
    s->njobs++;
    wake_submitter(job);
}

/* A plain job waits, and an idle worker runs a loop: it is replaced by a
 * fresh one (SIGTERM; it has no job to lose). */
static void recycle_awaiting(coil_pool *p) {
    for (size_t i = 0; i < p->cfg.workers; i++) {
        pool_slot *s = &p->slots[i];
        if (s->state == SLOT_IDLE && s->awaiting) {
            s->state = SLOT_RETIRING;
            coil__slot_kill(s, SIGTERM);
            return;
        }
    }
}

void coil__pool_dispatch(coil_pool *p) {
    bool plain_waits = false;
    coil__list *n = p->queue.next;
    while (n != &p->queue) {
        pool_job *job = COIL_CONTAINER_OF(n, pool_job, link);
        n = n->next;
        pool_slot *s = slot_for(p, job);
        if (!s) {
            plain_waits = plain_waits || !job->awaiting;
            continue;
        }
        coil__list_remove(&job->link);
        p->queued--;
        assign(job, s);
    }
    if (plain_waits) recycle_awaiting(p);
}

/* Takes `job` off its slot; the slot is idle once it has none left. */
static void slot_release(pool_slot *s, pool_job *job) {
    coil__list_remove(&job->slot_link);
    s->njobs--;
    if (!s->njobs && s->state == SLOT_BUSY) s->state = SLOT_IDLE;
}

static void push_front(coil__list *l, coil__list *n) {
    n->next = l->next;
    n->prev = l;
    l->next->prev = n;
    l->next = n;
}

/* ------------------------------------------------------------------ finishing */

/* The common end of every job: DONE, timer off, submitter and a stopping
 * pool told. */
static void job_done(pool_job *job, int err) {
    coil_pool *p = job->pool;
    coil_job_outcome *out = job->out;
    coil_time now = coil_now();
    out->err = err;
    out->id = job->id;
    out->queued_ns = (job->started ? job->started : now) - job->submitted;
    out->run_ns = job->started ? now - job->started : 0;
    if (err == 0) p->stats.succeeded++;
    else p->stats.failed++;
    job->state = JOB_DONE;
    job->slot = NULL;
    coil__timer_stop(p->loop, &job->timeout);
    wake_submitter(job);
    coil_event_set(&p->changed);
}

void coil__job_drop(pool_job *job, int err) {
    COIL_ASSERT(job->state == JOB_QUEUED);
    coil__list_remove(&job->link);
    job->pool->queued--;
    job_done(job, err);
}

/* A RUNNING job whose RUN never went out: the slot is free again. */
static void unassign(pool_job *job, int err) {
    slot_release(job->slot, job);
    job_done(job, err);
    coil__pool_dispatch(job->pool);
}

static void copy_text(char *dst, size_t size, const char *src, size_t len) {
    if (len > size - 1) len = size - 1;
    memcpy(dst, src, len);
    dst[len] = '\0';
}

/* Whether another of the slot's jobs is being stopped (its escalation
 * timer is theirs too). */
static bool another_stopping(const pool_slot *s, const pool_job *job) {
    for (coil__list *l = s->jobs.next; l != &s->jobs; l = l->next) {
        const pool_job *o = COIL_CONTAINER_OF(l, pool_job, slot_link);
        if (o != job && o->cancel_sent) return true;
    }
    return false;
}

void coil__job_finish_result(pool_slot *s, pool_job *job, const coil__frame_result *res,
                             uint8_t *buf) {
    coil_job_outcome *out = job->out;
    if (!another_stopping(s, job)) {
        coil__timer_stop(s->pool->loop, &s->escalate);
        s->stage = 0;
    }
    slot_release(s, job);
    s->jobs_done++;
    /* A worker already sent a signal may die any moment: it takes no new
     * job, and is made sure to die (it may have ignored SIGTERM). One that
     * exited after answering takes no new job either. */
    if (s->killed_with || s->exited) {
        s->state = SLOT_RETIRING;
        coil__slot_kill(s, SIGKILL);
    }
    out->ran = true;
    out->pid = s->pid;
    copy_text(out->content_type, sizeof out->content_type, res->content_type, res->ctype_len);
    copy_text(out->error, sizeof out->error, res->error, res->error_len);
    if (res->ctype_len) { /* the handler set a result: hand the buffer over */
        memmove(buf, res->data, res->data_len);
        buf[res->data_len] = '\0';
        out->result = buf;
        out->result_len = res->data_len;
    } else {
        free(buf);
    }
    int err = res->status;
    if (err && job->stop) err = job->stop; /* it stopped because it was told to */
    if (err == -ENOMEM && job->opts.max_address_space) out->oom = true;
    job_done(job, err);
    coil__pool_dispatch(s->pool);
}

/* Describes a death in out->error. */
static void describe_death(coil_job_outcome *out) {
    if (out->signal)
        snprintf(out->error, sizeof out->error, "worker died of signal %d (%s)%s", out->signal,
                 strsignal(out->signal), out->oom ? ", out of memory" : "");
    else
        snprintf(out->error, sizeof out->error, "worker exited with status %d%s",
                 out->exit_status, out->oom ? ", out of memory" : "");
}

/* One job of a dead worker. */
static void finish_one_death(pool_slot *s, pool_job *job, bool oom_kill) {
    coil_pool *p = s->pool;
    if (!job->sent) { /* it never reached the worker: not affected */
        if (job->stop) {
            job_done(job, job->stop);
            return;
        }
        job->state = JOB_QUEUED;
        job->slot = NULL;
        push_front(&p->queue, &job->link);
        p->queued++;
        return;
    }
    coil_job_outcome *out = job->out;
    out->ran = true;
    out->pid = s->pid;
    out->signal = s->term_signal;
    out->exit_status = s->term_signal ? -1 : (int)s->exit_status;
    out->oom = oom_kill || (job->opts.max_address_space && s->term_signal == SIGABRT);
    out->crashed = !job->stop && s->fault != -ECANCELED;
    if (out->crashed) p->stats.crashes++;
    describe_death(out);
    job_done(job, job->stop ? job->stop : s->fault ? s->fault : -ECHILD);
}

void coil__job_finish_death(pool_slot *s, bool oom_kill) {
    if (!s->njobs) return;
    s->state = SLOT_RETIRING; /* takes nothing the dispatch below hands out */
    while (s->njobs) {
        pool_job *job = coil__slot_job(s, 0);
        coil__list_remove(&job->slot_link);
        s->njobs--;
        finish_one_death(s, job, oom_kill);
    }
    coil__pool_dispatch(s->pool);
}

void coil__job_progress(pool_slot *s, uint64_t id, int percent, const char *message) {
    pool_job *job = id ? coil__slot_job(s, id) : NULL;
    if (job && job->opts.on_progress)
        job->opts.on_progress(job->opts.progress_arg, percent, message);
}

/* ------------------------------------------------------------------ frames out */

/* Writes a frame with the `n` payload buffers at iov[1..n] to the job's
 * worker, shielded from the submitter's cancellation. Returns 0 or the
 * write's error. Suspends. */
static int write_frame(pool_job *job, coil__frame_type type, struct iovec *iov, int n) {
    return coil__frame_write_stream(job->slot->stream, type, job->id, iov, n);
}

/* A write to a live worker failed (not because it died): kill it, and
 * its death ends the job with `err`. */
static void write_failed(pool_job *job, pool_slot *s, int err) {
    if (job->state != JOB_RUNNING || job->slot != s || s->exited) return;
    if (!job->stop) job->stop = err;
    coil__slot_kill(s, SIGKILL);
}

/* Suspends. */
static void send_run(pool_job *job) {
    pool_slot *s = job->slot;
    coil__frame_run run = {
        .max_address_space = job->opts.max_address_space,
        .max_cpu_seconds = job->opts.max_cpu_seconds,
        .kind = job->kind, .kind_len = job->kind_len,
        .attempt = job->opts.attempt,
        .label = job->opts.label, .label_len = job->opts.label ? strlen(job->opts.label) : 0,
        .payload = job->payload, .payload_len = job->len,
    };
    if (run.label_len > COIL__FRAME_LABEL_MAX) run.label_len = 0;
    uint8_t fixed[COIL__FRAME_RUN_FIXED];
    struct iovec iov[5];
    int n = coil__frame_run_encode(fixed, iov + 1, &run);
    COIL_ASSERT(n == 4); /* sizes were checked at submission */
    job->sent = true;
    int err = write_frame(job, COIL__FRAME_RUN, iov, n);
    if (err) {
        write_failed(job, s, err);
        return;
    }
    if (job->state == JOB_RUNNING && job->opts.timeout > 0 &&
        coil__timer_start(job->pool->loop, &job->timeout, coil_now() + job->opts.timeout))
        coil__job_request_stop(job, -ENOMEM);
}

/* Begins stopping a running job. Suspends. */
static void send_cancel(pool_job *job) {
    pool_slot *s = job->slot;
    job->cancel_sent = true;
    if (job->pool->cfg.cancel_grace >= 0) {
        struct iovec iov[1];
        int err = write_frame(job, COIL__FRAME_CANCEL, iov, 0);
        if (err) write_failed(job, s, err);
    }
    /* The stop sequence is the worker's: a second job of an awaiting worker
     * cancelled while it runs joins it, rather than hurrying it on to
     * SIGTERM. */
    if (job->state == JOB_RUNNING && job->slot == s && s->stage == 0) coil__slot_escalate(s);
}

/* ------------------------------------------------------------------ the call */

/* The submitter's loop (see the file comment). Returns 0, or the first
 * interruption of the submitter. Suspends. */
static int job_wait(pool_job *job) {
    int interrupted = 0;
    while (job->state != JOB_DONE) {
        if (job->state == JOB_RUNNING && !job->sent) {
            /* Cancelled while it was being handed a slot: never send it. */
            int c = interrupted ? 0 : coil_check_cancel();
            if (c && !job->stop) interrupted = job->stop = c;
            if (job->stop) unassign(job, job->stop);
            else send_run(job);
            continue;
        }
        if (job->state == JOB_RUNNING && job->stop && !job->cancel_sent) {
            send_cancel(job);
            continue;
        }
        int err = park(job, !interrupted);
        if (err == 0) continue;
        interrupted = err;
        if (job->state == JOB_QUEUED) coil__job_drop(job, err);
        else if (!job->stop) job->stop = err;
    }
    return interrupted;
}

static int check_submit(coil_pool *p, const char *kind, size_t *kind_len, size_t len) {
    if (!p || !kind) return -EINVAL;
    coil_task *self = coil__running();
    if (!self || self->loop != p->loop) return -EPERM;
    *kind_len = strnlen(kind, COIL_JOB_KIND_MAX + 1);
    if (*kind_len == 0 || *kind_len > COIL_JOB_KIND_MAX) return -EINVAL;
    if (!coil__job_lookup(kind, *kind_len)) return -ENOENT;
    if (len > COIL__FRAME_MAX - COIL__FRAME_RUN_FIXED - *kind_len) return -EMSGSIZE;
    if (p->stopping) return -EPIPE;
    return coil_check_cancel();
}

int coil_pool_run(coil_pool *p, const char *kind, const void *payload, size_t len,
                  const coil_job_opts *opts, coil_job_outcome *out) {
    memset(out, 0, sizeof *out);
    out->exit_status = -1;
    size_t kind_len = 0;
    int err = check_submit(p, kind, &kind_len, len);
    if (err) {
        out->err = err;
        return err;
    }
    pool_job job = {
        .wait = {job_interrupt}, .pool = p, .id = ++p->next_id,
        .kind = kind, .kind_len = kind_len, .payload = payload, .len = len,
        .awaiting = coil__job_awaiting(kind, kind_len),
        .state = JOB_QUEUED, .task = coil__running(), .out = out, .submitted = coil_now(),
    };
    pool_slot *s = slot_for(p, &job);
    if (!s && p->queued >= p->cfg.max_queue) {
        out->err = -EAGAIN;
        return -EAGAIN;
    }
    if (opts) job.opts = *opts;
    coil__list_init(&job.link);
    coil__list_init(&job.slot_link);
    coil__timer_init(&job.timeout, timeout_fire);
    p->stats.submitted++;
    if (s) {
        assign(&job, s);
    } else {
        coil__list_push_back(&p->queue, &job.link);
        p->queued++;
        if (!job.awaiting) recycle_awaiting(p);
    }
    int interrupted = job_wait(&job);
    return interrupted ? interrupted : out->err;
}

void coil_job_outcome_free(coil_job_outcome *out) {
    if (!out) return;
    free(out->result);
    out->result = NULL;
    out->result_len = 0;
}
