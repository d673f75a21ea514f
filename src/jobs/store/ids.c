/* jobs/store/ids.c: job ids and the durable sequence behind GET /ids/next.
 *
 * Job ids are 128 random bits from getrandom(), as 32 hex digits: unique
 * without coordination, and not guessable from one another.
 *
 * The sequence is one row of a table, advanced by an UPDATE ... RETURNING
 * inside the writer's group commit, like any other write (on SQLite and on
 * PostgreSQL alike). Why
 * that gives "never repeated, never skipped":
 *
 *   - repeated: a value is handed out only after the commit that wrote it
 *     is on disk, so no restart can hand it out again;
 *   - skipped: values are handed out in the order the UPDATEs ran, and a
 *     commit that fails rolls back every UPDATE in it, so none of its values
 *     is handed out and the row stays where it was: the next commit hands
 *     out the same values again. A caller interrupted while its request
 *     still waits in the queue withdraws it before it ever ran.
 *
 * The one case left is a commit whose fsync fails after the disk may have
 * kept it: the database reports the error and we hand nothing out, but the values
 * may be on disk (docs/jobs.md, "Store and guarantees").
 */
#include "jobs/store/store_impl.h"

#include <sys/random.h>

int coil__job_id_new(char out[COIL__JOB_ID_SIZE]) {
    static const char hex[] = "0123456789abcdef";
    unsigned char raw[16];
    size_t got = 0;
    while (got < sizeof raw) {
        ssize_t n = getrandom(raw + got, sizeof raw - got, 0);
        if (n < 0) {
            if (errno == EINTR) continue;
            return -errno;
        }
        got += (size_t)n;
    }
    for (size_t i = 0; i < sizeof raw; i++) {
        out[2 * i] = hex[raw[i] >> 4];
        out[2 * i + 1] = hex[raw[i] & 15];
    }
    out[2 * sizeof raw] = '\0';
    return 0;
}

bool coil__job_id_valid(const char *s) {
    if (!s) return false;
    for (int i = 0; i < COIL__JOB_ID_SIZE - 1; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) return false;
    return s[COIL__JOB_ID_SIZE - 1] == '\0';
}

int coil__store_next_id(coil__store *s, uint64_t *out) {
    if (!out) return -EINVAL;
    coil__store_req r = {.op = COIL__OP_NEXT_ID};
    int err = coil__store_submit(s, &r);
    if (err) return err;
    *out = r.u.next_id.value;
    return 0;
}
