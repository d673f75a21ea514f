/* coil/io.h: streams, listeners and DNS as coroutine calls over libuv.
 *
 * A coil_stream is a connected byte stream: a TCP connection or a Unix
 * socket (or any connected socket or pipe handed to coil_stream_open()). A
 * coil_listener accepts such streams. Both belong to the loop of the task
 * that created them and are used only by that loop's tasks.
 *
 * Reading. Each stream has a read buffer. Data arrives into it while some
 * task wants data, and keeps arriving until the buffer holds the stream's
 * read limit (coil_stream_set_read_limit, 64 KiB by default); then the
 * stream stops reading from the socket, which pushes back on the peer
 * through TCP's own flow control, and resumes once the buffer has drained
 * to half the limit. A call that needs more bytes than the limit to
 * complete (read_exactly, readline, peek_at_least with a large size)
 * raises the limit to what it needs, for as long as it waits.
 *
 * The reading calls never lose data: a call that fails, is cancelled or
 * times out consumes nothing, and every byte that arrived stays buffered
 * for the next call. Buffered bytes are delivered before an end of stream
 * or a read error. Only one task may wait to read a stream at a time;
 * a second gets -EBUSY.
 *
 * Writing. coil_stream_write() hands the bytes to the kernel when it can
 * and copies the rest into the stream's write queue, so the caller's buffer
 * is free again as soon as the call returns. A write is all or nothing: it
 * either accepts every byte or none. Back-pressure happens before that: if
 * the queue holds more than the high-water mark (64 KiB by default), the
 * writer first waits until the peer has drained it to the low-water mark
 * (16 KiB). So the queue never holds more than the high-water mark plus
 * one write; callers that stream large bodies write them in pieces of about
 * the high-water mark. Writes of several tasks never interleave.
 *
 * Cancellation and deadlines. Every call that says "Suspends." is a
 * suspension point: once the task is cancelled or its deadline scope has
 * expired, it returns -ECANCELED or -ETIMEDOUT promptly, and the stream
 * stays consistent: an interrupted read consumed nothing, an interrupted
 * write sent nothing (writes are never torn), an interrupted connect leaves
 * no stream behind.
 *
 * Closing. coil_stream_close() first waits for queued writes to reach the
 * kernel, then closes, and returns after libuv has released the handle;
 * the stream's memory is freed then, and the handle must not be used
 * again. Tasks parked on the stream in other calls are woken with -EPIPE
 * at once, and calls made while the close is in progress return -EPIPE.
 *
 * Errors are negative errno values (libuv's codes are negative errno on
 * Unix): -ECONNRESET when the peer reset the connection, -ECONNREFUSED,
 * -EPIPE after a local close, -ENOBUFS for a line longer than the caller's
 * buffer, -ENODATA for a stream that ended in the middle of
 * coil_stream_read_exactly(). DNS failures are mapped to errno values too
 * (see coil_getaddrinfo).
 *
 * SIGPIPE. Writing to a connection the peer has closed raises SIGPIPE,
 * which kills a process by default. The first stream or listener created
 * sets SIGPIPE to SIG_IGN if it is still at SIG_DFL, so that such writes
 * return -EPIPE instead; a handler the program installed is left alone.
 */
#ifndef COIL_IO_H
#define COIL_IO_H

#include "coil/runtime.h"

#include <netdb.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct coil_stream coil_stream;
typedef struct coil_listener coil_listener;
/* <netdb.h> declares it only for POSIX builds (-std=gnu11, or
 * _POSIX_C_SOURCE >= 200112L); a strict -std=c11 program gets the name. */
struct addrinfo;

/* ------------------------------------------------------------------ reading */

/* Reads up to `len` bytes into `buf`. Returns the number of bytes read (> 0),
 * 0 at the end of the stream, or a negative error (-ECONNRESET, -EPIPE if the
 * stream is being closed, -EBUSY if another task is reading it, the
 * interruption). Waits only when nothing is buffered. Suspends. */
COIL_EXTERN ssize_t coil_stream_read(coil_stream *s, void *buf, size_t len);

/* Reads exactly `len` bytes into `buf`. Returns `len`; 0 if the stream ended
 * before a single byte arrived (a clean end between frames); -ENODATA if it
 * ended after some but not all of them; or another negative error. On every
 * error nothing is consumed: the bytes that did arrive stay buffered (see
 * coil_stream_buffered). May buffer up to `len` bytes, beyond the read limit.
 * Suspends. */
