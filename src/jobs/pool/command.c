/* jobs/pool/command.c: job kinds that are programs (coil_jobs_command_kind
 * in jobs.h): any executable, in any language, as a job kind.
 *
 * A definition is "NAME[:CONTENT-TYPE]=PROGRAM ARG...", split on spaces
 * (quotes and backslashes as a shell would, for arguments with spaces),
 * run without a shell; a kinds file holds one a line. The supervisor registers it (so that the API takes
 * the kind) and puts it in COIL_COMMAND_KINDS, one a line; a worker is a
 * fresh exec that inherits the environment and registers the same ones
 * before it serves. Each kind's handler is run_command below, in the
 * worker, one job at a time:
 *
 *   - the program runs in its own process group, in a fresh temporary
 *     directory (removed after), with the payload on stdin, stdout read as
 *     the result (COMMAND_RESULT_MAX at most), stderr's last 4 KiB kept
 *     for the error message, and "progress PERCENT MESSAGE" lines read
 *     from fd 3 (COIL_PROGRESS_FD); COIL_JOB_ID, COIL_JOB_ATTEMPT and
 *     COIL_JOB_KIND in its environment;
 *   - a cancel or a timeout (the supervisor's CANCEL frame) sends SIGTERM
 *     to the whole group, then SIGKILL after COMMAND_GRACE, so that
 *     grandchildren go too; a worker killed outright takes the group with
 *     it from its SIGTERM handler, and the program has PDEATHSIG;
 *   - exit 0 succeeds; another status fails the job with the status and
 *     stderr; a program killed by a signal is a crash: the worker raises
 *     the same signal on itself, and the supervisor records it exactly as
 *     it records a C handler's crash.
 */
#include "jobs/pool/worker.h"
#include "runtime/json_text.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

enum {
    COMMANDS_MAX = 64,
    ARGS_MAX = 64,
    DEF_MAX = 4096,
    COMMAND_RESULT_MAX = 16 << 20,
    STDERR_TAIL = 4096,
    PROGRESS_LINE_MAX = 1100,
};
#define COMMAND_GRACE COIL_SEC(2)

typedef struct command_kind {
    char name[COIL_JOB_KIND_MAX + 1];
    char content_type[COIL_JOB_CONTENT_TYPE_MAX + 1];
    char buf[DEF_MAX];          /* the definition, cut into argv */
    char *argv[ARGS_MAX + 1];
} command_kind;

static command_kind commands[COMMANDS_MAX];
static size_t ncommands;

/* The running program's group, for the worker's SIGTERM handler. */
static volatile sig_atomic_t running_group;

static const command_kind *find(const char *name) {
    for (size_t i = 0; i < ncommands; i++)
        if (strcmp(commands[i].name, name) == 0) return &commands[i];
    return NULL;
}

/* Splits `s` into words in buf (DEF_MAX bytes), pointed to by argv (a
 * NULL after them): runs of spaces and tabs separate words; '...' and
 * "..." quote (spaces included), and a backslash takes the next character
 * as it is, outside single quotes. Returns the count, or -EINVAL
 * (unclosed quote, too many words, too long). */
static int split(const char *s, char *buf, char **argv) {
    size_t argc = 0, n = 0;
    for (;;) {
        while (*s == ' ' || *s == '\t') s++;
        if (!*s) break;
        if (argc == ARGS_MAX) return -EINVAL;
        argv[argc++] = buf + n;
        char quote = 0;
        for (; *s && (quote || (*s != ' ' && *s != '\t')); s++) {
            if (n + 2 >= DEF_MAX) return -EINVAL;
            if (quote && *s == quote) quote = 0;
            else if (!quote && (*s == '\'' || *s == '"')) quote = *s;
            else if (*s == '\\' && quote != '\'' && s[1]) buf[n++] = *++s;
            else buf[n++] = *s;
        }
        if (quote) return -EINVAL;
        buf[n++] = '\0';
    }
    argv[argc] = NULL;
    return (int)argc;
}

