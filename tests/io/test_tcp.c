/* tests/io/test_tcp.c: TCP listeners and connections on 127.0.0.1: echo
 * with 8 MiB each way under back-pressure, end of stream, peer reset,
 * deadlines on accept/read/connect, refused connects, port 0, SO_REUSEPORT,
 * several acceptors, closing a listener. Address literals only, so no
 * thread is involved (DNS is in test_dns.c). */
#include "test.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

static unsigned char pattern(size_t i) { return (unsigned char)((i * 131u) ^ (i >> 9)); }

static coil_listener *listen_local(uint16_t port, int flags) {
    coil_listener *l = NULL;
    ASSERT_EQ(coil_listen_tcp("127.0.0.1", port, 0, flags, &l), 0);
    return l;
}

static uint16_t port_of(coil_listener *l) {
    int port = coil_listener_port(l);
    ASSERT(port > 0 && port < 65536);
    return (uint16_t)port;
}

/* ------------------------------------------------------------------ echo */

enum { TOTAL = 8 * 1024 * 1024, CLIENT_CHUNK = 100 * 1000, ECHO_CHUNK = 64 * 1024 };

typedef struct echo_cfg {
    size_t read_limit;            /* 0: default */
    size_t write_high, write_low; /* 0: default */
} echo_cfg;

static void configure(coil_stream *s, const echo_cfg *cfg) {
    if (cfg->read_limit) ASSERT_EQ(coil_stream_set_read_limit(s, cfg->read_limit), 0);
    if (cfg->write_high)
        ASSERT_EQ(coil_stream_set_write_limits(s, cfg->write_high, cfg->write_low), 0);
}

static size_t high_of(const echo_cfg *cfg) { return cfg->write_high ? cfg->write_high : 64 * 1024; }

typedef struct echo_server {
    coil_listener *l;
    const echo_cfg *cfg;
    size_t echoed;
} echo_server;

/* Echoes one connection until its end, then ends its own side. */
static coil_result echo_serve(void *arg) {
    echo_server *e = arg;
    coil_stream *s;
    ASSERT_EQ(coil_listener_accept(e->l, &s), 0);
    configure(s, e->cfg);
    unsigned char *buf = malloc(ECHO_CHUNK);
    ASSERT(buf != NULL);
    ssize_t n;
    while ((n = coil_stream_read(s, buf, ECHO_CHUNK)) > 0) {
        ASSERT_LE(coil_stream_buffered(s), e->cfg->read_limit ? e->cfg->read_limit : 64 * 1024);
        ASSERT_EQ(coil_stream_write(s, buf, (size_t)n), 0);
        ASSERT_LE(coil_stream_write_queue_size(s), high_of(e->cfg) + ECHO_CHUNK);
        e->echoed += (size_t)n;
    }
    ASSERT_EQ(n, 0);
    free(buf);
    ASSERT_EQ(coil_stream_shutdown(s), 0);
    ASSERT_EQ(coil_stream_close(s), 0);
    return coil_ok(NULL);
}

typedef struct client_writer {
    coil_stream *s;
    const echo_cfg *cfg;
} client_writer;

static coil_result client_write_all(void *arg) {
    client_writer *w = arg;
    unsigned char *chunk = malloc(CLIENT_CHUNK);
    ASSERT(chunk != NULL);
    for (size_t off = 0; off < TOTAL; off += CLIENT_CHUNK) {
        size_t n = TOTAL - off < CLIENT_CHUNK ? TOTAL - off : CLIENT_CHUNK;
        for (size_t i = 0; i < n; i++) chunk[i] = pattern(off + i);
        ASSERT_EQ(coil_stream_write(w->s, chunk, n), 0);
        ASSERT_LE(coil_stream_write_queue_size(w->s), high_of(w->cfg) + CLIENT_CHUNK);
    }
    free(chunk);
    ASSERT_EQ(coil_stream_shutdown(w->s), 0);
    return coil_ok(NULL);
}