COIL_EXTERN ssize_t coil_stream_read_exactly(coil_stream *s, void *buf, size_t len);

/* Reads one line: the bytes up to and including the next '\n', copied into
 * `buf` and NUL-terminated. Returns the line's length including the '\n'
 * (excluding the NUL). At the end of the stream it returns the last,
 * unterminated line (no '\n' at its end), then 0. Returns -ENOBUFS if no
 * '\n' occurs in the first `size - 1` bytes; those bytes stay buffered. A
 * read error or interruption also leaves a partial line buffered. `size`
 * must be at least 2 (-EINVAL). Suspends. */
COIL_EXTERN ssize_t coil_stream_readline(coil_stream *s, char *buf, size_t size);

/* Zero-copy reading, for parsers. Waits until at least one byte is buffered,
 * then points `*ptr` at every buffered byte and stores their count in `*len`
 * without consuming them. Returns 0; at the end of the stream, 0 with
 * `*len` == 0; or a negative error. `*ptr` stays valid until the next call
 * on the stream other than coil_stream_consume() and coil_stream_buffered().
 * Suspends. */
COIL_EXTERN int coil_stream_peek(coil_stream *s, const char **ptr, size_t *len);

/* Same, waiting until at least `min` bytes are buffered (a parser that needs
 * more than it has: pass what it has plus one; 0 counts as 1). Returns 0
 * with `*len` >= min; 0 with `*len` < min when the stream ended first (the
 * bytes left, maybe none); or a negative error, including a read error that
 * came before `min` bytes did. Raises the read limit to `min` while it
 * waits. Suspends. */
COIL_EXTERN int coil_stream_peek_at_least(coil_stream *s, size_t min, const char **ptr,
                                          size_t *len);

/* Drops the first `n` buffered bytes (n <= coil_stream_buffered(s)), which
 * may resume reading from the socket. Does not suspend. */
COIL_EXTERN void coil_stream_consume(coil_stream *s, size_t n);

/* Bytes buffered and not yet consumed. Does not suspend. */
COIL_EXTERN size_t coil_stream_buffered(const coil_stream *s);

/* Sets the read limit: the stream stops reading from the socket once this
 * many bytes are buffered (default 64 KiB). Returns 0 or -EINVAL for 0.
 * Does not suspend. */
COIL_EXTERN int coil_stream_set_read_limit(coil_stream *s, size_t bytes);

/* ------------------------------------------------------------------ writing */

/* Writes all `len` bytes of `buf` (see "Writing" above). The caller keeps
 * `buf`; it may reuse it as soon as the call returns. Returns 0 once every
 * byte was handed to the kernel or copied into the write queue, or a
 * negative error with nothing written: -EPIPE if the stream is being
 * closed, an earlier write's error (write errors are sticky: -EPIPE or
 * -ECONNRESET once the peer is gone), the interruption of the wait for the
 * queue to drain, or -ENOMEM (in the rare case that part of the data had
 * already gone out, the error sticks: the stream is broken). Suspends. */
COIL_EXTERN int coil_stream_write(coil_stream *s, const void *buf, size_t len);

/* Writes the `n` buffers of `iov` in order, as one all-or-nothing write. The
 * caller keeps `iov` and the memory it points to. Returns as
 * coil_stream_write(). Suspends. */
COIL_EXTERN int coil_stream_writev(coil_stream *s, const struct iovec *iov, size_t n);

/* Waits until everything queued has been handed to the kernel. Returns 0,
 * the first write error, -EPIPE, or the interruption (the queued data stays
 * queued). Suspends. */
COIL_EXTERN int coil_stream_flush(coil_stream *s);

/* Flushes, then shuts down the write side: the peer reads the end of the
 * stream; this side can still read. Later writes fail with -EPIPE. Returns
 * 0, -EALREADY if called before, a write error, or the interruption (the
 * shutdown then still happens once the queue drains). Suspends. */
COIL_EXTERN int coil_stream_shutdown(coil_stream *s);

/* The stream's socket, into *fd, for calls libuv has no wrapper for
 * (sendfile, socket options). It stays the stream's: do not close it, and
 * do not read or write it while the stream has I/O queued. Returns 0 or
 * -EBADF (closed). Does not suspend. */
COIL_EXTERN int coil_stream_fileno(coil_stream *s, int *fd);