/* Parses `def` into `k`. Returns 0 or -EINVAL. */
static int parse(const char *def, command_kind *k) {
    const char *eq = strchr(def, '=');
    if (!eq || eq == def || strlen(eq + 1) >= sizeof k->buf) return -EINVAL;
    const char *colon = memchr(def, ':', (size_t)(eq - def));
    size_t name_len = (size_t)((colon ? colon : eq) - def);
    if (name_len > COIL_JOB_KIND_MAX) return -EINVAL;
    memcpy(k->name, def, name_len);
    k->name[name_len] = '\0';
    for (size_t i = 0; i < name_len; i++)
        if (k->name[i] <= ' ' || k->name[i] > '~') return -EINVAL;
    snprintf(k->content_type, sizeof k->content_type, "%s", "application/octet-stream");
    if (colon) {
        size_t n = (size_t)(eq - colon - 1);
        if (n == 0 || n > COIL_JOB_CONTENT_TYPE_MAX) return -EINVAL;
        memcpy(k->content_type, colon + 1, n);
        k->content_type[n] = '\0';
    }
    return split(eq + 1, k->buf, k->argv) > 0 ? 0 : -EINVAL;
}

static int run_command(const void *payload, size_t len, coil_job_ctx *ctx);

/* Registers `def` here; `export`: also for the workers to come. */
static int add(const char *def, bool export) {
    if (!def || ncommands == COMMANDS_MAX) return def ? -ENOSPC : -EINVAL;
    command_kind *k = &commands[ncommands];
    memset(k, 0, sizeof *k);
    int err = parse(def, k);
    if (err) return err;
    if ((err = coil_job_register(k->name, run_command)) != 0) return err;
    ncommands++;
    if (!export) return 0;
    const char *old = getenv("COIL_COMMAND_KINDS");
    size_t n = (old ? strlen(old) + 1 : 0) + strlen(def) + 1;
    char *all = malloc(n);
    if (!all) return -ENOMEM;
    snprintf(all, n, "%s%s%s", old ? old : "", old ? "\n" : "", def);
    setenv("COIL_COMMAND_KINDS", all, 1);
    free(all);
    return 0;
}

int coil_jobs_command_kind(const char *def) { return add(def, true); }

int coil_jobs_command_kinds_file(const char *path, char *err, size_t cap) {
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, cap, "%s: %s", path, strerror(errno));
        return -errno;
    }
    char line[DEF_MAX + 2];
    int rc = 0;
    for (int no = 1; rc == 0 && fgets(line, sizeof line, f); no++) {
        size_t n = strcspn(line, "\r\n");
        if (line[n] == '\0' && !feof(f)) {
            snprintf(err, cap, "%s line %d: longer than %d bytes", path, no, DEF_MAX);
            rc = -EINVAL;
            break;
        }
        line[n] = '\0';
        const char *p = line + strspn(line, " \t");
        if (!*p || *p == '#') continue;
        if ((rc = add(p, true)) != 0)
            snprintf(err, cap, "%s line %d: %s", path, no,
                     rc == -EINVAL ? "expected NAME[:TYPE]=PROGRAM ARG..." : strerror(-rc));
    }
    fclose(f);
    return rc;
}

bool coil_jobs_is_command_kind(const char *name) { return name && find(name) != NULL; }

void coil__command_kinds_from_env(void) {
    const char *env = getenv("COIL_COMMAND_KINDS");
    if (!env) return;
    char *copy = strdup(env);
    for (char *save = NULL, *line = copy ? strtok_r(copy, "\n", &save) : NULL; line;
         line = strtok_r(NULL, "\n", &save))
        if (add(line, false) != 0) fprintf(stderr, "coil worker: bad command kind: %s\n", line);
    free(copy);
}

void coil__command_group_kill(void) {
    if (running_group > 0) kill(-running_group, SIGKILL); /* async-signal-safe */
}

/* ------------------------------------------------------------------ one job */

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st, (void)flag, (void)ftw;
    remove(path);
    return 0;
}

typedef struct io {
    coil__json_text out;         /* stdout so far (bytes as they are) */
    bool too_big;
    char err[STDERR_TAIL];       /* a ring of stderr's last bytes */
    size_t err_len, err_at;
    char line[PROGRESS_LINE_MAX]; /* the progress line being read */
    size_t line_len;
} io;

static void keep_stderr(io *x, const char *p, size_t n) {
    for (size_t i = 0; i < n; i++) {
        x->err[x->err_at] = p[i];
        x->err_at = (x->err_at + 1) % STDERR_TAIL;
        if (x->err_len < STDERR_TAIL) x->err_len++;
    }
}

