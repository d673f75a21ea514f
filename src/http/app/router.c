/* http/app/router.c: routes, matching, and the dispatch of one request.
 *
 * Routes live in a trie of path segments. A pattern such as
 * "/titles/{id}/cover" is split at '/' into the segments "titles", "{id}"
 * and "cover"; each node of the trie is one segment and has three kinds of
 * children:
 *
 *     literal children   sorted by text, found by binary search
 *     one {param} child  matches any non-empty segment
 *     one {rest...} child matches the whole remainder of the path (the
 *                        rest of this segment and every later one)
 *
 * A node where a pattern ends holds that pattern's routes, one per method.
 * Parameter names belong to the route, not to the node, so "/a/{id}" and
 * "/a/{name}/b" share the {param} node and still name their values as
 * their patterns say.
 *
 * Matching walks the request path segment by segment, trying at each level
 * the literal child, then the {param} child, then the {rest...} child, and
 * backs up when a branch ends without a route for the method. So a literal
 * wins over a parameter at the same level ("/titles/new" over
 * "/titles/{id}"), and a more specific branch never hides a route that a
 * less specific one has. Every node reached where some pattern ends makes
 * the path "known": if none of them has the method, the answer is 405 with
 * their methods in the Allow header; if no node is reached, 404. HEAD
 * runs the GET route where no HEAD route exists (the core sends no body
 * for HEAD), and Allow lists HEAD wherever it lists GET.
 *
 * The request's task takes the route's name ("GET /titles/{id}"), so that
 * task dumps and the watchdog's stall reports say which route it runs.
 *
 * Captured values point into the request's path while matching; the
 * route's names are paired with them and copied into the request
 * (coil__http_request_add_param) once a route is chosen.
 *
 * The router is built before the server runs and never changes after, so
 * every loop reads it without locks.
 */
#include "http/app/router.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct coil__http_node {
    char *text;                   /* the literal segment (malloc'd); NULL for
                                     the root and the parameter children */
    size_t len;
    coil__http_node **lits;       /* literal children, sorted by text */
    size_t nlits;
    coil__http_node *param;       /* the {name} child, or NULL */
    coil__http_node *rest;        /* the {name...} child, or NULL */
    coil__http_route *routes;     /* the routes of patterns ending here */
    size_t nroutes;
};

/* ------------------------------------------------------------------ trie */

static void node_free(coil__http_node *n) {
    if (!n) return;
    for (size_t i = 0; i < n->nlits; i++) node_free(n->lits[i]);
    free(n->lits);
    node_free(n->param);
    node_free(n->rest);
    for (size_t i = 0; i < n->nroutes; i++)
        for (size_t j = 0; j < n->routes[i].nnames; j++) free(n->routes[i].names[j]);
    free(n->routes);
    free(n->text);
    free(n);
}

static int seg_cmp(const char *a, size_t alen, const char *b, size_t blen) {
    int c = memcmp(a, b, alen < blen ? alen : blen);
    if (c) return c;
    return alen < blen ? -1 : alen > blen;
}

/* Index of the literal child `seg`, or where it would go (*found false). */
static size_t lit_search(const coil__http_node *n, const char *seg, size_t len, bool *found) {
    size_t lo = 0, hi = n->nlits;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = seg_cmp(n->lits[mid]->text, n->lits[mid]->len, seg, len);
        if (c == 0) {
            *found = true;
            return mid;
        }
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    *found = false;
    return lo;
}

/* The literal child `seg` of `n`, created if missing. NULL on ENOMEM. */
static coil__http_node *lit_child(coil__http_node *n, const char *seg, size_t len) {
    bool found;
    size_t at = lit_search(n, seg, len, &found);
    if (found) return n->lits[at];
    coil__http_node **lits = realloc(n->lits, (n->nlits + 1) * sizeof *lits);
    if (!lits) return NULL;
    n->lits = lits;
    coil__http_node *c = calloc(1, sizeof *c);
    if (!c || !(c->text = strndup(seg, len))) {
        free(c);
        return NULL;
    }
    c->len = len;
    memmove(&lits[at + 1], &lits[at], (n->nlits - at) * sizeof *lits);
    lits[at] = c;
    n->nlits++;
    return c;
}