/* Bytes queued and not yet handed to the kernel. Does not suspend. */
COIL_EXTERN size_t coil_stream_write_queue_size(const coil_stream *s);

/* Sets the write queue's high- and low-water marks (defaults 64 KiB and
 * 16 KiB). Returns 0, or -EINVAL unless low <= high. Does not suspend. */
COIL_EXTERN int coil_stream_set_write_limits(coil_stream *s, size_t high, size_t low);

/* ------------------------------------------------------------------ closing */

/* Closes the stream and frees it. First waits for the write queue to drain,
 * like coil_stream_flush(); if that fails or is interrupted (a cancelled
 * task does not wait at all), the unsent data is discarded. Then closes
 * the socket and waits until libuv is done with it: this part cannot be
 * interrupted and never waits for the peer. Tasks parked on `s` return
 * -EPIPE. Returns 0 if everything written was delivered to the kernel, or
 * the error that made it discard data (the interruption, or a write error
 * such as -EPIPE or -ECONNRESET); `s` is freed either way and must not be
 * used again by any task. If a close is already in progress, returns
 * -EPIPE at once and frees nothing (the first close does). Suspends. */
COIL_EXTERN int coil_stream_close(coil_stream *s);

/* Aborts the connection: discards unsent data and closes at once; a TCP
 * peer sees a reset (-ECONNRESET) instead of an orderly end. Frees `s` as
 * coil_stream_close() does. Returns 0, or -EPIPE as coil_stream_close().
 * Suspends (uninterruptibly, for the few moments libuv needs to release
 * the handle). */
COIL_EXTERN int coil_stream_close_reset(coil_stream *s);

/* ------------------------------------------------------------------ sockets */

/* Wraps a connected socket (TCP or Unix) or a pipe. On success the stream
 * owns `fd` and closes it; on failure the caller keeps it. Stores the new
 * stream, owned by the caller who must close it, in *out. Returns 0,
 * -EINVAL if fd is not a socket or pipe, or -ENOMEM. Does not suspend. */
COIL_EXTERN int coil_stream_open(int fd, coil_stream **out);

/* Turns Nagle's algorithm off (on = true, the default for TCP streams coil
 * creates) or on. Returns 0, or -ENOTSUP for a stream that is not TCP. Does
 * not suspend. */
COIL_EXTERN int coil_stream_set_nodelay(coil_stream *s, bool on);

/* Stores the peer's address in `addr` (`*len` in: its size; out: the
 * address's length). Returns 0 or a negative error. Does not suspend. */
COIL_EXTERN int coil_stream_peername(const coil_stream *s, struct sockaddr *addr,
                                     socklen_t *len);

/* Resolves `host` (a name or an address literal) and connects to each of its
 * addresses in turn until one accepts. Stores the new stream, owned by the
 * caller who must close it, in *out; TCP_NODELAY is on. Returns 0, the last
 * address's error (-ECONNREFUSED, -ENETUNREACH, ...), a DNS error (see
 * coil_getaddrinfo), or the interruption, which stops the attempts at once
 * and leaves nothing open. Suspends. */
COIL_EXTERN int coil_connect_tcp(const char *host, uint16_t port, coil_stream **out);

/* Connects to the Unix socket at `path`. Returns 0 with *out as above,
 * -ENAMETOOLONG, -ENOENT, -ECONNREFUSED, or the interruption. Suspends. */
COIL_EXTERN int coil_connect_unix(const char *path, coil_stream **out);

/* ------------------------------------------------------------------ listeners */

enum {
    COIL_LISTEN_REUSEPORT = 1 << 0, /* SO_REUSEPORT: several listeners, for
                                       example one per loop, share the port
                                       and the kernel balances connections */
    COIL_LISTEN_IPV6ONLY = 1 << 1,  /* an IPv6 listener takes no IPv4 */
};

/* Listens on `host` (an address literal such as "127.0.0.1", "::" or
 * "0.0.0.0" for every interface, or a name, whose first address is used)
 * and `port` (0: the kernel picks one, see coil_listener_port). `backlog` 0
 * means 511. `flags` are COIL_LISTEN_*. Stores the listener, owned by the
 * caller who must close it, in *out. Returns 0, -EADDRINUSE, -EACCES, a DNS
 * error, or the interruption. Suspends only to resolve a host name. */
COIL_EXTERN int coil_listen_tcp(const char *host, uint16_t port, int backlog, int flags,
                                coil_listener **out);

