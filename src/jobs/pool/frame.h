/* jobs/pool/frame.h: the frames a pool's supervisor and its workers exchange.
 *
 * Every message on the socketpair is one frame: a fixed 16-byte header,
 * then `length` bytes of payload. Integers are little-endian whatever the
 * machine, so that the decoder can be fuzzed from plain byte strings.
 *
 *      0      1      2             4                   8                  16
 *     +------+------+-------------+-------------------+------------------+
 *     | 0xC1 | type | flags (0)   | payload length    | job id           |
 *     +------+------+-------------+-------------------+------------------+
 *
 * Types, with who sends them and what their payload holds:
 *
 *   HELLO     worker: ready to work     u32 pid
 *   RUN       supervisor: run a job     u64 max_address_space, u32
 *                                       max_cpu_seconds, u16 kind length,
 *                                       u32 attempt, u16 label length,
 *                                       kind, label, then the job's payload
 *   CANCEL    supervisor: stop job id   nothing
 *   PROGRESS  worker: job id progress   u8 percent, message
 *   RESULT    worker: job id is done    i32 status, u16 content-type
 *                                       length, u16 error length, content
 *                                       type, error message, result bytes
 *
 * Decoding never trusts a length: a header is rejected unless the magic,
 * type and flags are right and the payload fits the caller's limit, and a
 * payload is rejected unless every field it announces lies inside it. The
 * views it produces point into the caller's buffer; nothing is copied.
 */
#ifndef COIL_JOBS_FRAME_H
#define COIL_JOBS_FRAME_H

#include "coil/io.h"
#include "coil/jobs.h"

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

enum {
    COIL__FRAME_HEADER = 16,             /* header bytes */
    COIL__FRAME_MAGIC = 0xC1,            /* first byte of every frame */
    COIL__FRAME_MAX = 64 * 1024 * 1024,  /* largest payload either side accepts */
    COIL__FRAME_RUN_FIXED = 20,          /* RUN payload before the kind */
    COIL__FRAME_RESULT_FIXED = 8,        /* RESULT payload before the strings */
    COIL__FRAME_LABEL_MAX = 255,         /* RUN: a job's label, bytes */
};

typedef enum coil__frame_type {
    COIL__FRAME_HELLO = 1,
    COIL__FRAME_RUN = 2,
    COIL__FRAME_CANCEL = 3,
    COIL__FRAME_PROGRESS = 4,
    COIL__FRAME_RESULT = 5,
} coil__frame_type;

/* A decoded header. */
typedef struct coil__frame_hdr {
    uint8_t type;    /* coil__frame_type */
    uint32_t length; /* payload bytes that follow */
    uint64_t id;     /* the job the frame is about, 0 for HELLO */
} coil__frame_hdr;

/* A RUN payload, viewed in place. */
typedef struct coil__frame_run {
    uint64_t max_address_space; /* coil_job_opts fields, 0: none */
    uint32_t max_cpu_seconds;
    const char *kind;           /* kind_len bytes, not NUL-terminated */
    size_t kind_len;
    uint32_t attempt;           /* 1 for the first; 0: unknown */
    const char *label;          /* label_len bytes (the store's job id), may be 0 */
    size_t label_len;
    const uint8_t *payload;     /* the job's bytes */
    size_t payload_len;
} coil__frame_run;

/* A RESULT payload, viewed in place. */
typedef struct coil__frame_result {
    int32_t status;             /* the handler's return value */
    const char *content_type;   /* ctype_len bytes */
    size_t ctype_len;
    const char *error;          /* error_len bytes */
    size_t error_len;
    const uint8_t *data;        /* the result bytes */
    size_t data_len;
} coil__frame_result;

/* Writes a header into `buf`. */
void coil__frame_header_encode(uint8_t buf[COIL__FRAME_HEADER], coil__frame_type type,
                               uint32_t length, uint64_t id);

/* Decodes the `len` bytes at `buf` as a header. Returns 0; -EAGAIN if fewer
 * than COIL__FRAME_HEADER bytes are given (a truncated header); -EPROTO for
 * a bad magic, type or flags; -EMSGSIZE if the payload is over `max`. */
int coil__frame_header_decode(const uint8_t *buf, size_t len, uint32_t max, coil__frame_hdr *out);

/* Decodes one whole frame at the start of `buf`: its header into *hdr and
 * a pointer to its payload into *payload. Returns the bytes the frame
 * takes (header and payload), -EAGAIN if `buf` holds only part of it, or
 * the header's error. */
ssize_t coil__frame_decode(const uint8_t *buf, size_t len, uint32_t max, coil__frame_hdr *hdr,
                           const uint8_t **payload);

/* Payload encoders. Each fills `fixed` (at least the type's fixed size)
 * and `iov` (at least 4 entries) with the payload's pieces in order, and
 * returns the number of iov entries used; the payload length is the sum
 * of their sizes, or -EMSGSIZE if it would be over COIL__FRAME_MAX. The
 * iov entries point at `fixed` and at the caller's strings and bytes. */
int coil__frame_run_encode(uint8_t fixed[COIL__FRAME_RUN_FIXED], struct iovec *iov,
                           const coil__frame_run *run);
int coil__frame_result_encode(uint8_t fixed[COIL__FRAME_RESULT_FIXED], struct iovec *iov,
                              const coil__frame_result *res);

/* Payload decoders: 0, or -EPROTO if the payload is malformed. */
int coil__frame_run_decode(const uint8_t *p, size_t len, coil__frame_run *out);
int coil__frame_result_decode(const uint8_t *p, size_t len, coil__frame_result *out);
/* PROGRESS: a percent (0..100) and a message of up to COIL_JOB_MESSAGE_MAX
 * bytes after it. */
int coil__frame_progress_decode(const uint8_t *p, size_t len, int *percent,
                                const char **message, size_t *message_len);
/* HELLO: the worker's pid (> 0). */
int coil__frame_hello_decode(const uint8_t *p, size_t len, uint32_t *pid);

/* ------------------------------------------------------------------ on a stream
 * frame_stream.c: the loop side's reads and writes. */

/* Reads one frame: its header into *hdr, its payload, NUL-terminated, into
 * *payload (malloc'd, the caller frees). Returns 1; 0 at a clean end of the
 * stream; -ENODATA if the stream ended inside a frame; -EPROTO for a bad
 * header; -ENOMEM; or a read error or the interruption. Suspends. */
int coil__frame_read_stream(coil_stream *st, coil__frame_hdr *hdr, uint8_t **payload);
/* Writes a frame whose payload is the `n` buffers at iov[1..n] (iov[0] is
 * filled with the header here), as one writev, shielded from the caller's
 * cancellation so that a frame is never torn. Returns 0 or the write's
 * error. Suspends. */
int coil__frame_write_stream(coil_stream *st, coil__frame_type type, uint64_t id,
                             struct iovec *iov, int n);

/* Little-endian helpers for the other frame bodies. */
static inline void coil__put_u32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static inline uint32_t coil__get_u32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

#endif /* COIL_JOBS_FRAME_H */
