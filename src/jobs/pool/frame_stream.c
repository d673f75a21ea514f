/* jobs/pool/frame_stream.c: frames on a coil_stream, for the two ends that
 * run a loop: the supervisor's slot tasks and submitters (pool_slot.c,
 * pool_run.c), and an awaiting worker (worker_await.c). A plain worker,
 * which has no loop, reads and writes its socket itself (worker.c).
 */
#include "jobs/pool/frame.h"

#include <errno.h>
#include <stdlib.h>

int coil__frame_read_stream(coil_stream *st, coil__frame_hdr *hdr, uint8_t **payload) {
    uint8_t h[COIL__FRAME_HEADER];
    ssize_t n = coil_stream_read_exactly(st, h, sizeof h);
    if (n <= 0) return (int)n; /* 0 at a clean end; -ENODATA for part of a header */
    if (coil__frame_header_decode(h, sizeof h, COIL__FRAME_MAX, hdr)) return -EPROTO;
    uint8_t *p = malloc((size_t)hdr->length + 1);
    if (!p) return -ENOMEM;
    n = hdr->length ? coil_stream_read_exactly(st, p, hdr->length) : 0;
    if (n < 0 || (n == 0 && hdr->length)) {
        free(p);
        return n == 0 ? -ENODATA : (int)n;
    }
    p[hdr->length] = '\0';
    *payload = p;
    return 1;
}

int coil__frame_write_stream(coil_stream *st, coil__frame_type type, uint64_t id,
                             struct iovec *iov, int n) {
    size_t len = 0;
    for (int i = 1; i <= n; i++) len += iov[i].iov_len;
    uint8_t hdr[COIL__FRAME_HEADER];
    coil__frame_header_encode(hdr, type, (uint32_t)len, id);
    iov[0] = (struct iovec){hdr, sizeof hdr};
    coil_scope shield;
    coil_scope_enter_shielded(&shield, COIL_NEVER);
    int err = coil_stream_writev(st, iov, (size_t)n + 1);
    coil_scope_exit(&shield);
    return err;
}
