/* tests/app/test_dashboard.c: the dashboard at GET / of coil serve. The
 * page itself is driven in headless Chromium by dashboard.test.mjs (with
 * playwright-core, which scripts/deps installs): live numbers, a job seen
 * to succeed, cancel and retry from their buttons, a stall in the loop
 * panel, a job's own page, the filtered list; screenshots go to the build
 * directory's screenshots/. The server's sampler and
 * event streams cross threads: COIL_TEST_THREADS. */
#include "app/serve_harness.h"

#include <libgen.h>

/* Where scripts/deps put playwright-core. */
static void playwright_dir(char *out, size_t cap) {
    const char *cache = getenv("XDG_CACHE_HOME");
    const char *home = getenv("HOME");
    if (cache && *cache) snprintf(out, cap, "%s/coil/npm/node_modules/playwright-core", cache);
    else snprintf(out, cap, "%s/.cache/coil/npm/node_modules/playwright-core", home ? home : "");
}

/* BUILD/screenshots, made if missing. */
static void screenshot_dir(char *out, size_t cap) {
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    ASSERT(n > 0);
    self[n] = '\0';
    char *tests = dirname(self); /* BUILD/tests */
    snprintf(out, cap, "%s/../screenshots", tests);
    ASSERT(mkdir(out, 0755) == 0 || errno == EEXIST);
}

TEST(the_dashboard_works_in_a_real_browser) {
    char pw[PATH_MAX], pkg[PATH_MAX + 16], shots[PATH_MAX], script[PATH_MAX], base[64];
    playwright_dir(pw, sizeof pw);
    snprintf(pkg, sizeof pkg, "%s/package.json", pw);
    if (access(pkg, R_OK) != 0)
        coil_test_fail(__FILE__, __LINE__, "no playwright-core in %s: run scripts/deps test", pw);
    if (access("/usr/bin/chromium", X_OK) != 0)
        coil_test_fail(__FILE__, __LINE__, "no /usr/bin/chromium: run scripts/deps test");
    screenshot_dir(shots, sizeof shots);
    snprintf(script, sizeof script, "%s/tests/app/dashboard.test.mjs", COIL_SOURCE_DIR);
    serve_proc p;
    serve_start(&p, (const char *const[]){"--job-workers", "2", "--workers", "2",
                                          "--demo-unsafe", "--no-access-log", NULL});
    snprintf(base, sizeof base, "http://127.0.0.1:%d", p.port);
    char out[160];
    snprintf(out, sizeof out, "%s/node.log", p.dir);
    fflush(NULL);
    pid_t pid = fork();
    ASSERT(pid >= 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int log = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (log < 0 || dup2(log, 1) < 0 || dup2(log, 2) < 0) _exit(127);
        execlp("node", "node", script, base, shots, pw, "/usr/bin/chromium", (char *)NULL);
        _exit(127);
    }
    int status = serve_wait_exit(pid); /* the script bounds itself to 60 s */
    char *said = serve_read_file(out, NULL);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        coil_test_fail(__FILE__, __LINE__, "the browser test failed (%d):\n%s", status,
                       said ? said : "");
    ASSERT_CONTAINS(said, "every step passed");
    free(said);
    char png[PATH_MAX + 32];
    snprintf(png, sizeof png, "%s/dashboard-overview.png", shots);
    ASSERT_GE(serve_file_size(png), 10000);
    serve_stop(&p);
    serve_cleanup(&p);
}

TEST(the_page_is_in_the_binary_and_can_be_turned_off) {
    serve_proc p;
    serve_start(&p, (const char *const[]){"--job-workers", "1", NULL});
    serve_reply r;
    serve_get(p.port, "/", &r);
    ASSERT_EQ(r.status, 200);
    char h[256];
    ASSERT_STR_EQ(serve_header(&r, "Content-Type", h, sizeof h), "text/html; charset=utf-8");
    ASSERT(serve_header(&r, "Content-Security-Policy", h, sizeof h) != NULL);
    ASSERT_CONTAINS(h, "default-src 'self'"); /* nothing from elsewhere */
    ASSERT_CONTAINS(r.body, "/dashboard/events");
    ASSERT(strstr(r.body, "http://") == NULL && strstr(r.body, "https://") == NULL);
    serve_reply_free(&r);
    serve_stop(&p);
    serve_launch(&p, (const char *const[]){"--job-workers", "1", "--no-dashboard", NULL});
    serve_expect(p.port, "/", 404, NULL);
    serve_expect(p.port, "/dashboard/events", 404, NULL);
    serve_stop(&p);
    serve_cleanup(&p);
}