static void keep_stdout(io *x, const char *p, size_t n) {
    if (x->too_big) return;
    if (x->out.len + n > COMMAND_RESULT_MAX) {
        x->too_big = true;
        return;
    }
    coil__json_raw(&x->out, p, n);
    x->too_big = x->out.failed;
}

/* "progress PERCENT MESSAGE" lines; anything else is ignored. */
static void keep_progress(io *x, const char *p, size_t n, coil_job_ctx *ctx) {
    for (size_t i = 0; i < n; i++) {
        if (p[i] != '\n') {
            if (x->line_len < sizeof x->line - 1) x->line[x->line_len++] = p[i];
            continue;
        }
        x->line[x->line_len] = '\0';
        x->line_len = 0;
        int pct, used = 0;
        if (sscanf(x->line, "progress %d %n", &pct, &used) >= 1 && pct >= 0 && pct <= 100)
            coil_job_progress(ctx, pct, used ? x->line + used : "");
    }
}

/* stderr's tail, oldest first, into out. */
static void stderr_tail(const io *x, char *out, size_t cap) {
    size_t n = x->err_len < cap - 1 ? x->err_len : cap - 1;
    size_t start = (x->err_at + STDERR_TAIL - x->err_len) % STDERR_TAIL;
    start = (start + x->err_len - n) % STDERR_TAIL;
    for (size_t i = 0; i < n; i++) out[i] = x->err[(start + i) % STDERR_TAIL];
    out[n] = '\0';
    while (n && (out[n - 1] == '\n' || out[n - 1] == ' ')) out[--n] = '\0';
}

static pid_t spawn(const command_kind *k, coil_job_ctx *ctx, const char *dir, int in, int out,
                   int err, int prog) {
    pid_t pid = fork();
    if (pid != 0) return pid;
    /* The child: its own group (a cancel signals all of it), gone with the
     * worker, in the job's directory, with the pipes on 0 to 3. */
    setpgid(0, 0);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    signal(SIGPIPE, SIG_DFL);
    signal(SIGINT, SIG_DFL);
    if (chdir(dir) != 0) _exit(126);
    int fds[4] = {in, out, err, prog};
    int moved[4];
    for (int i = 0; i < 4; i++) moved[i] = fcntl(fds[i], F_DUPFD_CLOEXEC, 10);
    for (int i = 0; i < 4; i++)
        if (moved[i] < 0 || dup2(moved[i], i) < 0) _exit(126);
    setenv("COIL_PROGRESS_FD", "3", 1);
    setenv("COIL_JOB_KIND", k->name, 1);
    char attempt[16];
    snprintf(attempt, sizeof attempt, "%u", coil_job_attempt(ctx));
    setenv("COIL_JOB_ID", coil_job_id(ctx), 1);
    setenv("COIL_JOB_ATTEMPT", attempt, 1);
    execvp(k->argv[0], k->argv);
    dprintf(2, "coil: cannot run %s: %s\n", k->argv[0], strerror(errno));
    _exit(127);
}

