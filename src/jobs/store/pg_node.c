/* jobs/store/pg_node.c: this process as a node of a PostgreSQL cluster.
 *
 *     node thread (its own connection)          every heartbeat (1 s)
 *     --------------------------------          ---------------------
 *     LISTEN coil_jobs                          renew this node's lease
 *     poll(socket, wake pipe, next beat)        (lease_until = now() + 5 s)
 *     notification -> events -> watchers        rescue: mark lapsed nodes
 *                                               lost; retry their jobs
 *
 * Leases run on the database's clock (now()), so the nodes' clocks need
 * not agree. A node whose lease lapsed is marked lost by whichever node
 * beats next, in the same transaction that takes its running jobs: each
 * is retried at once (state failed, due now) if it has attempts left, else
 * dead with "node lost", or cancelled if a cancel was asked. The tokens of
 * those attempts are cleared, so nothing the lost node writes later lands.
 *
 * A node that finds its own row lost (it was paused, or cut off, past its
 * lease) is a zombie: its attempts are no longer the jobs'. It takes every
 * owned token away, tells its own watchers (events with `lost` set: the
 * scheduler stops those workers), logs it, and registers anew under a new
 * id, so it serves on.
 *
 * After its connection comes back, a node renews its lease at once and
 * rescues nobody for one lease: the others were cut off too, and deserve
 * the time to renew theirs.
 *
 * Notifications a node sent itself are skipped (its writer published them
 * already); SQL enqueues (coil_enqueue) come as node 0.
 */
#include "jobs/store/pg.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { RECONNECT_MAX_MS = 2000, PRUNE_EVERY = 600 /* beats */ };

int coil__pg_node_register(coil__pg *pg, PGconn *c) {
    coil__pg_num lease = coil__pg_n64(pg->lease_ms);
    const char *p[] = {pg->node_name, lease.s};
    int err;
    PGresult *res = coil__pg_exec(c,
                                  "INSERT INTO coil_nodes (name, lease_until)"
                                  " VALUES ($1, now() + $2 * interval '1 millisecond')"
                                  " RETURNING id",
                                  2, p, NULL, NULL, &err);
    if (!res) return err;
    atomic_store(&pg->node_id, coil__pg_int(res, 0, 0));
    PQclear(res);
    return 0;
}

/* ------------------------------------------------------------------ notifications */

/* One notification's events, to this process's watchers. */
static void on_notify(coil__store *s, const char *payload) {
    coil__pg *pg = s->impl;
    json_error_t jerr;
    json_t *root = json_loads(payload, 0, &jerr);
    json_t *events = json_object_get(root, "e");
    json_int_t from = json_integer_value(json_object_get(root, "n"));
    size_t n = json_array_size(events);
    if (!root || !n || from == atomic_load(&pg->node_id)) {
        json_decref(root);
        return;
    }
    coil__job_event *evs = calloc(n, sizeof *evs);
    size_t k = 0;
    for (size_t i = 0; evs && i < n; i++) {
        const char *id = NULL, *kind = NULL, *msg = NULL;
        int state = 0, cancel = 0, attempts = 0, progress = 0;
        json_int_t run_at = 0;
        if (json_unpack(json_array_get(events, i), "[s,i,b,i,i,I,s,s]", &id, &state, &cancel,
                        &attempts, &progress, &run_at, &kind, &msg) != 0 ||
            !coil__job_id_valid(id) || state < 0 || state >= COIL__JOB_NSTATES)
            continue; /* not ours to read: skipped */
        coil__job_event *e = &evs[k++];
        snprintf(e->id, sizeof e->id, "%s", id);
        snprintf(e->kind, sizeof e->kind, "%s", kind);
        snprintf(e->message, sizeof e->message, "%s", msg);
        e->state = (coil__job_state)state;
        e->cancel_requested = cancel;
        e->attempts = attempts;
        e->progress = progress;
        e->run_at = run_at;
    }
    coil__store_publish(s, evs, k);
    free(evs);
    json_decref(root);
}

