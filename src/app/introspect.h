/* app/introspect.h: a running coil serve's tasks, from outside.
 *
 * coil_tasks_snapshot() (runtime.h) gives every loop's tasks as JSON. This
 * serves it two ways:
 *   - GET /debug/tasks, to clients on loopback only;
 *   - a Unix socket, DATA/run/coil.sock, in a directory of mode 0700 and
 *     itself of mode 0600, so that only the process's owner can ask. A
 *     thread of its own answers it: a client writes "tasks\n" and reads the
 *     JSON to the end. `coil ps` is that client (ps.c).
 */
#ifndef COIL_APP_INTROSPECT_H
#define COIL_APP_INTROSPECT_H

#include <coil/coil.h>

typedef struct app_ctl app_ctl;

/* The socket's path under a data directory, into out. */
void app_ctl_path(const char *data_dir, char *out, size_t cap);

/* Creates DATA/run/coil.sock (replacing a stale one) and starts its
 * thread. Returns 0 or a negative errno (with a message on stderr). */
int app_ctl_start(const char *data_dir, app_ctl **out);

/* Stops the thread and removes the socket. NULL is fine. */
void app_ctl_stop(app_ctl *c);

/* GET /debug/tasks. */
int app_debug_mount(coil_http_server *srv);

#endif
