/* lazy_connection: task-locals for a request's id and user, and the lazy
 * connection that two subtasks open twice (seed 004's LazyDbConnection), in
 * C, with its fix.
 *
 * 1. Task-locals are contextvars: a value set in a request's task is seen
 *    by every subtask spawned after it, and a subtask that sets its own
 *    changes nothing for its parent or its siblings.
 * 2. The bug: `if (!conn) conn = connect();`, where connect() suspends (it
 *    waits for the network). Between the test and the assignment, the
 *    other subtask runs, finds conn still NULL, and connects too: two
 *    connections, one of them leaked. Code between two suspension points is
 *    atomic on a coil loop; this code has a suspension point in the middle.
 * 3. The fix: coil_once_get(). The first caller runs the initialiser, the
 *    others wait for it and get the same value.
 *
 *     ./lazy_connection
 */
#include <coil/coil.h>
#include <stdio.h>
#include <stdlib.h>

COIL_LOCAL_KEY(request_id, "request_id");
COIL_LOCAL_KEY(user, "user");

/* ------------------------------------------------------------------ a connection */

typedef struct connection {
    int serial;
} connection;

static int opened;            /* connections made, of either kind */
static connection *all[8];    /* every one, closed at the end */
static int nall;

/* Connecting waits for the network: a suspension point. */
static coil_result connect_db(void *arg) {
    (void)arg;
    int err = coil_sleep(COIL_MSEC(20));
    if (err) return coil_fail(err);
    connection *c = malloc(sizeof *c);
    if (!c || nall == 8) {
        free(c);
        return coil_fail(-ENOMEM);
    }
    c->serial = ++opened;
    all[nall++] = c;
    return coil_ok(c);
}

/* The bug: check, suspend, assign. */
static connection *lazy_conn;

static connection *get_lazy(void) {
    if (!lazy_conn) {
        coil_result r = connect_db(NULL); /* suspends: the sibling runs now */
        if (r.err) return NULL;
        lazy_conn = r.value;              /* overwrites the sibling's: it leaks */
    }
    return lazy_conn;
}

/* The fix. */
static coil_once once_conn;

static connection *get_once(void) {
    void *c = NULL;
    return coil_once_get(&once_conn, connect_db, NULL, &c) == 0 ? c : NULL;
}

/* ------------------------------------------------------------------ a request */

static coil_result subtask(void *arg) {
    connection *(*get)(void) = *(connection * (**)(void)) arg;
    const char *id = coil_local_get(&request_id); /* inherited from the request */
    connection *c = get();
    printf("  subtask of %s for %s uses connection #%d\n", id, (const char *)coil_local_get(&user),
           c ? c->serial : 0);
    coil_local_set(&user, "someone else"); /* its own: the parent's is untouched */
    return coil_ok(NULL);
}

static void request(const char *id, connection *(*get)(void)) {
    coil_local_set(&request_id, (void *)id);
    coil_local_set(&user, "ada");
    coil_group g;
    coil_group_init(&g);
    coil_group_spawn(&g, subtask, &get);
    coil_group_spawn(&g, subtask, &get);
    coil_group_wait(&g);
    coil_group_destroy(&g);
    printf("  the request's user is still %s\n", (const char *)coil_local_get(&user));
}

static coil_result main_task(void *arg) {
    (void)arg;
    printf("lazy, checked then assigned:\n");
    request("req-1", get_lazy);
    printf("connections opened: %d (one too many)\n", opened);
    opened = 0;
    printf("coil_once:\n");
    coil_once_init(&once_conn);
    request("req-2", get_once);
    printf("connections opened: %d\n", opened);
    for (int i = 0; i < nall; i++) free(all[i]);
    return coil_ok(NULL);
}

int main(void) { return coil_run(main_task, NULL, NULL) == 0 ? 0 : 1; }
