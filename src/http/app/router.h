/* http/app/router.h: what the application side's files share.
 *
 * internal.h is the contract between the server core and the application
 * side; this header is the application side's own:
 *
 *   router.c      routes (a trie of path segments), registration,
 *                 coil__http_dispatch(), and the chain's last step: the
 *                 handler, or 404/405;
 *   middleware.c  the chain runner (coil_http_next) and the shipped
 *                 middleware: request IDs, timing, access log;
 *   blocking.c    COIL_HTTP_BLOCKING handlers on the thread pool;
 *   static.c      static files under a root directory;
 *   metrics.c     GET /metrics.
 *
 * One dispatch. coil__http_dispatch() matches the request to a route,
 * builds a coil__http_chain on the stack of the request's task and makes it
 * that task's current chain (a task-local value, so that coil_http_next(),
 * which gets only the request, finds it, and concurrent requests on one
 * loop never see each other's chains). coil_http_next() runs middleware
 * number `next`, which calls coil_http_next() again, and so on; past the
 * last middleware it runs the route (coil__http_invoke). The router itself
 * is immutable once the server runs, so every loop reads it without locks.
 */
#ifndef COIL_HTTP_ROUTER_H
#define COIL_HTTP_ROUTER_H

#include "http/internal.h"

/* At most this many {params} in one pattern. */
#define COIL__HTTP_MAX_PARAMS 16

/* One handler registered for a method at a path. */
typedef struct coil__http_route {
    char method[24];              /* "GET", ... or "*" for any */
    coil_http_handler fn;         /* the handler and its argument */
    void *arg;
    unsigned flags;               /* COIL_HTTP_BLOCKING */
    char label[48];               /* "GET /titles/{id}", cut to fit: the name
                                     the request's task takes, so that task
                                     dumps and stall reports name the route */
    char *names[COIL__HTTP_MAX_PARAMS]; /* the pattern's parameter names, in
                                     order (malloc'd); the last one is the
                                     {name...} rest when the pattern has it */
    size_t nnames;
} coil__http_route;

/* One middleware of the chain. */
typedef struct coil__http_mw {
    coil_http_middleware fn;
    void *arg;
} coil__http_mw;

typedef struct coil__http_node coil__http_node;

struct coil__http_router {
    coil__http_node *root;        /* the trie; the root stands for "/" */
    coil__http_mw *mws;           /* the chain, outermost first (malloc'd) */
    size_t nmws, cap_mws;
    void **owned;                 /* memory freed with the router: static
                                     mounts' state (malloc'd array) */
    size_t nowned, cap_owned;
};

/* The state of one dispatch; lives on the dispatching task's stack. */
typedef struct coil__http_chain {
    const coil__http_router *router;
    coil_task *task;              /* the task that dispatches */
    coil_http_request *req;
    coil_http_response *res;
    const coil__http_route *route; /* the match, NULL for 404/405 */
    const char *allow;            /* methods for the 405's Allow header;
                                     NULL: 404 */
    size_t next;                  /* next middleware to run */
    bool ran;                     /* the route (or 404/405) has run */
    bool timing;                  /* the timing middleware is active */
    coil_time timing_start;       /* when it started */
    struct coil__http_chain *outer; /* the task's previous current chain */
} coil__http_chain;

/* router.c: the chain's last step. Runs the route's handler (on the pool
 * for blocking routes) and answers for it if it did not (500 after an
 * error, 204 otherwise), or answers 404/405. Returns what the handler
 * returned. Suspends. */
int coil__http_invoke(coil__http_chain *c);
/* router.c: keeps `p` until the router is freed. Returns 0 or -ENOMEM. */
int coil__http_router_own(coil__http_router *r, void *p);
/* router.c: coil_http_route() on a router. */
int coil__http_router_add(coil__http_router *r, const char *method, const char *pattern,
                          coil_http_handler fn, void *arg, unsigned flags);
/* router.c: coil_http_use() on a router. */
int coil__http_router_use(coil__http_router *r, coil_http_middleware mw, void *arg);

/* middleware.c: makes `c` the task's current chain and runs it from the
 * first middleware; restores the previous chain after. Suspends. */
int coil__http_chain_run(coil__http_chain *c);
/* middleware.c: the running task's current chain, or NULL. */
coil__http_chain *coil__http_chain_current(void);

#endif
