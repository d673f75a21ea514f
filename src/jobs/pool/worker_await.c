/* jobs/pool/worker_await.c: a worker that runs awaiting job kinds.
 *
 * The first RUN frame of an awaiting kind (coil_job_register_awaiting)
 * turns a worker into this one for the rest of its life: it runs a coil
 * loop whose main task reads the supervisor's frames, and each job runs in
 * a task of its own, so that a handler may suspend and several run at
 * once (the supervisor sends no more of a kind than its concurrency, and
 * no plain job to this worker).
 *
 *   RUN      an awaiting kind: a new task runs its handler; a plain kind
 *            here is the supervisor breaking its word: protocol error
 *   CANCEL   the job's task is cancelled: its suspension points return
 *            -ECANCELED, and coil_job_cancelled() turns true
 *   the end  the supervisor wants the worker gone: every job is cancelled
 *            and awaited, and the worker exits 0
 *
 * Frames go out through the loop's stream, one whole coil_stream_writev
 * each, so that the frames of concurrent jobs never interleave; they are
 * shielded, so that a cancelled job still reports its end.
 */
#include "jobs/pool/worker.h"

#include <stdlib.h>
#include <string.h>

enum { EXIT_CLEAN = 0, EXIT_PROTOCOL = 2 };

typedef struct await_worker {
    coil_stream *stream;
    coil__list jobs;       /* await_job.link: the jobs running */
    size_t running;
    coil_event quiet;      /* set when `running` drops to 0 */
    int fd;
} await_worker;

typedef struct await_job {
    coil_job_ctx ctx;      /* ctx.stream set */
    await_worker *w;
    coil__list link;
    coil_task *task;       /* detached: frees itself when the handler ends */
    uint8_t *frame;        /* the RUN payload (malloc'd), `run` views it */
    coil__frame_run run;
} await_job;

/* ------------------------------------------------------------------ a job */

static coil_result job_main(void *arg) {
    await_job *j = arg;
    coil_job_fn fn = coil__job_lookup(j->run.kind, j->run.kind_len);
    /* run.payload is followed by the reader's NUL. */
    int status = fn(j->run.payload, j->run.payload_len, &j->ctx);
    if (status > 0) status = -EIO;
    coil__worker_send_result(&j->ctx, status);
    await_worker *w = j->w;
    coil__list_remove(&j->link);
    if (--w->running == 0) coil_event_set(&w->quiet);
    free(j->ctx.result);
    free(j->frame);
    free(j);
    return coil_ok(NULL);
}

/* Starts the job of a RUN frame (`frame`, taken). Returns 0 or an exit
 * status. Does not suspend. */
static int start_job(await_worker *w, uint64_t id, uint8_t *frame, size_t len) {
    await_job *j = calloc(1, sizeof *j);
    if (!j || coil__frame_run_decode(frame, len, &j->run) ||
        !coil__job_awaiting(j->run.kind, j->run.kind_len)) {
        free(j);
        free(frame);
        return EXIT_PROTOCOL;
    }
    j->w = w;
    j->frame = frame;
    j->ctx = (coil_job_ctx){.fd = w->fd, .id = id, .attempt = j->run.attempt,
                            .stream = w->stream};
    memcpy(j->ctx.label, j->run.label, j->run.label_len);
    memcpy(j->ctx.kind, j->run.kind, j->run.kind_len);
    memcpy(coil__running_kind, j->run.kind, j->run.kind_len); /* for a crash line */
    coil__running_kind[j->run.kind_len] = '\0';
    j->task = coil_spawn_named(j->ctx.kind, job_main, j);
    if (!j->task) { /* out of memory: say so, as the job's outcome */
        coil_job_set_error(&j->ctx, "the worker is out of memory");
        int err = coil__worker_send_result(&j->ctx, -ENOMEM);
        free(frame);
        free(j);
        return err ? EXIT_CLEAN : 0;
    }
    coil__list_push_back(&w->jobs, &j->link);
    w->running++;
    coil_event_clear(&w->quiet);
    coil_detach(j->task);
    return 0;
}

static void cancel_job(await_worker *w, uint64_t id) {
    for (coil__list *n = w->jobs.next; n != &w->jobs; n = n->next) {
        await_job *j = COIL_CONTAINER_OF(n, await_job, link);
        if (j->ctx.id != id) continue;
        j->ctx.cancelled = true;
        coil_cancel(j->task);
        return;
    }
    /* a CANCEL for a job that has just answered: too late, ignored */
}

typedef struct await_start {
    int fd;
    uint64_t id;
    uint8_t *payload;
    size_t len;
    int exit_status;
} await_start;

static coil_result await_main(void *arg) {
    await_start *a = arg;
    await_worker w = {.fd = a->fd};
    coil__list_init(&w.jobs);
    coil_event_init(&w.quiet);
    if (coil_stream_open(a->fd, &w.stream) != 0) {
        free(a->payload);
        a->exit_status = EXIT_PROTOCOL;
        return coil_ok(NULL);
    }
    int status = start_job(&w, a->id, a->payload, a->len);
    while (!status) {
        coil__frame_hdr hdr;
        uint8_t *payload = NULL;
        int r = coil__frame_read_stream(w.stream, &hdr, &payload);
        if (r <= 0) { /* an end, even inside a frame, is the supervisor gone */
            status = r == 0 || r == -ENODATA || r == -EPIPE || r == -ECONNRESET ? EXIT_CLEAN
                                                                             : EXIT_PROTOCOL;
            break;
        }
        if (hdr.type == COIL__FRAME_RUN) {
            status = start_job(&w, hdr.id, payload, hdr.length);
            continue;
        }
        free(payload);
        if (hdr.type == COIL__FRAME_CANCEL) cancel_job(&w, hdr.id);
        else status = EXIT_PROTOCOL;
    }
    /* Nobody will hear the outcomes: stop the jobs, and wait for them. */
    for (coil__list *n = w.jobs.next; n != &w.jobs; n = n->next) {
        await_job *j = COIL_CONTAINER_OF(n, await_job, link);
        j->ctx.gone = true;
        coil_cancel(j->task);
    }
    if (w.running) COIL__AT(coil_event_wait(&w.quiet));
    coil_stream_close(w.stream);
    a->exit_status = status;
    return coil_ok(NULL);
}

int coil__worker_await(int fd, uint64_t id, uint8_t *payload, size_t len) {
    await_start a = {.fd = fd, .id = id, .payload = payload, .len = len};
    if (coil_run(await_main, &a, NULL) != 0) return EXIT_PROTOCOL;
    return a.exit_status;
}
