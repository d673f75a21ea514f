/* jobs/pool/worker.c: a worker process of the pool.
 *
 * A worker is plain blocking C: no loop, no threads, until it is sent an
 * awaiting kind's job; then worker_await.c takes over for the rest of its
 * life. It says HELLO, then
 * reads one frame at a time from its socket. A RUN frame runs a handler
 * to completion and answers with one RESULT frame; PROGRESS frames go out
 * while the handler runs. The supervisor never sends a second RUN before
 * the RESULT, so the only frame that can arrive during a job is a CANCEL,
 * which coil_job_cancelled() picks up by polling the socket. The end of
 * the stream means the supervisor wants the worker gone: it exits 0.
 *
 * What a worker does to itself at start, and why:
 *   - PR_SET_PDEATHSIG SIGKILL, then checks its parent is still the
 *     supervisor: a worker never outlives the supervisor, even one that
 *     was killed with SIGKILL.
 *   - takes the niceness it was given, so that jobs yield the CPU to the
 *     supervisor's loops.
 *   - ignores SIGINT (a Ctrl-C reaches the whole process group; stopping
 *     workers is the supervisor's decision) and SIGPIPE (a write to a gone
 *     supervisor returns -EPIPE).
 *   - catches SIGSEGV, SIGBUS, SIGFPE and SIGILL to write one line naming
 *     the job to stderr, then dies of the same signal with the default
 *     action. This replaces a sanitizer's handler, which would turn the
 *     signal into exit(1): the pool promises the outcome carries the
 *     signal, in every build.
 */
#include "jobs/pool/frame.h"
#include "jobs/pool/worker.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

enum {
    EXIT_CLEAN = 0,    /* the supervisor closed the socket */
    EXIT_ORPHAN = 1,   /* the supervisor was gone at start */
    EXIT_PROTOCOL = 2, /* bad arguments or frames */
};


/* The kind running now, for the crash line (read by a signal handler). */
char coil__running_kind[COIL_JOB_KIND_MAX + 1];

/* ------------------------------------------------------------------ I/O */

/* Reads exactly `len` bytes. Returns len, 0 at a clean end before the
 * first byte, or -errno (-EPIPE for an end in the middle). */
static ssize_t read_full(int fd, void *buf, size_t len) {
    size_t got = 0;
    while (got < len) {
        ssize_t n = read(fd, (char *)buf + got, len - got);
        if (n > 0) got += (size_t)n;
        else if (n == 0) return got ? -EPIPE : 0;
        else if (errno != EINTR) return -errno;
    }
    return (ssize_t)len;
}

/* Writes every byte of the `n` buffers. Returns 0 or -errno. */
static int write_full(int fd, struct iovec *iov, int n) {
    while (n > 0) {
        ssize_t w = writev(fd, iov, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -errno;
        }
        size_t left = (size_t)w;
        while (n > 0 && left >= iov->iov_len) {
            left -= iov->iov_len;
            iov++;
            n--;
        }
        if (n > 0) {
            iov->iov_base = (char *)iov->iov_base + left;
            iov->iov_len -= left;
        }
    }
    return 0;
}

static int send_frame(int fd, coil__frame_type type, uint64_t id, struct iovec *iov, int n) {
    size_t len = 0;
    for (int i = 1; i <= n; i++) len += iov[i].iov_len;
    uint8_t hdr[COIL__FRAME_HEADER];
    coil__frame_header_encode(hdr, type, (uint32_t)len, id);
    iov[0] = (struct iovec){hdr, sizeof hdr};
    return write_full(fd, iov, n + 1);
}

int coil__worker_send(coil_job_ctx *ctx, coil__frame_type type, struct iovec *iov, int n) {
    if (!ctx->stream) return send_frame(ctx->fd, type, ctx->id, iov, n);
    return coil__frame_write_stream(ctx->stream, type, ctx->id, iov, n);
}

/* Reads one frame: its header into *hdr and its payload, NUL-terminated,
 * into *payload (malloc'd, the caller frees). Returns 1, 0 at the end of
 * the stream, or a negative error. */
static int read_frame(int fd, coil__frame_hdr *hdr, uint8_t **payload) {
    uint8_t buf[COIL__FRAME_HEADER];
    ssize_t n = read_full(fd, buf, sizeof buf);
    if (n <= 0) return (int)n;
    int err = coil__frame_header_decode(buf, sizeof buf, COIL__FRAME_MAX, hdr);
    if (err) return err;
    uint8_t *p = malloc((size_t)hdr->length + 1);
    if (!p) return -ENOMEM;
    n = read_full(fd, p, hdr->length);
    if (n < 0 || (n == 0 && hdr->length > 0)) {
        free(p);
        return n < 0 ? (int)n : -EPIPE;
    }
    p[hdr->length] = '\0';
    *payload = p;
    return 1;
}