static coil_result echo_main(void *arg) {
    const echo_cfg *cfg = arg;
    coil_listener *l = listen_local(0, 0);
    echo_server e = {l, cfg, 0};
    coil_task *srv = coil_spawn(echo_serve, &e);
    coil_stream *c;
    ASSERT_EQ(coil_connect_tcp("127.0.0.1", port_of(l), &c), 0);
    configure(c, cfg);
    client_writer w = {c, cfg};
    coil_task *wt = coil_spawn(client_write_all, &w);
    /* This task reads the echo back and checks every byte. */
    unsigned char *buf = malloc(ECHO_CHUNK);
    ASSERT(buf != NULL);
    size_t got = 0;
    ssize_t n;
    while ((n = coil_stream_read(c, buf, ECHO_CHUNK)) > 0) {
        for (ssize_t i = 0; i < n; i++)
            if (buf[i] != pattern(got + (size_t)i))
                ASSERT_EQ(got + (size_t)i, (size_t)-1); /* report the offset */
        got += (size_t)n;
    }
    ASSERT_EQ(n, 0);
    free(buf);
    ASSERT_EQ(got, TOTAL);
    ASSERT_EQ(coil_join(wt, NULL), 0);
    ASSERT_EQ(coil_join(srv, NULL), 0);
    ASSERT_EQ(e.echoed, TOTAL);
    ASSERT_EQ(coil_stream_close(c), 0);
    ASSERT_EQ(coil_listener_close(l), 0);
    return coil_ok(NULL);
}

TEST(echo_8mib_default_limits) {
    echo_cfg cfg = {0, 0, 0};
    RUN_MAIN(echo_main, &cfg);
}

TEST(echo_8mib_small_limits) {
    echo_cfg cfg = {4096, 8192, 2048};
    RUN_MAIN(echo_main, &cfg);
}

/* ------------------------------------------------------------------ end and reset */

typedef struct one_shot {
    coil_listener *l;
    bool reset; /* answer with a reset instead of "bye" */
} one_shot;

static coil_result one_shot_serve(void *arg) {
    one_shot *o = arg;
    coil_stream *s;
    ASSERT_EQ(coil_listener_accept(o->l, &s), 0);
    char c;
    ASSERT_EQ(coil_stream_read_exactly(s, &c, 1), 1);
    if (o->reset) {
        ASSERT_EQ(coil_stream_close_reset(s), 0);
    } else {
        ASSERT_EQ(coil_stream_write(s, "bye", 3), 0);
        ASSERT_EQ(coil_stream_close(s), 0);
    }
    return coil_ok(NULL);
}

static coil_result end_main(void *arg) {
    bool reset = arg != NULL;
    coil_listener *l = listen_local(0, 0);
    one_shot o = {l, reset};
    coil_task *srv = coil_spawn(one_shot_serve, &o);
    coil_stream *c;
    ASSERT_EQ(coil_connect_tcp("127.0.0.1", port_of(l), &c), 0);
    ASSERT_EQ(coil_stream_write(c, "?", 1), 0);
    char buf[16];
    if (reset) {
        ASSERT_EQ(coil_stream_read(c, buf, sizeof buf), -ECONNRESET);
        ASSERT_EQ(coil_stream_read(c, buf, sizeof buf), -ECONNRESET); /* sticky */
    } else {
        ASSERT_EQ(coil_stream_read_exactly(c, buf, 3), 3);
        ASSERT(memcmp(buf, "bye", 3) == 0);
        ASSERT_EQ(coil_stream_read(c, buf, sizeof buf), 0);
    }
    ASSERT_EQ(coil_join(srv, NULL), 0);
    ASSERT_EQ(coil_stream_close(c), 0);
    ASSERT_EQ(coil_listener_close(l), 0);
    return coil_ok(NULL);
}

TEST(eof_when_peer_closes) { RUN_MAIN(end_main, NULL); }
TEST(peer_reset_gives_econnreset) { RUN_MAIN(end_main, (void *)1); }

/* ------------------------------------------------------------------ deadlines */

static coil_result deadline_accept_main(void *arg) {
    (void)arg;
    coil_listener *l = listen_local(0, 0);
    coil_stream *s = NULL;
    coil_scope sc;
    coil_scope_enter(&sc, coil_now() + COIL_MSEC(20));
    ASSERT_EQ(coil_listener_accept(l, &s), -ETIMEDOUT);
    ASSERT_EQ(coil_scope_exit(&sc), -ETIMEDOUT);
    ASSERT(s == NULL);
    /* The listener still works, and so does a read deadline on TCP. */
    coil_stream *c;
    ASSERT_EQ(coil_connect_tcp("127.0.0.1", port_of(l), &c), 0);
    ASSERT_EQ(coil_listener_accept(l, &s), 0);
    char buf[4];
    coil_scope_enter(&sc, coil_now() + COIL_MSEC(20));
    ASSERT_EQ(coil_stream_read(s, buf, sizeof buf), -ETIMEDOUT);
    ASSERT_EQ(coil_scope_exit(&sc), -ETIMEDOUT);
    ASSERT_EQ(coil_stream_write(c, "ok", 2), 0);
    ASSERT_EQ(coil_stream_read_exactly(s, buf, 2), 2);
    ASSERT_EQ(coil_stream_close(s), 0);
    ASSERT_EQ(coil_stream_close(c), 0);
    ASSERT_EQ(coil_listener_close(l), 0);
    return coil_ok(NULL);
}

