/* tests/io/test_dns.c: coil_getaddrinfo and name-based connect/listen.
 * Lookups of names run on libuv's thread pool: COIL_TEST_THREADS.
 * Only "localhost" and address literals are resolved, so no test depends on
 * a name server. */
#include "test.h"

#include <arpa/inet.h>
#include <netinet/in.h>

static bool is_loopback(const struct sockaddr *sa) {
    if (sa->sa_family == AF_INET)
        return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) == 127;
    if (sa->sa_family == AF_INET6)
        return IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)sa)->sin6_addr);
    return false;
}

static uint16_t port_of_addr(const struct sockaddr *sa) {
    if (sa->sa_family == AF_INET) return ntohs(((const struct sockaddr_in *)sa)->sin_port);
    return ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
}

static coil_result localhost_main(void *arg) {
    (void)arg;
    struct addrinfo hints = {0};
    hints.ai_socktype = SOCK_STREAM;
    struct addrinfo *res = NULL;
    ASSERT_EQ(coil_getaddrinfo("localhost", "8080", &hints, &res), 0);
    ASSERT(res != NULL);
    int n = 0;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next, n++) {
        ASSERT_EQ(ai->ai_socktype, SOCK_STREAM);
        ASSERT(is_loopback(ai->ai_addr));
        ASSERT_EQ(port_of_addr(ai->ai_addr), 8080);
    }
    ASSERT(n >= 1);
    coil_freeaddrinfo(res);
    return coil_ok(NULL);
}

TEST(resolves_localhost) { RUN_MAIN(localhost_main, NULL); }

static coil_result literals_main(void *arg) {
    (void)arg;
    struct addrinfo hints = {0};
    hints.ai_socktype = SOCK_STREAM;
    struct addrinfo *res = NULL;
    ASSERT_EQ(coil_getaddrinfo("127.0.0.1", "80", &hints, &res), 0);
    ASSERT(res != NULL && res->ai_next == NULL);
    ASSERT_EQ(res->ai_family, AF_INET);
    ASSERT_EQ(port_of_addr(res->ai_addr), 80);
    coil_freeaddrinfo(res);
    ASSERT_EQ(coil_getaddrinfo("::1", NULL, &hints, &res), 0);
    ASSERT_EQ(res->ai_family, AF_INET6);
    ASSERT(is_loopback(res->ai_addr));
    coil_freeaddrinfo(res);
    coil_freeaddrinfo(NULL);
    return coil_ok(NULL);
}

TEST(resolves_address_literals) { RUN_MAIN(literals_main, NULL); }

/* Errors read as errno values, not raw resolver codes. These fail in the
 * resolver itself, without asking a name server. */
static coil_result errors_main(void *arg) {
    (void)arg;
    struct addrinfo hints = {0};
    hints.ai_flags = AI_NUMERICHOST;
    struct addrinfo *res = (struct addrinfo *)1;
    ASSERT_EQ(coil_getaddrinfo("localhost", NULL, &hints, &res), -ENOENT);
    ASSERT(res == NULL);
    hints.ai_flags = 0;
    hints.ai_socktype = SOCK_STREAM;
    ASSERT_EQ(coil_getaddrinfo("localhost", "no-such-service-name", &hints, &res), -EINVAL);
    hints.ai_family = 12345;
    ASSERT_EQ(coil_getaddrinfo("127.0.0.1", NULL, &hints, &res), -EINVAL);
    return coil_ok(NULL);
}

TEST(resolver_errors_are_errno) { RUN_MAIN(errors_main, NULL); }

typedef struct lookup {
    int err;
    struct addrinfo *res;
} lookup;

static coil_result do_lookup(void *arg) {
    lookup *l = arg;
    l->err = coil_getaddrinfo("localhost", "http", NULL, &l->res);
    return coil_ok(NULL);
}

/* A lookup interrupted while it is queued or a thread works on it returns
 * at once; its answer is freed when it comes (the leak checker would see
 * it otherwise). The lookup may win the race and finish before the cancel
 * lands (the loop polls I/O between tasks when a run takes long, as the
 * first use of libuv's pool does), so it is tried until the cancel wins. */
static coil_result cancel_lookup_main(void *arg) {
    (void)arg;
    int cancelled = 0;
    for (int i = 0; i < 20 && !cancelled; i++) {
        lookup l = {1, NULL};
        coil_task *t = coil_spawn(do_lookup, &l);
        ASSERT_EQ(coil_yield(), 0); /* it starts the lookup and parks */
        coil_cancel(t);
        ASSERT_EQ(coil_join(t, NULL), 0);
        if (l.err == -ECANCELED) {
            ASSERT(l.res == NULL);
            cancelled++;
        } else {
            ASSERT_EQ(l.err, 0);
            ASSERT(l.res != NULL);
            coil_freeaddrinfo(l.res);
        }
    }
    ASSERT_EQ(cancelled, 1);
    /* Expired deadlines stop a lookup before it starts. */
    coil_scope sc;
    coil_scope_enter(&sc, coil_now());
    struct addrinfo *res = NULL;
    ASSERT_EQ(coil_getaddrinfo("localhost", NULL, NULL, &res), -ETIMEDOUT);
    ASSERT_EQ(coil_scope_exit(&sc), -ETIMEDOUT);
    ASSERT(res == NULL);
    return coil_ok(NULL);
}

TEST(cancelled_lookup_returns_at_once) { RUN_MAIN(cancel_lookup_main, NULL); }

static coil_result accept_one(void *arg) {
    coil_listener *l = arg;
    coil_stream *s;
    ASSERT_EQ(coil_listener_accept(l, &s), 0);
    ASSERT_EQ(coil_stream_write(s, "hi", 2), 0);
    ASSERT_EQ(coil_stream_close(s), 0);
    return coil_ok(NULL);
}

/* Listen and connect by name. */
static coil_result by_name_main(void *arg) {
    (void)arg;
    coil_listener *l;
    ASSERT_EQ(coil_listen_tcp("localhost", 0, 0, 0, &l), 0);
    int port = coil_listener_port(l);
    ASSERT(port > 0);
    coil_task *t = coil_spawn(accept_one, l);
    coil_stream *c;
    ASSERT_EQ(coil_connect_tcp("localhost", (uint16_t)port, &c), 0);
    char buf[4];
    ASSERT_EQ(coil_stream_read_exactly(c, buf, 2), 2);
    ASSERT(memcmp(buf, "hi", 2) == 0);
    ASSERT_EQ(coil_join(t, NULL), 0);
    ASSERT_EQ(coil_stream_close(c), 0);
    ASSERT_EQ(coil_listener_close(l), 0);
    return coil_ok(NULL);
}

TEST(listen_and_connect_by_name) { RUN_MAIN(by_name_main, NULL); }