/* ------------------------------------------------------------------ context */

static void copy_string(char *dst, size_t size, const char *src) {
    size_t n = strnlen(src, size - 1);
    memcpy(dst, src, n);
    dst[n] = '\0';
}

int coil_job_set_result(coil_job_ctx *ctx, const void *data, size_t len, const char *content_type) {
    uint8_t *copy = malloc(len ? len : 1);
    if (!copy) return -ENOMEM;
    if (len) memcpy(copy, data, len);
    free(ctx->result);
    ctx->result = copy;
    ctx->result_len = len;
    copy_string(ctx->ctype, sizeof ctx->ctype,
                content_type ? content_type : "application/octet-stream");
    return 0;
}

void coil_job_set_error(coil_job_ctx *ctx, const char *message) {
    copy_string(ctx->error, sizeof ctx->error, message ? message : "");
}

int coil_job_progress(coil_job_ctx *ctx, int percent, const char *message) {
    if (percent < 0 || percent > 100) return -EINVAL;
    uint8_t pct = (uint8_t)percent;
    size_t mlen = message ? strnlen(message, COIL_JOB_MESSAGE_MAX) : 0;
    struct iovec iov[3] = {{0}, {&pct, 1}, {(void *)message, mlen}};
    return coil__worker_send(ctx, COIL__FRAME_PROGRESS, iov, 2);
}

/* Takes in one frame that arrived while the job runs. */
static void take_frame_during_job(coil_job_ctx *ctx) {
    coil__frame_hdr hdr;
    uint8_t *payload = NULL;
    int r = read_frame(ctx->fd, &hdr, &payload);
    if (r <= 0 || hdr.type != COIL__FRAME_CANCEL) ctx->gone = true;
    else if (hdr.id == ctx->id) ctx->cancelled = true;
    free(payload); /* a CANCEL for an earlier job came too late: ignored */
}

const char *coil_job_id(coil_job_ctx *ctx) { return ctx->label; }

unsigned coil_job_attempt(coil_job_ctx *ctx) { return ctx->attempt; }

const char *coil_job_kind(coil_job_ctx *ctx) { return ctx->stream ? ctx->kind : coil__running_kind; }

bool coil_job_cancelled(coil_job_ctx *ctx) {
    if (ctx->stream) return ctx->cancelled || ctx->gone; /* the loop's reader sets them */
    struct pollfd p = {.fd = ctx->fd, .events = POLLIN};
    while (!ctx->gone && poll(&p, 1, 0) > 0) take_frame_during_job(ctx);
    return ctx->cancelled || ctx->gone;
}

/* ------------------------------------------------------------------ jobs */

/* Runs the job of one RUN frame and answers with its RESULT. Returns 0 to
 * go on, or the exit status for the worker. */
static int run_job(int fd, uint64_t id, const uint8_t *p, size_t len) {
    coil__frame_run run;
    if (coil__frame_run_decode(p, len, &run)) return EXIT_PROTOCOL;
    coil_job_ctx ctx = {.fd = fd, .id = id, .attempt = run.attempt};
    memcpy(ctx.label, run.label, run.label_len);
    ctx.label[run.label_len] = '\0';
    int status;
    coil_job_fn fn = coil__job_lookup(run.kind, run.kind_len);
    coil__limits saved;
    if (!fn) {
        status = -ENOENT;
        coil_job_set_error(&ctx, "job kind unknown to the worker");
    } else if ((status = coil__limits_apply(&saved, run.max_address_space,
                                            run.max_cpu_seconds)) != 0) {
        coil_job_set_error(&ctx, "could not set the job's resource limits");
    } else {
        memcpy(coil__running_kind, run.kind, run.kind_len);
        coil__running_kind[run.kind_len] = '\0';
        /* run.payload is followed by read_frame's NUL. */
        status = fn(run.payload, run.payload_len, &ctx);
        if (status > 0) status = -EIO;
        coil__limits_restore(&saved);
        coil__running_kind[0] = '\0';
    }
    int err = coil__worker_send_result(&ctx, status);
    free(ctx.result);
    if (err || ctx.gone) return EXIT_CLEAN; /* nobody is listening any more */
    return 0;
}

int coil__worker_send_result(coil_job_ctx *ctx, int status) {
    coil__frame_result res = {
        .status = status,
        .content_type = ctx->ctype, .ctype_len = strlen(ctx->ctype),
        .error = ctx->error, .error_len = strlen(ctx->error),
        .data = ctx->result, .data_len = ctx->result_len,
    };
    uint8_t fixed[COIL__FRAME_RESULT_FIXED];
    struct iovec iov[5];
    int n = coil__frame_result_encode(fixed, iov + 1, &res);
    if (n < 0) { /* a result over the frame limit */
        res = (coil__frame_result){.status = -EMSGSIZE, .error = "result too large",
                                   .error_len = strlen("result too large")};
        n = coil__frame_result_encode(fixed, iov + 1, &res);
    }
    return coil__worker_send(ctx, COIL__FRAME_RESULT, iov, n);
}

