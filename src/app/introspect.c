/* app/introspect.c: the control socket and GET /debug/tasks (introspect.h). */
#include "app/introspect.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

/* How long a loop may take to list its tasks before it counts as stalled. */
#define ANSWER_TIMEOUT COIL_MSEC(500)

struct app_ctl {
    int fd;
    int stop_pipe[2];
    pthread_t thread;
    char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
};

void app_ctl_path(const char *data_dir, char *out, size_t cap) {
    snprintf(out, cap, "%s/run/coil.sock", data_dir);
}

static void write_all(int fd, const char *p, size_t n) {
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return;
        p += w, n -= (size_t)w;
    }
}

/* One client: a request line, then the answer, then the end. */
static void serve_one(int c) {
    char line[64] = "";
    struct pollfd pfd = {.fd = c, .events = POLLIN};
    size_t n = 0;
    while (n < sizeof line - 1 && poll(&pfd, 1, 1000) == 1) {
        ssize_t r = read(c, line + n, sizeof line - 1 - n);
        if (r <= 0) break;
        n += (size_t)r;
        line[n] = '\0';
        if (strchr(line, '\n')) break;
    }
    if (strncmp(line, "tasks\n", 6) != 0) {
        static const char what[] = "{\"error\":\"ask: tasks\"}\n";
        write_all(c, what, sizeof what - 1);
        return;
    }
    char *json = NULL;
    int err = coil_tasks_snapshot(&json, ANSWER_TIMEOUT);
    if (err) {
        char msg[96];
        int k = snprintf(msg, sizeof msg, "{\"error\":\"%s\"}\n", coil_strerror(err));
        write_all(c, msg, (size_t)k);
        return;
    }
    write_all(c, json, strlen(json));
    write_all(c, "\n", 1);
    free(json);
}

static void *ctl_main(void *arg) {
    app_ctl *c = arg;
    for (;;) {
        struct pollfd fds[2] = {{.fd = c->fd, .events = POLLIN},
                                {.fd = c->stop_pipe[0], .events = POLLIN}};
        if (poll(fds, 2, -1) < 0 && errno != EINTR) break;
        if (fds[1].revents) break;
        if (!(fds[0].revents & POLLIN)) continue;
        int client = accept4(c->fd, NULL, NULL, SOCK_CLOEXEC);
        if (client < 0) continue;
        serve_one(client);
        close(client);
    }
    return NULL;
}

int app_ctl_start(const char *data_dir, app_ctl **out) {
    *out = NULL;
    app_ctl *c = calloc(1, sizeof *c);
    if (!c) return -ENOMEM;
    c->fd = -1;
    c->stop_pipe[0] = c->stop_pipe[1] = -1;
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/run", data_dir);
    app_ctl_path(data_dir, c->path, sizeof c->path);
    int err = 0;
    if (strlen(dir) + sizeof "/coil.sock" > sizeof c->path) err = -ENAMETOOLONG;
    if (!err && mkdir(dir, 0700) != 0 && errno != EEXIST) err = -errno;
    if (!err && chmod(dir, 0700) != 0) err = -errno;
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    snprintf(a.sun_path, sizeof a.sun_path, "%s", c->path);
    if (!err && (c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0) err = -errno;
    if (!err && connect(c->fd, (struct sockaddr *)&a, sizeof a) == 0) {
        err = -EADDRINUSE; /* another live coil answers here */
    } else if (!err) {
        close(c->fd); /* a failed connect leaves the socket unusable */
        unlink(c->path); /* a dead process's: this data directory is ours now */
        if ((c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0) err = -errno;
    }
    bool bound = !err && bind(c->fd, (struct sockaddr *)&a, sizeof a) == 0;
    if (!err && !bound) err = -errno;
    if (!err && chmod(c->path, 0600) != 0) err = -errno;
    if (!err && listen(c->fd, 8) != 0) err = -errno;
    if (!err && pipe2(c->stop_pipe, O_CLOEXEC) != 0) err = -errno;
    if (!err) {
        sigset_t all, old;
        sigfillset(&all);
        pthread_sigmask(SIG_BLOCK, &all, &old); /* signals are for the server */
        int rc = pthread_create(&c->thread, NULL, ctl_main, c);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        if (rc) err = -rc;
    }
    if (err) {
        fprintf(stderr, "coil serve: control socket %s: %s\n", c->path, strerror(-err));
        if (c->fd >= 0) close(c->fd);
        if (bound) unlink(c->path);
        if (c->stop_pipe[0] >= 0) close(c->stop_pipe[0]), close(c->stop_pipe[1]);
        free(c);
        return err;
    }
    *out = c;
    return 0;
}

void app_ctl_stop(app_ctl *c) {
    if (!c) return;
    ssize_t w = write(c->stop_pipe[1], "x", 1);
    (void)w;
    pthread_join(c->thread, NULL);
    close(c->fd);
    close(c->stop_pipe[0]);
    close(c->stop_pipe[1]);
    unlink(c->path);
    free(c);
}

/* ------------------------------------------------------------------ GET /debug/tasks */

static bool loopback(const char *addr) {
    return strncmp(addr, "127.", 4) == 0 || strcmp(addr, "::1") == 0 ||
           strcmp(addr, "::ffff:127.0.0.1") == 0;
}

typedef struct snapshot_call {
    char *json;
    int err;
} snapshot_call;

static void *take_snapshot(void *arg) {
    snapshot_call *c = arg;
    c->err = coil_tasks_snapshot(&c->json, ANSWER_TIMEOUT);
    return NULL;
}

static int debug_tasks(coil_http_request *req, coil_http_response *res, void *arg) {
    (void)arg;
    if (!loopback(coil_http_client_addr(req)))
        return coil_http_respond_error(res, 403, "/debug/tasks answers on loopback only");
    snapshot_call call = {0};
    /* Off the loop: this loop lists its own tasks while the thread waits. */
    int err = coil_to_thread(take_snapshot, &call, NULL);
    if (!err) err = call.err;
    if (err) {
        free(call.json);
        return err;
    }
    err = coil_http_respond(res, 200, "application/json", call.json, strlen(call.json));
    free(call.json);
    return err;
}

int app_debug_mount(coil_http_server *srv) {
    return coil_http_route(srv, "GET", "/debug/tasks", debug_tasks, NULL, 0);
}
