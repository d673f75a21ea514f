/* tests/io/test_leftovers.c: what a loop does with handles left open. */
#include "test.h"

#include <sanitizer/lsan_interface.h>

static coil_result leave_listener_open(void *arg) {
    (void)arg;
    coil_listener *l;
    ASSERT_EQ(coil_listen_tcp("127.0.0.1", 0, 0, 0, &l), 0);
#if defined(__SANITIZE_ADDRESS__)
    __lsan_ignore_object(l); /* leaked on purpose: that is what is tested */
#endif
    return coil_ok(NULL);
}

TEST(open_listener_does_not_hang_shutdown) {
    coil_test_capture_stderr_begin();
    RUN_MAIN(leave_listener_open, NULL);
    char *err = coil_test_capture_stderr_end();
    ASSERT_CONTAINS(err, "tcp handle was still open when its loop closed");
    free(err);
}
