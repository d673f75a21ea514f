/* jobs/pool/frame.c: encoding and decoding frames (the format is in frame.h).
 *
 * The decoders are the one place where bytes from another process are
 * trusted into lengths and pointers, so each check is written against
 * overflow: a length is compared with the bytes remaining, never added to
 * a pointer first. tests/jobs/pool/test_frame.c feeds them truncated, oversized
 * and random input, placed right against a guard page.
 */
#include "jobs/pool/frame.h"

#include <errno.h>
#include <string.h>

/* ------------------------------------------------------------------ integers */

static void put_u16(uint8_t *p, uint16_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void put_u64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static uint16_t get_u16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }

static uint64_t get_u64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

/* ------------------------------------------------------------------ header */

void coil__frame_header_encode(uint8_t buf[COIL__FRAME_HEADER], coil__frame_type type,
                               uint32_t length, uint64_t id) {
    buf[0] = COIL__FRAME_MAGIC;
    buf[1] = (uint8_t)type;
    put_u16(buf + 2, 0);
    coil__put_u32(buf + 4, length);
    put_u64(buf + 8, id);
}

int coil__frame_header_decode(const uint8_t *buf, size_t len, uint32_t max, coil__frame_hdr *out) {
    if (len < COIL__FRAME_HEADER) return -EAGAIN;
    if (buf[0] != COIL__FRAME_MAGIC || get_u16(buf + 2) != 0) return -EPROTO;
    if (buf[1] < COIL__FRAME_HELLO || buf[1] > COIL__FRAME_RESULT) return -EPROTO;
    out->type = buf[1];
    out->length = coil__get_u32(buf + 4);
    out->id = get_u64(buf + 8);
    if (out->length > max) return -EMSGSIZE;
    return 0;
}

ssize_t coil__frame_decode(const uint8_t *buf, size_t len, uint32_t max, coil__frame_hdr *hdr,
                           const uint8_t **payload) {
    int err = coil__frame_header_decode(buf, len, max, hdr);
    if (err) return err;
    if (len - COIL__FRAME_HEADER < hdr->length) return -EAGAIN;
    *payload = buf + COIL__FRAME_HEADER;
    return (ssize_t)(COIL__FRAME_HEADER + (size_t)hdr->length);
}

/* ------------------------------------------------------------------ RUN */

int coil__frame_run_encode(uint8_t fixed[COIL__FRAME_RUN_FIXED], struct iovec *iov,
                           const coil__frame_run *run) {
    if (run->kind_len == 0 || run->kind_len > COIL_JOB_KIND_MAX) return -EINVAL;
    if (run->label_len > COIL__FRAME_LABEL_MAX) return -EINVAL;
    if (run->payload_len > COIL__FRAME_MAX - COIL__FRAME_RUN_FIXED - run->kind_len - run->label_len)
        return -EMSGSIZE;
    put_u64(fixed, run->max_address_space);
    coil__put_u32(fixed + 8, run->max_cpu_seconds);
    put_u16(fixed + 12, (uint16_t)run->kind_len);
    coil__put_u32(fixed + 14, run->attempt);
    put_u16(fixed + 18, (uint16_t)run->label_len);
    iov[0] = (struct iovec){fixed, COIL__FRAME_RUN_FIXED};
    iov[1] = (struct iovec){(void *)run->kind, run->kind_len};
    iov[2] = (struct iovec){(void *)run->label, run->label_len};
    iov[3] = (struct iovec){(void *)run->payload, run->payload_len};
    return 4;
}

int coil__frame_run_decode(const uint8_t *p, size_t len, coil__frame_run *out) {
    if (len < COIL__FRAME_RUN_FIXED) return -EPROTO;
    out->max_address_space = get_u64(p);
    out->max_cpu_seconds = coil__get_u32(p + 8);
    out->kind_len = get_u16(p + 12);
    out->attempt = coil__get_u32(p + 14);
    out->label_len = get_u16(p + 18);
    len -= COIL__FRAME_RUN_FIXED;
    p += COIL__FRAME_RUN_FIXED;
    if (out->kind_len == 0 || out->kind_len > COIL_JOB_KIND_MAX || out->kind_len > len)
        return -EPROTO;
    if (out->label_len > COIL__FRAME_LABEL_MAX || out->label_len > len - out->kind_len)
        return -EPROTO;
    out->kind = (const char *)p;
    out->label = (const char *)p + out->kind_len;
    out->payload = p + out->kind_len + out->label_len;
    out->payload_len = len - out->kind_len - out->label_len;
    return 0;
}

/* ------------------------------------------------------------------ RESULT */

int coil__frame_result_encode(uint8_t fixed[COIL__FRAME_RESULT_FIXED], struct iovec *iov,
                              const coil__frame_result *res) {
    if (res->ctype_len > COIL_JOB_CONTENT_TYPE_MAX || res->error_len > COIL_JOB_MESSAGE_MAX)
        return -EINVAL;
    size_t strings = res->ctype_len + res->error_len;
    if (res->data_len > COIL__FRAME_MAX - COIL__FRAME_RESULT_FIXED - strings) return -EMSGSIZE;
    coil__put_u32(fixed, (uint32_t)res->status);
    put_u16(fixed + 4, (uint16_t)res->ctype_len);
    put_u16(fixed + 6, (uint16_t)res->error_len);
    iov[0] = (struct iovec){fixed, COIL__FRAME_RESULT_FIXED};
    iov[1] = (struct iovec){(void *)res->content_type, res->ctype_len};
    iov[2] = (struct iovec){(void *)res->error, res->error_len};
    iov[3] = (struct iovec){(void *)res->data, res->data_len};
    return 4;
}

int coil__frame_result_decode(const uint8_t *p, size_t len, coil__frame_result *out) {
    if (len < COIL__FRAME_RESULT_FIXED) return -EPROTO;
    out->status = (int32_t)coil__get_u32(p);
    out->ctype_len = get_u16(p + 4);
    out->error_len = get_u16(p + 6);
    len -= COIL__FRAME_RESULT_FIXED;
    p += COIL__FRAME_RESULT_FIXED;
    if (out->ctype_len > COIL_JOB_CONTENT_TYPE_MAX || out->error_len > COIL_JOB_MESSAGE_MAX)
        return -EPROTO;
    if (out->ctype_len + out->error_len > len) return -EPROTO;
    out->content_type = (const char *)p;
    out->error = (const char *)p + out->ctype_len;
    out->data = p + out->ctype_len + out->error_len;
    out->data_len = len - out->ctype_len - out->error_len;
    return 0;
}

/* ------------------------------------------------------------------ small ones */

int coil__frame_progress_decode(const uint8_t *p, size_t len, int *percent,
                                const char **message, size_t *message_len) {
    if (len < 1 || len - 1 > COIL_JOB_MESSAGE_MAX || p[0] > 100) return -EPROTO;
    *percent = p[0];
    *message = (const char *)p + 1;
    *message_len = len - 1;
    return 0;
}

int coil__frame_hello_decode(const uint8_t *p, size_t len, uint32_t *pid) {
    if (len != 4) return -EPROTO;
    *pid = coil__get_u32(p);
    if (*pid == 0 || *pid > INT32_MAX) return -EPROTO;
    return 0;
}