static void drain_notifies(coil__store *s, PGconn *c) {
    PGnotify *nt;
    while ((nt = PQnotifies(c))) {
        on_notify(s, nt->extra);
        PQfreemem(nt);
    }
}

/* ------------------------------------------------------------------ the heartbeat */

/* This node was declared lost: its attempts are gone. */
static void became_zombie(coil__store *s, PGconn *c) {
    coil__pg *pg = s->impl;
    size_t n;
    coil__pg_owned *gone = coil__pg_disown_all(pg, &n);
    coil__log("job store: this node (%s, id %" PRId64 ") missed its lease; its %zu running "
              "job(s) went to other nodes and are stopped here",
              pg->node_name, atomic_load(&pg->node_id), n);
    coil__job_event *evs = n ? calloc(n, sizeof *evs) : NULL;
    for (size_t i = 0; evs && i < n; i++) {
        snprintf(evs[i].id, sizeof evs[i].id, "%s", gone[i].id);
        evs[i].state = COIL__JOB_RUNNING;
        evs[i].lost = true;
    }
    if (evs) coil__store_publish(s, evs, n);
    free(evs);
    free(gone);
    if (coil__pg_node_register(pg, c) == 0)
        coil__log("job store: this node serves on as id %" PRId64, atomic_load(&pg->node_id));
}

/* Renews the lease, then (if `rescue`) rescues the lapsed nodes' jobs.
 * Returns 0 or a negative errno. */
static int beat(coil__store *s, PGconn *c, bool rescue, bool prune) {
    coil__pg *pg = s->impl;
    coil__pg_num id = coil__pg_n64(atomic_load(&pg->node_id)),
                 lease = coil__pg_n64(pg->lease_ms);
    const char *p[] = {id.s, lease.s};
    int err;
    PGresult *res = coil__pg_exec(c,
                                  "UPDATE coil_nodes SET lease_until = now() + $2 * interval"
                                  " '1 millisecond' WHERE id = $1 AND NOT lost RETURNING id",
                                  2, p, NULL, NULL, &err);
    if (!res) return err;
    bool alive = PQntuples(res) == 1;
    PQclear(res);
    if (!alive) became_zombie(s, c);
    if (prune)
        (void)coil__pg_command(c, "DELETE FROM coil_nodes WHERE lost"
                                  " AND lease_until < now() - interval '1 day'",
                               0, NULL);
    if (!rescue) return 0;
    coil__job_event *evs = NULL;
    size_t n = 0;
    err = coil__pg_command(c, "BEGIN", 0, NULL);
    if (!err) err = coil__pg_rescue(c, 0, &evs, &n);
    if (!err) err = coil__pg_notify(c, atomic_load(&pg->node_id), evs, n);
    if (!err) err = coil__pg_command(c, "COMMIT", 0, NULL);
    if (err) {
        if (PQtransactionStatus(c) != PQTRANS_IDLE) (void)coil__pg_command(c, "ROLLBACK", 0, NULL);
        free(evs);
        return err;
    }
    if (n) {
        coil__log("job store: rescued %zu job(s) of a lost node", n);
        coil__store_publish(s, evs, n);
    }
    free(evs);
    return 0;
}

/* ------------------------------------------------------------------ the thread */

static bool wait_or_stop(coil__pg *pg, int fd, int64_t ms) {
    struct pollfd fds[2] = {{.fd = pg->wake_pipe[0], .events = POLLIN},
                            {.fd = fd, .events = POLLIN}};
    int n = poll(fds, fd >= 0 ? 2 : 1, ms < 0 ? 0 : (int)(ms > 60000 ? 60000 : ms));
    return n > 0 && (fds[0].revents & POLLIN);
}

static PGconn *listen_connect(coil__pg *pg) {
    PGconn *c;
    if (coil__pg_connect(pg->url, "listening", false, &c) != 0) return NULL;
    if (coil__pg_command(c, "LISTEN " COIL__PG_CHANNEL, 0, NULL) != 0) {
        PQfinish(c);
        return NULL;
    }
    return c;
}