/* The {param} or {rest...} child of `n` (*slot), created if missing. */
static coil__http_node *wild_child(coil__http_node **slot) {
    if (!*slot) *slot = calloc(1, sizeof **slot);
    return *slot;
}

/* ------------------------------------------------------------------ patterns */

static bool name_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '_' || c == '-';
}

/* A segment "{name}" or "{name...}": stores the name's bounds and whether
 * it is a rest parameter. Returns 1 for a parameter, 0 for a literal, or
 * -EINVAL for a malformed segment (braces anywhere else, a bad name). */
static int parse_param(const char *seg, size_t len, size_t *name_len, bool *rest) {
    if (!memchr(seg, '{', len) && !memchr(seg, '}', len)) return 0;
    if (len < 3 || seg[0] != '{' || seg[len - 1] != '}') return -EINVAL;
    size_t n = len - 2;
    *rest = n > 3 && memcmp(seg + 1 + n - 3, "...", 3) == 0;
    if (*rest) n -= 3;
    if (n == 0) return -EINVAL;
    for (size_t i = 0; i < n; i++)
        if (!name_char(seg[1 + i])) return -EINVAL;
    *name_len = n;
    return 1;
}

static bool method_valid(const char *m) {
    if (strcmp(m, "*") == 0) return true;
    size_t n = strlen(m);
    if (n == 0 || n >= sizeof(((coil__http_route *)0)->method)) return false;
    for (size_t i = 0; i < n; i++)
        if (!(m[i] >= 'A' && m[i] <= 'Z') && m[i] != '-' && m[i] != '_') return false;
    return true;
}

/* The node where `pattern` ends (created as needed), with the parameter
 * names in `r`. Returns 0, -EINVAL or -ENOMEM. Nodes created before a
 * failure stay, empty: harmless, since only nodes with routes match. */
static int walk_pattern(coil__http_router *rt, const char *pattern, coil__http_route *r,
                        coil__http_node **out) {
    if (pattern[0] != '/') return -EINVAL;
    coil__http_node *n = rt->root;
    const char *seg = pattern + 1;
    for (;;) {
        const char *slash = strchr(seg, '/');
        size_t len = slash ? (size_t)(slash - seg) : strlen(seg);
        if (len == 0 && slash) return -EINVAL; /* "//": only a final "/" may be empty */
        size_t name_len = 0;
        bool rest = false;
        int kind = parse_param(seg, len, &name_len, &rest);
        if (kind < 0) return kind;
        if (kind == 0) {
            n = lit_child(n, seg, len);
        } else {
            if (rest && slash) return -EINVAL; /* {rest...} must come last */
            if (r->nnames == COIL__HTTP_MAX_PARAMS) return -EINVAL;
            for (size_t i = 0; i < r->nnames; i++)
                if (strlen(r->names[i]) == name_len && !memcmp(r->names[i], seg + 1, name_len))
                    return -EINVAL; /* the same name twice */
            if (!(r->names[r->nnames] = strndup(seg + 1, name_len))) return -ENOMEM;
            r->nnames++;
            n = wild_child(rest ? &n->rest : &n->param);
        }
        if (!n) return -ENOMEM;
        if (!slash) break;
        seg = slash + 1;
    }
    *out = n;
    return 0;
}

int coil__http_router_add(coil__http_router *rt, const char *method, const char *pattern,
                          coil_http_handler fn, void *arg, unsigned flags) {
    if (!rt || !method || !pattern || !fn || !method_valid(method) ||
        (flags & ~COIL_HTTP_BLOCKING))
        return -EINVAL;
    coil__http_route r = {.fn = fn, .arg = arg, .flags = flags};
    memcpy(r.method, method, strlen(method) + 1);
    snprintf(r.label, sizeof r.label, "%s %s", method, pattern);
    coil__http_node *n;
    int err = walk_pattern(rt, pattern, &r, &n);
    if (err) goto fail;
    err = -EEXIST;
    for (size_t i = 0; i < n->nroutes; i++)
        if (strcmp(n->routes[i].method, method) == 0) goto fail;
    err = -ENOMEM;
    coil__http_route *routes = realloc(n->routes, (n->nroutes + 1) * sizeof *routes);
    if (!routes) goto fail;
    n->routes = routes;
    routes[n->nroutes++] = r;
    return 0;
fail:
    for (size_t i = 0; i < r.nnames; i++) free(r.names[i]);
    return err;
}