/* Listens on a Unix socket at `path`, which must not exist (-EADDRINUSE):
 * coil does not remove files it did not create. Closing the listener
 * removes the socket file. `backlog` 0 means 511. Returns as
 * coil_listen_tcp(). Does not suspend. */
COIL_EXTERN int coil_listen_unix(const char *path, int backlog, coil_listener **out);

/* Waits for a connection and stores it, as a new stream owned by the caller
 * who must close it, in *out (TCP_NODELAY on for TCP). Connections that
 * arrive while no task is accepting wait in the kernel's backlog; each call
 * takes one, in arrival order, and several tasks may accept at once.
 * Returns 0, an accept error (-EMFILE, ...; the listener stays usable),
 * -EPIPE if the listener is being closed, or the interruption. Suspends. */
COIL_EXTERN int coil_listener_accept(coil_listener *l, coil_stream **out);

/* The port a TCP listener is bound to (useful after listening on port 0), or
 * a negative error (-EINVAL for a Unix listener). Does not suspend. */
COIL_EXTERN int coil_listener_port(const coil_listener *l);

/* Stops listening, wakes the tasks parked in accept with -EPIPE, and frees
 * the listener after libuv has released it; it must not be used again.
 * Connections not yet accepted are dropped. Returns 0, or -EPIPE at once if
 * a close is already in progress. Suspends (uninterruptibly, briefly). */
COIL_EXTERN int coil_listener_close(coil_listener *l);

/* ------------------------------------------------------------------ DNS */

/* getaddrinfo(3) without blocking the loop: names are resolved on libuv's
 * thread pool (apart from coil's pool for blocking calls), while address
 * literals are converted at once, without a thread. `hints` may be NULL;
 * `service` may be NULL or a port number or service name. On success
 * stores a list in *res that the caller owns and frees with
 * coil_freeaddrinfo(). Returns 0; -ENOENT when the name does not exist or
 * has no address of the requested kind; -EAGAIN for a temporary failure of
 * the name server; -EINVAL for bad hints or an unknown service; -ENOMEM;
 * -EIO for other resolver failures; or the interruption (the lookup is
 * abandoned: its thread finishes it and the result is dropped). Suspends. */
COIL_EXTERN int coil_getaddrinfo(const char *host, const char *service,
                                 const struct addrinfo *hints, struct addrinfo **res);

/* Frees a list from coil_getaddrinfo(). NULL is fine. Does not suspend. */
COIL_EXTERN void coil_freeaddrinfo(struct addrinfo *ai);

/* ------------------------------------------------------------------ call sites */

/* Site-recording wrappers (see runtime.h). */
#ifndef COIL_BUILDING
#define coil_stream_read(s, b, n) COIL__AT(coil_stream_read(s, b, n))
#define coil_stream_read_exactly(s, b, n) COIL__AT(coil_stream_read_exactly(s, b, n))
#define coil_stream_readline(s, b, n) COIL__AT(coil_stream_readline(s, b, n))
#define coil_stream_peek(s, p, n) COIL__AT(coil_stream_peek(s, p, n))
#define coil_stream_peek_at_least(s, m, p, n) COIL__AT(coil_stream_peek_at_least(s, m, p, n))
#define coil_stream_write(s, b, n) COIL__AT(coil_stream_write(s, b, n))
#define coil_stream_writev(s, v, n) COIL__AT(coil_stream_writev(s, v, n))
#define coil_stream_flush(s) COIL__AT(coil_stream_flush(s))
#define coil_stream_shutdown(s) COIL__AT(coil_stream_shutdown(s))
#define coil_stream_close(s) COIL__AT(coil_stream_close(s))
#define coil_stream_close_reset(s) COIL__AT(coil_stream_close_reset(s))
#define coil_connect_tcp(h, p, o) COIL__AT(coil_connect_tcp(h, p, o))
#define coil_connect_unix(p, o) COIL__AT(coil_connect_unix(p, o))
#define coil_listen_tcp(h, p, b, f, o) COIL__AT(coil_listen_tcp(h, p, b, f, o))
#define coil_listener_accept(l, o) COIL__AT(coil_listener_accept(l, o))
#define coil_listener_close(l) COIL__AT(coil_listener_close(l))
#define coil_getaddrinfo(h, s, hi, r) COIL__AT(coil_getaddrinfo(h, s, hi, r))
#endif

#ifdef __cplusplus
}
#endif
#endif /* COIL_IO_H */
