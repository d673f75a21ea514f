/* tests/http/app/test_metrics.c: GET /metrics (coil_http_metrics) and the
 * sections programs add to it. The server runs on a thread of its own
 * (COIL_TEST_THREADS).
 */
#include "http/app/app_harness.h"

/* A section with a counter the scrape reads at scrape time. */
static void widgets(coil_http_metrics_out *out, void *arg) {
    int *scrapes = arg;
    (*scrapes)++;
    coil_http_metrics_printf(out, "# HELP app_widgets_total Widgets made.\n");
    coil_http_metrics_printf(out, "# TYPE app_widgets_total counter\n");
    coil_http_metrics_printf(out, "app_widgets_total %d\n", 40 + *scrapes);
}

TEST(metrics_include_added_sections) {
    coil_http_server *srv = harness_server();
    int scrapes = 0;
    ASSERT_EQ(coil_http_route(srv, "GET", "/metrics", coil_http_metrics, NULL, 0), 0);
    ASSERT_EQ(coil_http_add_metrics(srv, widgets, &scrapes), 0);
    ASSERT_EQ(coil_http_add_metrics(srv, NULL, NULL), -EINVAL);
    harness h;
    harness_start(&h, srv);
    ASSERT_EQ(coil_http_add_metrics(srv, widgets, &scrapes), -EBUSY); /* running */
    reply r;
    harness_get(h.port, "/metrics", &r);
    ASSERT_EQ(r.status, 200);
    /* The built-in sections, then the added one, evaluated at the scrape. */
    const char *loop = strstr(r.body, "coil_loop_lag_seconds");
    const char *pool = strstr(r.body, "coil_threadpool_calls_total");
    const char *mine = strstr(r.body, "app_widgets_total 41\n");
    ASSERT(loop && pool && mine);
    ASSERT(loop < pool && pool < mine);
    harness_get(h.port, "/metrics", &r);
    ASSERT(strstr(r.body, "app_widgets_total 42\n") != NULL);
    harness_stop(&h); /* frees srv */
    ASSERT_EQ(scrapes, 2);
}