static void *node_main(void *arg) {
    coil__store *s = arg;
    coil__pg *pg = s->impl;
    PGconn *c = pg->listen_conn;
    int64_t next_beat = coil__wall_ms() + pg->heartbeat_ms, retry_ms = 100;
    int64_t rescue_from = 0; /* no rescue before this (wall ms) */
    unsigned beats = 0;
    for (;;) {
        if (!c || PQstatus(c) != CONNECTION_OK) {
            PQfinish(c);
            c = pg->listen_conn = listen_connect(pg);
            if (!c) {
                atomic_store(&pg->up, false);
                if (wait_or_stop(pg, -1, retry_ms)) break;
                retry_ms = retry_ms * 2 > RECONNECT_MAX_MS ? RECONNECT_MAX_MS : retry_ms * 2;
                continue;
            }
            retry_ms = 100;
            rescue_from = coil__wall_ms() + pg->lease_ms;
            next_beat = 0; /* renew at once */
        }
        int64_t now = coil__wall_ms();
        if (now >= next_beat) {
            beats++;
            int err = beat(s, c, now >= rescue_from, beats % PRUNE_EVERY == 0);
            atomic_store(&pg->up, err != -ENOTCONN);
            next_beat = now + pg->heartbeat_ms;
        }
        if (wait_or_stop(pg, PQsocket(c), next_beat - coil__wall_ms())) break;
        if (PQconsumeInput(c)) drain_notifies(s, c);
    }
    return NULL;
}

int coil__pg_node_start(coil__store *s) {
    coil__pg *pg = s->impl;
    if (pipe2(pg->wake_pipe, O_CLOEXEC | O_NONBLOCK) != 0) return -errno;
    pg->listen_conn = listen_connect(pg);
    if (!pg->listen_conn) {
        close(pg->wake_pipe[0]);
        close(pg->wake_pipe[1]);
        pg->wake_pipe[0] = pg->wake_pipe[1] = -1;
        return -ENOTCONN;
    }
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int err = pthread_create(&pg->node_thread, NULL, node_main, s);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (err) {
        PQfinish(pg->listen_conn);
        pg->listen_conn = NULL;
        close(pg->wake_pipe[0]);
        close(pg->wake_pipe[1]);
        pg->wake_pipe[0] = pg->wake_pipe[1] = -1;
        return -err;
    }
    pthread_setname_np(pg->node_thread, "coil-pg-node");
    pg->node_started = true;
    return 0;
}

void coil__pg_node_stop(coil__store *s) {
    coil__pg *pg = s->impl;
    if (!pg->node_started) return;
    ssize_t w = write(pg->wake_pipe[1], "x", 1);
    (void)w;
    pthread_join(pg->node_thread, NULL);
    pg->node_started = false;
    PQfinish(pg->listen_conn);
    pg->listen_conn = NULL;
    close(pg->wake_pipe[0]);
    close(pg->wake_pipe[1]);
    pg->wake_pipe[0] = pg->wake_pipe[1] = -1;
}

void coil__pg_node_leave(coil__store *s, PGconn *c) {
    coil__pg *pg = s->impl;
    coil__pg_num id = coil__pg_n64(atomic_load(&pg->node_id));
    const char *p[] = {id.s};
    /* Whatever it still ran (nothing, after a clean stop) goes back now,
     * not one lease later. */
    if (coil__pg_command(c, "BEGIN", 0, NULL) != 0) return;
    coil__job_event *evs = NULL;
    size_t n = 0;
    int err = coil__pg_rescue(c, atomic_load(&pg->node_id), &evs, &n);
    if (!err) err = coil__pg_command(c, "UPDATE coil_nodes SET lost = true WHERE id = $1", 1, p);
    if (!err) err = coil__pg_notify(c, atomic_load(&pg->node_id), evs, n);
    if (!err) err = coil__pg_command(c, "COMMIT", 0, NULL);
    if (err && PQtransactionStatus(c) != PQTRANS_IDLE) (void)coil__pg_command(c, "ROLLBACK", 0, NULL);
    if (!err && n) coil__store_publish(s, evs, n);
    free(evs);
}