int coil__http_router_use(coil__http_router *r, coil_http_middleware mw, void *arg) {
    if (!r || !mw) return -EINVAL;
    if (r->nmws == r->cap_mws) {
        size_t cap = r->cap_mws ? r->cap_mws * 2 : 8;
        coil__http_mw *m = realloc(r->mws, cap * sizeof *m);
        if (!m) return -ENOMEM;
        r->mws = m;
        r->cap_mws = cap;
    }
    r->mws[r->nmws++] = (coil__http_mw){mw, arg};
    return 0;
}

int coil__http_router_own(coil__http_router *r, void *p) {
    if (r->nowned == r->cap_owned) {
        size_t cap = r->cap_owned ? r->cap_owned * 2 : 4;
        void **o = realloc(r->owned, cap * sizeof *o);
        if (!o) return -ENOMEM;
        r->owned = o;
        r->cap_owned = cap;
    }
    r->owned[r->nowned++] = p;
    return 0;
}

/* ------------------------------------------------------------------ router */

coil__http_router *coil__http_router_new(const coil_http_config *cfg) {
    coil__http_router *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    if (!(r->root = calloc(1, sizeof *r->root))) goto fail;
    /* The default chain, outermost first: the ID is known to everything
     * inside, and the log sees the final status of whatever answered. */
    if (coil__http_router_use(r, coil_http_mw_request_id, NULL)) goto fail;
    if ((!cfg || cfg->access_log) && coil__http_router_use(r, coil_http_mw_access_log, NULL))
        goto fail;
    if (coil__http_router_use(r, coil_http_mw_timing, NULL)) goto fail;
    return r;
fail:
    coil__http_router_free(r);
    return NULL;
}

void coil__http_router_free(coil__http_router *r) {
    if (!r) return;
    node_free(r->root);
    free(r->mws);
    for (size_t i = 0; i < r->nowned; i++) free(r->owned[i]);
    free(r->owned);
    free(r);
}

/* ------------------------------------------------------------------ matching */

/* What a match collects. */
typedef struct match {
    const char *method;           /* the request's method */
    bool head;                    /* it is HEAD: GET routes apply too */
    const coil__http_route *found; /* the chosen route */
    struct {
        const char *p;            /* into the request path */
        size_t len;
    } caps[COIL__HTTP_MAX_PARAMS]; /* values captured along the current branch */
    size_t ncaps;
    bool known;                   /* some pattern ends at this path */
    char allow[256];              /* methods seen at such nodes, "GET, HEAD, ..." */
    size_t allow_len;
} match;

/* Adds `m` to the Allow list unless it is there; drops what does not fit
 * (the list then names fewer methods, which is harmless). */
static void allow_add(match *mt, const char *m) {
    size_t n = strlen(m);
    for (const char *p = mt->allow; (p = strstr(p, m)) != NULL; p += n)
        if ((p == mt->allow || p[-1] == ' ') && (p[n] == ',' || p[n] == '\0')) return;
    size_t need = (mt->allow_len ? 2 : 0) + n;
    if (mt->allow_len + need >= sizeof mt->allow) return;
    if (mt->allow_len) {
        memcpy(mt->allow + mt->allow_len, ", ", 2);
        mt->allow_len += 2;
    }
    memcpy(mt->allow + mt->allow_len, m, n + 1);
    mt->allow_len += n;
}

static const coil__http_route *route_for(const coil__http_node *n, const char *method) {
    for (size_t i = 0; i < n->nroutes; i++)
        if (strcmp(n->routes[i].method, method) == 0) return &n->routes[i];
    return NULL;
}

/* The path ended at `n`: picks its route for the method, or records its
 * methods for Allow. Returns true when a route was chosen. */
static bool at_end(const coil__http_node *n, match *mt) {
    if (n->nroutes == 0) return false;
    mt->known = true;
    const coil__http_route *r = route_for(n, mt->method);
    if (!r && mt->head) r = route_for(n, "GET");
    if (!r) r = route_for(n, "*");
    if (r) {
        mt->found = r;
        return true;
    }
    for (size_t i = 0; i < n->nroutes; i++) {
        allow_add(mt, n->routes[i].method);
        if (strcmp(n->routes[i].method, "GET") == 0) allow_add(mt, "HEAD");
    }
    return false;
}

