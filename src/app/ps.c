/* app/ps.c: coil ps [--data DIR | PID] [--tree] [--json]: the tasks of a
 * running coil serve, from outside, like `python -m asyncio ps PID`.
 *
 * It asks the server's control socket (introspect.h) and prints, for each
 * loop, each task's id, name, state, where it is parked (the file:line of
 * the call it suspended in), its age and its busy time. --tree nests each
 * task under the task whose group owns it. */
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "app/commands.h"
#include "app/introspect.h"

static void usage(FILE *out) {
    fprintf(out,
            "usage: coil ps [--data DIR | PID] [--tree] [--json]\n"
            "\n"
            "Lists the tasks of a running coil serve, loop by loop: id, name, state, where\n"
            "each is parked (file:line), age and busy time. It asks the server's socket,\n"
            "DIR/run/coil.sock (default DIR: ./var), which only the server's user may open.\n"
            "With a PID, the data directory is the one that process was started with.\n"
            "\n"
            "  --tree   each task under the task whose group owns it\n"
            "  --json   the server's answer as it is\n");
}

/* The data directory of process `pid`: its --data (or --store sqlite:DIR)
 * argument, else ./var, against its working directory. */
static int data_of_pid(const char *pid, char *out, size_t cap) {
    char path[64], cwd[PATH_MAX], args[8192];
    snprintf(path, sizeof path, "/proc/%s/cmdline", pid);
    FILE *f = fopen(path, "r");
    if (!f) return -errno;
    size_t n = fread(args, 1, sizeof args - 1, f);
    fclose(f);
    args[n] = '\0';
    snprintf(path, sizeof path, "/proc/%s/cwd", pid);
    ssize_t k = readlink(path, cwd, sizeof cwd - 1);
    if (k < 0) return -errno;
    cwd[k] = '\0';
    const char *data = "./var";
    for (size_t at = 0; at < n;) {
        const char *arg = args + at, *next = arg + strlen(arg) + 1;
        if (next < args + n && strcmp(arg, "--data") == 0) data = next;
        if (next < args + n && strcmp(arg, "--store") == 0 && strncmp(next, "sqlite:", 7) == 0)
            data = next + 7;
        at += strlen(arg) + 1;
    }
    int len = data[0] == '/' ? snprintf(out, cap, "%s", data)
                             : snprintf(out, cap, "%s/%s", cwd, data);
    return len < 0 || (size_t)len >= cap ? -ENAMETOOLONG : 0;
}

/* The server's answer to "tasks" (malloc'd), or NULL with a message. */
static char *ask(const char *data) {
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    app_ctl_path(data, a.sun_path, sizeof a.sun_path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        fprintf(stderr, "coil ps: %s: %s (is a coil serve running on %s?)\n", a.sun_path,
                strerror(errno), data);
        if (fd >= 0) close(fd);
        return NULL;
    }
    ssize_t w = write(fd, "tasks\n", 6);
    size_t len = 0, cap = 1 << 16;
    char *buf = malloc(cap);
    for (ssize_t r; w == 6 && buf && (r = read(fd, buf + len, cap - len - 1)) > 0;) {
        len += (size_t)r;
        if (cap - len < 4096) {
            char *more = realloc(buf, cap *= 2);
            if (!more) {
                free(buf);
                buf = NULL;
            }
            buf = more;
        }
    }
    close(fd);
    if (!buf) return NULL;
    buf[len] = '\0';
    return buf;
}

static const char *str(const json_t *o, const char *k, const char *dflt) {
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : dflt;
}

static void print_task(const json_t *t, int depth) {
    char name[64];
    snprintf(name, sizeof name, "%*s%s", 2 * depth, "", str(t, "name", "?"));
    printf("  %6lld  %-28s %-8s %-44s %10.1f %10.3f\n",
           (long long)json_integer_value(json_object_get(t, "id")), name, str(t, "state", "?"),
           str(t, "parked_at", "-"), json_number_value(json_object_get(t, "age_ms")),
           json_number_value(json_object_get(t, "busy_ms")));
}

/* The tasks whose parent is `parent` (0: the roots, and orphans whose
 * parent is not listed), each followed by its own. */
static void print_tree(const json_t *tasks, json_int_t parent, int depth) {
    size_t i;
    const json_t *t;
    json_array_foreach(tasks, i, t) {
        const json_t *p = json_object_get(t, "parent");
        json_int_t of = json_is_integer(p) ? json_integer_value(p) : 0;
        if (of && parent == 0) { /* an orphan counts as a root */
            bool listed = false;
            size_t k;
            const json_t *u;
            json_array_foreach(tasks, k, u) listed |= json_integer_value(json_object_get(u, "id")) == of;
            if (!listed) of = 0;
        }
        if (of != parent || depth > 32) continue;
        print_task(t, depth);
        print_tree(tasks, json_integer_value(json_object_get(t, "id")), depth + 1);
    }
}

int coil_cmd_ps(int argc, char **argv) {
    const char *data = "./var", *pid = NULL;
    bool tree = false, raw = false;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(argv[i], "--tree") == 0) {
            tree = true;
        } else if (strcmp(argv[i], "--json") == 0) {
            raw = true;
        } else if (strcmp(argv[i], "--data") == 0 && i + 1 < argc) {
            data = argv[++i];
        } else if (argv[i][0] != '-' && strspn(argv[i], "0123456789") == strlen(argv[i])) {
            pid = argv[i];
        } else {
            fprintf(stderr, "coil ps: bad argument '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    char dir[PATH_MAX];
    if (pid) {
        int err = data_of_pid(pid, dir, sizeof dir);
        if (err) {
            fprintf(stderr, "coil ps: process %s: %s\n", pid, strerror(-err));
            return 1;
        }
        data = dir;
    }
    char *answer = ask(data);
    if (!answer) return 1;
    if (raw) {
        fputs(answer, stdout);
        free(answer);
        return 0;
    }
    json_t *doc = json_loads(answer, 0, NULL);
    free(answer);
    if (!json_is_object(doc) || json_object_get(doc, "error")) {
        fprintf(stderr, "coil ps: the server said: %s\n", str(doc, "error", "nothing readable"));
        json_decref(doc);
        return 1;
    }
    printf("coil process %lld\n", (long long)json_integer_value(json_object_get(doc, "pid")));
    size_t i;
    const json_t *loop;
    json_array_foreach(json_object_get(doc, "loops"), i, loop) {
        const json_t *tasks = json_object_get(loop, "tasks");
        printf("\nloop %lld: %lld tasks alive, %lld spawned\n",
               (long long)json_integer_value(json_object_get(loop, "loop")),
               (long long)json_integer_value(json_object_get(loop, "tasks_alive")),
               (long long)json_integer_value(json_object_get(loop, "spawned")));
        printf("  %6s  %-28s %-8s %-44s %10s %10s\n", "ID", "NAME", "STATE", "PARKED AT",
               "AGE ms", "BUSY ms");
        if (tree) {
            print_tree(tasks, 0, 0);
        } else {
            size_t k;
            const json_t *t;
            json_array_foreach(tasks, k, t) print_task(t, 0);
        }
    }
    const json_t *id;
    json_array_foreach(json_object_get(doc, "unanswered"), i, id)
        printf("\nloop %lld: no answer within 500 ms: it is stalled (see the watchdog's "
               "report on stderr)\n",
               (long long)json_integer_value(id));
    json_decref(doc);
    return 0;
}