static int serve(int fd) {
    uint32_t pid = (uint32_t)getpid();
    uint8_t body[4];
    coil__put_u32(body, pid);
    struct iovec iov[2] = {{0}, {body, sizeof body}};
    if (send_frame(fd, COIL__FRAME_HELLO, 0, iov, 1)) return EXIT_CLEAN;
    for (;;) {
        coil__frame_hdr hdr;
        uint8_t *payload = NULL;
        int r = read_frame(fd, &hdr, &payload);
        if (r == 0) return EXIT_CLEAN;
        if (r < 0) return r == -EPIPE || r == -ECONNRESET ? EXIT_CLEAN : EXIT_PROTOCOL;
        int done = 0;
        coil__frame_run run;
        if (hdr.type == COIL__FRAME_RUN && coil__frame_run_decode(payload, hdr.length, &run) == 0 &&
            coil__job_awaiting(run.kind, run.kind_len))
            return coil__worker_await(fd, hdr.id, payload, hdr.length); /* from now on */
        if (hdr.type == COIL__FRAME_RUN) done = run_job(fd, hdr.id, payload, hdr.length);
        else if (hdr.type != COIL__FRAME_CANCEL) done = EXIT_PROTOCOL; /* CANCEL: too late */
        free(payload);
        if (done) return done;
    }
}

/* ------------------------------------------------------------------ start */

/* Writes "coil worker PID: job KIND died of signal N\n" with
 * async-signal-safe calls only, then dies of the signal. */
static void fatal_signal(int sig) {
    char line[160];
    size_t n = 0;
    const char *parts[] = {"coil worker: job ", coil__running_kind[0] ? coil__running_kind : "(none)",
                           " died of signal "};
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++)
        for (const char *c = parts[i]; *c && n < sizeof line - 8; c++) line[n++] = *c;
    if (sig >= 10) line[n++] = (char)('0' + sig / 10 % 10);
    line[n++] = (char)('0' + sig % 10);
    line[n++] = '\n';
    ssize_t ignored = write(STDERR_FILENO, line, n);
    (void)ignored;
    signal(sig, SIG_DFL);
    raise(sig); /* delivered when the handler returns, if not at once */
}

/* SIGTERM (a job stopped past its grace, or the pool going away): a
 * command kind's program group goes first, then the worker as before. */
static void on_term(int sig) {
    coil__command_group_kill();
    signal(sig, SIG_DFL);
    raise(sig);
}

static void install_signals(void) {
    signal(SIGINT, SIG_IGN);
    signal(SIGPIPE, SIG_IGN);
    signal(SIGTERM, on_term);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = fatal_signal;
    sigemptyset(&sa.sa_mask);
    const int fatal[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL};
    for (size_t i = 0; i < sizeof fatal / sizeof fatal[0]; i++) sigaction(fatal[i], &sa, NULL);
}

/* Parses a non-negative decimal argument; -1 if it is not one. */
static long parse_arg(const char *s) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < 0) return -1;
    return v;
}

int coil__worker_main(int argc, char **argv) {
    if (argc != 5) return EXIT_PROTOCOL;
    long fd = parse_arg(argv[2]), ppid = parse_arg(argv[4]);
    bool keep_nice = strcmp(argv[3], "-") == 0;
    long nice_to = keep_nice ? 0 : parse_arg(argv[3]);
    if (fd < 0 || fd > 1024 || ppid <= 0 || nice_to < 0) return EXIT_PROTOCOL;
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != (pid_t)ppid) return EXIT_ORPHAN;
    prctl(PR_SET_NAME, "coil-worker");
    fcntl((int)fd, F_SETFD, FD_CLOEXEC);
    int fl = fcntl((int)fd, F_GETFL);
    if (fl >= 0) fcntl((int)fd, F_SETFL, fl & ~O_NONBLOCK);
    if (!keep_nice && setpriority(PRIO_PROCESS, 0, (int)nice_to) != 0)
        fprintf(stderr, "coil worker: setpriority(%ld): %s\n", nice_to, strerror(errno));
    install_signals();
    coil__command_kinds_from_env(); /* the supervisor's, as it registered them */
    return serve((int)fd);
}

int coil_worker_main_if_requested(int argc, char **argv) {
    if (argc < 2 || !argv[1] || strcmp(argv[1], COIL__WORKER_FLAG) != 0) return 0;
    exit(coil__worker_main(argc, argv));
}
