/* echo_server: a raw TCP server in the shape of asyncio.start_server, which
 * echoes every line it is sent, until SIGTERM or Ctrl-C.
 *
 *     ./echo_server [PORT]            (default 8888, on 127.0.0.1)
 *     printf 'hello\nbye\n' | nc 127.0.0.1 8888
 *
 * - One task per connection (the client_connected_cb of start_server),
 *   reading line by line with coil_stream_readline() and writing back with
 *   coil_stream_write(): both suspend only that task.
 * - "bye" ends a connection; a line longer than the buffer is refused.
 * - Stopping: a signal handler may not touch the loop, so it writes a byte
 *   to a pipe, and a task reads the pipe as a coil_stream (the self-pipe
 *   trick, as a coroutine). It closes the listener: the acceptor's next
 *   accept returns -EPIPE, the connections finish, and main returns 0.
 */
#define _POSIX_C_SOURCE 200809L /* sigaction under -std=c11 */
#include <coil/coil.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int stop_pipe[2];

static void on_signal(int sig) {
    (void)sig;
    ssize_t ignored = write(stop_pipe[1], "x", 1); /* async-signal-safe */
    (void)ignored;
}

static coil_result handle_client(void *arg) {
    coil_stream *s = arg;
    char line[1024];
    ssize_t n;
    while ((n = coil_stream_readline(s, line, sizeof line)) > 0) {
        if (strncmp(line, "bye", 3) == 0) break;
        if (coil_stream_write(s, line, (size_t)n) != 0) break; /* the client left */
    }
    if (n == -ENOBUFS) coil_stream_write(s, "line too long\n", 14);
    coil_stream_close(s);
    return coil_ok(NULL);
}

/* Waits for the signal's byte, then closes the listener. */
static coil_result stopper(void *arg) {
    coil_listener *l = arg;
    coil_stream *p;
    if (coil_stream_open(stop_pipe[0], &p) == 0) {
        char b;
        coil_stream_read(p, &b, 1);
        coil_stream_close(p);
    }
    coil_listener_close(l);
    return coil_ok(NULL);
}

static coil_result serve(void *arg) {
    int port = *(int *)arg;
    coil_listener *l;
    int err = coil_listen_tcp("127.0.0.1", (uint16_t)port, 0, 0, &l);
    if (err) {
        fprintf(stderr, "echo_server: cannot listen on port %d: %s\n", port, coil_strerror(err));
        return coil_fail(err);
    }
    printf("echo_server: listening on 127.0.0.1:%d\n", coil_listener_port(l));
    fflush(stdout);
    coil_task *stop = coil_spawn(stopper, l);
    coil_group clients; /* every connection's task, awaited before main returns */
    coil_group_init(&clients);
    coil_stream *s;
    while (coil_listener_accept(l, &s) == 0)
        if (!coil_group_spawn(&clients, handle_client, s)) coil_stream_close(s);
    coil_group_wait(&clients);
    coil_group_destroy(&clients);
    if (stop) coil_join(stop, NULL);
    printf("echo_server: stopped\n");
    return coil_ok(NULL);
}

int main(int argc, char **argv) {
    int port = argc > 1 ? atoi(argv[1]) : 8888;
    if (pipe(stop_pipe) != 0) return 1;
    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    coil_result r;
    return coil_run(serve, &port, &r) == 0 && r.err == 0 ? 0 : 1;
}