TEST(deadline_on_accept_and_read) { RUN_MAIN(deadline_accept_main, NULL); }

/* A plain socket that listens with backlog 0 and never accepts: once its
 * accept queue is full the kernel drops new SYNs, so a connect hangs until
 * its deadline. */
static coil_result deadline_connect_main(void *arg) {
    (void)arg;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ASSERT(fd >= 0);
    struct sockaddr_in sin = {0};
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(bind(fd, (struct sockaddr *)&sin, sizeof sin), 0);
    ASSERT_EQ(listen(fd, 0), 0);
    socklen_t len = sizeof sin;
    ASSERT_EQ(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
    uint16_t port = ntohs(sin.sin_port);
    coil_stream *open[16];
    int nopen = 0, err = 0;
    while (nopen < 16) {
        coil_scope sc;
        coil_scope_enter(&sc, coil_now() + COIL_MSEC(200));
        coil_stream *c = NULL;
        err = coil_connect_tcp("127.0.0.1", port, &c);
        coil_scope_exit(&sc);
        if (err) break;
        open[nopen++] = c;
    }
    ASSERT_EQ(err, -ETIMEDOUT); /* and not stuck: the deadline ended it */
    for (int i = 0; i < nopen; i++) ASSERT_EQ(coil_stream_close(open[i]), 0);
    close(fd);
    return coil_ok(NULL);
}

TEST(deadline_on_connect) { RUN_MAIN(deadline_connect_main, NULL); }

/* ------------------------------------------------------------------ errors and options */

static coil_result refused_main(void *arg) {
    (void)arg;
    /* A port that was just free: bound, then closed. */
    coil_listener *l = listen_local(0, 0);
    uint16_t port = port_of(l);
    ASSERT_EQ(coil_listener_close(l), 0);
    coil_stream *c = NULL;
    ASSERT_EQ(coil_connect_tcp("127.0.0.1", port, &c), -ECONNREFUSED);
    ASSERT(c == NULL);
    return coil_ok(NULL);
}

TEST(connect_to_closed_port_is_refused) { RUN_MAIN(refused_main, NULL); }

static coil_result port_zero_main(void *arg) {
    (void)arg;
    coil_listener *l = listen_local(0, 0);
    uint16_t port = port_of(l);
    /* Taken: a second listener without SO_REUSEPORT fails. */
    coil_listener *dup = NULL;
    ASSERT_EQ(coil_listen_tcp("127.0.0.1", port, 0, 0, &dup), -EADDRINUSE);
    ASSERT(dup == NULL);
    /* The reported port is the one clients reach, and peername agrees. */
    coil_stream *c, *s;
    ASSERT_EQ(coil_connect_tcp("127.0.0.1", port, &c), 0);
    ASSERT_EQ(coil_listener_accept(l, &s), 0);
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    ASSERT_EQ(coil_stream_peername(c, (struct sockaddr *)&ss, &len), 0);
    ASSERT_EQ(ss.ss_family, AF_INET);
    struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
    ASSERT_EQ(ntohs(sin->sin_port), port);
    ASSERT_EQ(ntohl(sin->sin_addr.s_addr), INADDR_LOOPBACK);
    ASSERT_EQ(coil_stream_set_nodelay(s, false), 0);
    ASSERT_EQ(coil_stream_close(s), 0);
    ASSERT_EQ(coil_stream_close(c), 0);
    ASSERT_EQ(coil_listener_close(l), 0);
    ASSERT_EQ(coil_listen_tcp("127.0.0.1", 0, -1, 0, &dup), -EINVAL);
    return coil_ok(NULL);
}

TEST(listener_on_port_zero_reports_port) { RUN_MAIN(port_zero_main, NULL); }

static coil_result reuseport_main(void *arg) {
    (void)arg;
    coil_listener *a = listen_local(0, COIL_LISTEN_REUSEPORT);
    uint16_t port = port_of(a);
    coil_listener *b = NULL;
    ASSERT_EQ(coil_listen_tcp("127.0.0.1", port, 0, COIL_LISTEN_REUSEPORT, &b), 0);
    ASSERT_EQ(port_of(b), port);
    /* Connections land on one or the other; each works. */
    for (int i = 0; i < 4; i++) {
        coil_stream *c, *s = NULL;
        ASSERT_EQ(coil_connect_tcp("127.0.0.1", port, &c), 0);
        ASSERT_EQ(coil_stream_write(c, "r", 1), 0);
        /* Look on both, in turn, for a bounded time. */
        int err = -ETIMEDOUT;
        for (int k = 0; k < 1000 && err == -ETIMEDOUT; k++) {
            coil_scope sc;
            coil_scope_enter(&sc, coil_now() + COIL_MSEC(5));
            err = coil_listener_accept(k % 2 ? b : a, &s);
            coil_scope_exit(&sc);
        }
        ASSERT_EQ(err, 0);
        char ch;
        ASSERT_EQ(coil_stream_read_exactly(s, &ch, 1), 1);
        ASSERT_EQ(ch, 'r');
        ASSERT_EQ(coil_stream_close(s), 0);
        ASSERT_EQ(coil_stream_close(c), 0);
    }
    ASSERT_EQ(coil_listener_close(a), 0);
    ASSERT_EQ(coil_listener_close(b), 0);
    return coil_ok(NULL);
}

TEST(reuseport_allows_two_listeners) { RUN_MAIN(reuseport_main, NULL); }

/* ------------------------------------------------------------------ acceptors */

enum { ACCEPTORS = 3, CLIENTS = 12 };

typedef struct acceptor {
    coil_listener *l;
    int served;
} acceptor;

/* Serves connections until the listener closes. */
static coil_result accept_loop(void *arg) {
    acceptor *a = arg;
    for (;;) {
        coil_stream *s;
        int err = coil_listener_accept(a->l, &s);
        if (err == -EPIPE) break;
        ASSERT_EQ(err, 0);
        char id;
        ASSERT_EQ(coil_stream_read_exactly(s, &id, 1), 1);
        ASSERT_EQ(coil_stream_write(s, &id, 1), 0);
        ASSERT_EQ(coil_stream_close(s), 0);
        a->served++;
    }
    return coil_ok(NULL);
}

static coil_result client_once(void *arg) {
    uintptr_t v = (uintptr_t)arg;
    uint16_t port = (uint16_t)(v >> 8);
    char id = (char)(v & 0xff);
    coil_stream *c;
    ASSERT_EQ(coil_connect_tcp("127.0.0.1", port, &c), 0);
    ASSERT_EQ(coil_stream_write(c, &id, 1), 0);
    char back;
    ASSERT_EQ(coil_stream_read_exactly(c, &back, 1), 1);
    ASSERT_EQ(back, id);
    ASSERT_EQ(coil_stream_close(c), 0);
    return coil_ok(NULL);
}

static coil_result many_acceptors_main(void *arg) {
    (void)arg;
    coil_listener *l = listen_local(0, 0);
    uint16_t port = port_of(l);
    acceptor acc[ACCEPTORS];
    coil_task *at[ACCEPTORS], *ct[CLIENTS];
    for (int i = 0; i < ACCEPTORS; i++) {
        acc[i] = (acceptor){l, 0};
        at[i] = coil_spawn(accept_loop, &acc[i]);
    }
    for (int i = 0; i < CLIENTS; i++)
        ct[i] = coil_spawn(client_once, (void *)(((uintptr_t)port << 8) | (uintptr_t)('a' + i)));
    for (int i = 0; i < CLIENTS; i++) ASSERT_EQ(coil_join(ct[i], NULL), 0);
    /* Closing the listener wakes every parked acceptor with -EPIPE. */
    ASSERT_EQ(coil_listener_close(l), 0);
    int served = 0;
    for (int i = 0; i < ACCEPTORS; i++) {
        ASSERT_EQ(coil_join(at[i], NULL), 0);
        served += acc[i].served;
    }
    ASSERT_EQ(served, CLIENTS);
    return coil_ok(NULL);
}

TEST(several_acceptors_share_a_listener) { RUN_MAIN(many_acceptors_main, NULL); }