/* Matches the segments from `seg` (NULL: the path ended) below `n`.
 * Returns true once a route is found; mt->caps then holds its values. */
static bool walk(const coil__http_node *n, const char *seg, match *mt) {
    if (!seg) return at_end(n, mt);
    const char *slash = strchr(seg, '/');
    size_t len = slash ? (size_t)(slash - seg) : strlen(seg);
    const char *next = slash ? slash + 1 : NULL;
    bool found;
    size_t at = lit_search(n, seg, len, &found);
    if (found && walk(n->lits[at], next, mt)) return true;
    if (mt->ncaps == COIL__HTTP_MAX_PARAMS) return false;
    if (n->param && len > 0) {
        mt->caps[mt->ncaps].p = seg;
        mt->caps[mt->ncaps].len = len;
        mt->ncaps++;
        if (walk(n->param, next, mt)) return true;
        mt->ncaps--;
    }
    if (n->rest) {
        mt->caps[mt->ncaps].p = seg;
        mt->caps[mt->ncaps].len = strlen(seg);
        mt->ncaps++;
        if (at_end(n->rest, mt)) return true;
        mt->ncaps--;
    }
    return false;
}

/* ------------------------------------------------------------------ dispatch */

int coil__http_dispatch(coil__http_router *r, coil_http_request *req, coil_http_response *res) {
    match mt;
    mt.method = coil_http_method(req);
    mt.head = strcmp(mt.method, "HEAD") == 0;
    mt.found = NULL;
    mt.ncaps = 0;
    mt.known = false;
    mt.allow[0] = '\0';
    mt.allow_len = 0;
    const char *path = coil_http_path(req);
    if (path[0] == '/') walk(r->root, path + 1, &mt);

    coil__http_chain c = {.router = r, .req = req, .res = res, .route = mt.found};
    if (mt.found) {
        coil_task_set_name(coil_current(), mt.found->label);
        for (size_t i = 0; i < mt.found->nnames && i < mt.ncaps; i++) {
            const char *name = mt.found->names[i];
            int err = coil__http_request_add_param(req, name, strlen(name), mt.caps[i].p,
                                                   mt.caps[i].len);
            if (err) return err;
        }
    } else if (mt.known) {
        c.allow = mt.allow;
    }
    return coil__http_chain_run(&c);
}

/* Answers for a handler that returned without responding. */
static int answer_for(coil_http_response *res, int err) {
    if (coil_http_responded(res)) return err;
    if (err < 0) {
        coil_http_respond_error(res, 500, "internal server error");
        return err;
    }
    return coil_http_respond(res, 204, NULL, NULL, 0);
}

int coil__http_invoke(coil__http_chain *c) {
    if (!c->route) {
        if (!c->allow) return coil_http_respond_error(c->res, 404, "not found");
        int err = coil_http_set_header(c->res, "Allow", c->allow);
        if (err) return err;
        return coil_http_respond_error(c->res, 405, "method not allowed");
    }
    const coil__http_route *r = c->route;
    int err;
    if (r->flags & COIL_HTTP_BLOCKING) {
        err = coil__http_run_blocking(r->fn, r->arg, c->req, c->res);
        if (err == -EAGAIN && !coil_http_responded(c->res))
            return coil_http_respond_error(c->res, 503, "thread pool busy");
    } else {
        err = r->fn(c->req, c->res, r->arg);
    }
    return answer_for(c->res, err);
}

/* ------------------------------------------------------------------ public */

int coil_http_route(coil_http_server *srv, const char *method, const char *pattern,
                    coil_http_handler fn, void *arg, unsigned flags) {
    if (!srv) return -EINVAL;
    return coil__http_router_add(coil__http_server_router(srv), method, pattern, fn, arg, flags);
}

int coil_http_use(coil_http_server *srv, coil_http_middleware mw, void *arg) {
    if (!srv) return -EINVAL;
    return coil__http_router_use(coil__http_server_router(srv), mw, arg);
}