static int run_command(const void *payload, size_t len, coil_job_ctx *ctx) {
    const command_kind *k = find(coil_job_kind(ctx));
    if (!k) {
        coil_job_set_error(ctx, "not a command kind in this worker");
        return COIL_JOB_NO_RETRY;
    }
    char dir[] = "/tmp/coil-job-XXXXXX";
    if (!mkdtemp(dir)) {
        coil_job_set_error(ctx, "cannot make the job's directory");
        return -errno;
    }
    int in[2], out[2], err[2], prog[2];
    if (pipe2(in, O_CLOEXEC) || pipe2(out, O_CLOEXEC) || pipe2(err, O_CLOEXEC) ||
        pipe2(prog, O_CLOEXEC)) {
        coil_job_set_error(ctx, "cannot make the program's pipes");
        nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
        return -EMFILE;
    }
    pid_t pid = spawn(k, ctx, dir, in[0], out[1], err[1], prog[1]);
    close(in[0]), close(out[1]), close(err[1]), close(prog[1]);
    if (pid < 0) {
        close(in[1]), close(out[0]), close(err[0]), close(prog[0]);
        nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
        coil_job_set_error(ctx, "cannot start the program");
        return -EAGAIN;
    }
    setpgid(pid, pid); /* also here: no race with the first kill */
    running_group = pid;
    fcntl(in[1], F_SETFL, O_NONBLOCK);
    io *x = calloc(1, sizeof *x);
    size_t sent = 0;
    int fd_in = len ? in[1] : -1;
    if (fd_in < 0) close(in[1]);
    int fds_open = 3;
    int fd_out = out[0], fd_err = err[0], fd_prog = prog[0];
    coil_time term_at = 0;
    bool cancelled = false;
    while (x && fds_open > 0) {
        struct pollfd p[4] = {{fd_out, POLLIN, 0}, {fd_err, POLLIN, 0}, {fd_prog, POLLIN, 0},
                              {fd_in, POLLOUT, 0}};
        poll(p, 4, 50);
        char buf[65536];
        int *fdp[3] = {&fd_out, &fd_err, &fd_prog};
        for (int i = 0; i < 3; i++) {
            if (*fdp[i] < 0 || !(p[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
            ssize_t r = read(*fdp[i], buf, sizeof buf);
            if (r > 0 && i == 0) keep_stdout(x, buf, (size_t)r);
            if (r > 0 && i == 1) keep_stderr(x, buf, (size_t)r);
            if (r > 0 && i == 2) keep_progress(x, buf, (size_t)r, ctx);
            if (r == 0 || (r < 0 && errno != EINTR && errno != EAGAIN)) {
                close(*fdp[i]);
                *fdp[i] = -1;
                fds_open--;
            }
        }
        if (fd_in >= 0 && (p[3].revents & (POLLOUT | POLLERR | POLLHUP))) {
            ssize_t w = write(fd_in, (const char *)payload + sent, len - sent);
            if (w > 0) sent += (size_t)w;
            if (sent == len || (w < 0 && errno != EAGAIN && errno != EINTR)) {
                close(fd_in);
                fd_in = -1;
            }
        }
        if (!cancelled && (x->too_big || coil_job_cancelled(ctx))) {
            cancelled = true;
            kill(-pid, SIGTERM);
            term_at = coil_now();
        }
        if (cancelled && term_at && coil_now() - term_at > COMMAND_GRACE) {
            kill(-pid, SIGKILL);
            term_at = 0;
        }
    }
    if (fd_in >= 0) close(fd_in);
    if (fd_out >= 0) close(fd_out); /* still open only if the loop never ran (no memory) */
    if (fd_err >= 0) close(fd_err);
    if (fd_prog >= 0) close(fd_prog);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    kill(-pid, SIGKILL); /* whatever of the group is left */
    running_group = 0;
    nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    if (!x) {
        coil_job_set_error(ctx, "out of memory");
        return -ENOMEM;
    }
    char tail[STDERR_TAIL + 1], msg[COIL_JOB_MESSAGE_MAX + 1];
    stderr_tail(x, tail, sizeof tail);
    int result;
    if (x->too_big) {
        snprintf(msg, sizeof msg, "the program's output is over the %d MiB limit",
                 COMMAND_RESULT_MAX >> 20);
        coil_job_set_error(ctx, msg);
        result = COIL_JOB_NO_RETRY;
    } else if (cancelled) {
        result = -ECANCELED;
    } else if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
        result = coil_job_set_result(ctx, x->out.s, x->out.len, k->content_type);
    } else if (WIFEXITED(status)) {
        snprintf(msg, sizeof msg, "%s exited with status %d%s%.*s", k->argv[0],
                 WEXITSTATUS(status), tail[0] ? ": " : "",
                 (int)(sizeof msg - 96 - strlen(k->argv[0])), tail);
        coil_job_set_error(ctx, msg);
        result = -EIO;
    } else {
        /* Killed by a signal: a crash, recorded as the C kinds' are. */
        int sig = WTERMSIG(status);
        free(x->out.s);
        free(x);
        fprintf(stderr, "coil worker: %s died of signal %d%s%s\n", k->argv[0], sig,
                tail[0] ? ": " : "", tail);
        signal(sig, SIG_DFL);
        raise(sig);
        _exit(128 + sig);
    }
    free(x->out.s);
    free(x);
    return result;
}
