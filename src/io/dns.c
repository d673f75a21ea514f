/* io/dns.c: name resolution without blocking the loop.
 *
 * getaddrinfo(3) blocks, so names go to libuv's thread pool through
 * uv_getaddrinfo(); coil's own pool for user blocking calls is not involved
 * (DESIGN.md: separate pools for separate needs). Address literals ("::1",
 * "127.0.0.1") and numeric services need no lookup: getaddrinfo() with
 * AI_NUMERICHOST|AI_NUMERICSERV answers them on the loop's thread without
 * touching the network or a name service, which spares the common
 * "connect to 127.0.0.1" a round trip through a thread.
 *
 * A lookup's request is malloc'd, not on the task's stack, because it may
 * outlive the task's wait: libuv cannot stop a lookup a thread has started.
 * When the waiting task is interrupted it clears `task`, tries uv_cancel()
 * (which works while the lookup is still queued) and returns; dns_cb then
 * finds nobody waiting and frees the answer and the request. Exactly one of
 * the task and dns_cb frees the request: dns_cb if `task` is NULL when it
 * runs, the task otherwise.
 *
 * Resolver errors (EAI_*) are not errno values; they are mapped to the
 * nearest errno so that they read like every other coil error.
 */
#include "io/internal.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

/* A lookup in flight. */
typedef struct dns_req {
    uv_getaddrinfo_t req;  /* libuv's request */
    coil__wait wait;       /* what the task parks on */
    coil_task *task;       /* the waiting task, NULL once it gave up */
    bool *gave_up;         /* the task's flag, set when it gives up: from
                              then on dns_cb owns (and may free) the request */
    struct addrinfo *res;  /* the answer, until the task takes it */
    int status;            /* libuv's status */
} dns_req;

/* libuv's UV_EAI_* to errno. Other codes (UV_ENOMEM) pass through. */
static int map_uv_eai(int status) {
    switch (status) {
    case 0: return 0;
    case UV_EAI_NONAME:
    case UV_EAI_NODATA:
    case UV_EAI_ADDRFAMILY: return -ENOENT;
    case UV_EAI_AGAIN: return -EAGAIN;
    case UV_EAI_MEMORY: return -ENOMEM;
    case UV_EAI_CANCELED: return -ECANCELED;
    case UV_EAI_OVERFLOW: return -EOVERFLOW;
    case UV_EAI_BADFLAGS:
    case UV_EAI_BADHINTS:
    case UV_EAI_FAMILY:
    case UV_EAI_PROTOCOL:
    case UV_EAI_SERVICE:
    case UV_EAI_SOCKTYPE: return -EINVAL;
    case UV_EAI_FAIL: return -EIO;
    default: return status;
    }
}

/* getaddrinfo(3)'s EAI_* to errno, for the numeric fast path. */
static int map_eai(int rc) {
    switch (rc) {
    case 0: return 0;
    case EAI_NONAME: return -ENOENT;
    case EAI_MEMORY: return -ENOMEM;
    case EAI_SYSTEM: return -errno;
    case EAI_BADFLAGS:
    case EAI_FAMILY:
    case EAI_SERVICE:
    case EAI_SOCKTYPE: return -EINVAL;
    default: return -EIO;
    }
}

static bool all_digits(const char *s) {
    if (!*s) return false;
    for (; *s; s++)
        if (*s < '0' || *s > '9') return false;
    return true;
}

/* The fast path. Returns 0 or a negative error when it answered, 1 when
 * the host needs a real lookup. Does not block. */
static int resolve_numeric(const char *host, const char *service,
                           const struct addrinfo *hints, struct addrinfo **res) {
    if (service && !all_digits(service)) return 1;
    struct addrinfo h = {0};
    if (hints) {
        h.ai_flags = hints->ai_flags;
        h.ai_family = hints->ai_family;
        h.ai_socktype = hints->ai_socktype;
        h.ai_protocol = hints->ai_protocol;
    }
    /* A literal needs no interface check. */
    h.ai_flags = (h.ai_flags & ~AI_ADDRCONFIG) | AI_NUMERICHOST | (service ? AI_NUMERICSERV : 0);
    int rc = getaddrinfo(host, service, &h, res);
    if (rc == EAI_NONAME) return 1;
    return map_eai(rc);
}

static void dns_cb(uv_getaddrinfo_t *req, int status, struct addrinfo *res) {
    dns_req *r = COIL_CONTAINER_OF(req, dns_req, req);
    if (!r->task) { /* abandoned: nobody will read the answer */
        uv_freeaddrinfo(res);
        free(r);
        return;
    }
    r->status = status;
    r->res = res;
    coil__wake(r->task, 0);
}

/* Gives the lookup up; dns_cb frees it. */
static void abandon(dns_req *r) {
    r->task = NULL;
    uv_cancel((uv_req_t *)&r->req);
}

static bool dns_interrupt(coil__wait *w, int err) {
    (void)err;
    dns_req *r = COIL_CONTAINER_OF(w, dns_req, wait);
    *r->gave_up = true; /* before abandon: dns_cb may free r from now on */
    abandon(r);
    return true;
}

int coil_getaddrinfo(const char *host, const char *service, const struct addrinfo *hints,
                     struct addrinfo **res) {
    coil_task *t = coil__running();
    COIL_ASSERT(t != NULL);
    if (!res) return -EINVAL;
    *res = NULL;
    int err = coil__pending_cancel(t);
    if (err) return err;
    err = resolve_numeric(host, service, hints, res);
    if (err <= 0) return err;
    dns_req *r = calloc(1, sizeof *r);
    if (!r) return -ENOMEM;
    bool gave_up = false;
    r->wait.interrupt = dns_interrupt;
    r->task = t;
    r->gave_up = &gave_up;
    /* The first lookup starts libuv's thread pool, whose threads inherit
     * this mask: let them take no process signals, like coil's threads. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    err = uv_getaddrinfo(&t->loop->uv, &r->req, dns_cb, host, service, hints);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (err) {
        free(r); /* a call that fails never fires its callback */
        return map_uv_eai(err);
    }
    err = coil__park(&r->wait);
    if (err) {
        /* Interrupted: r is dns_cb's now, and may be gone. Refused without
         * an interruption: give it up here. */
        if (!gave_up) abandon(r);
        return err;
    }
    err = map_uv_eai(r->status);
    if (err) uv_freeaddrinfo(r->res);
    else *res = r->res;
    free(r);
    return err;
}

void coil_freeaddrinfo(struct addrinfo *ai) {
    if (ai) freeaddrinfo(ai);
}

int coil__resolve_tcp(const char *host, uint16_t port, int flags, struct addrinfo **res) {
    char service[8];
    snprintf(service, sizeof service, "%u", (unsigned)port);
    struct addrinfo hints = {0};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_protocol = IPPROTO_TCP;
    hints.ai_flags = flags;
    return coil_getaddrinfo(host, service, &hints, res);
}
