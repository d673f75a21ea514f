/* tests/app/test_command_kinds.c: job kinds that are programs, against a
 * Python script (tests/app/fixtures/command_job.py) run by Debian's
 * /usr/bin/python3 under coil serve --command-kind: stdin to stdout with
 * progress, a failure with its stderr, a crash retried, a cancel that
 * takes the program's grandchildren too, the output limit, and the
 * temporary directory removed. */
#include "app/serve_harness.h"

static json_t *post(int port, const char *path, const char *body) {
    serve_reply r;
    serve_http(port, "POST", path, NULL, body, &r);
    if (r.status != 202) coil_test_fail(__FILE__, __LINE__, "POST %s: %d %s", path, r.status, r.body);
    json_t *doc = serve_json(&r);
    serve_reply_free(&r);
    return doc;
}


/* Waits (20 s at most) for `id` to be `want`; returns its document. */
static json_t *await(int port, const char *id, const char *want) {
    coil_time until = coil_now() + COIL_SEC(20);
    for (;;) {
        json_t *doc = serve_job_doc(port, id);
        const char *st = json_string_value(json_object_get(doc, "status"));
        if (strcmp(st, want) == 0) return doc;
        if (coil_now() > until)
            coil_test_fail(__FILE__, __LINE__, "job %s is %s, not %s: %s", id, st, want,
                           json_dumps(doc, 0));
        json_decref(doc);
        usleep(30 * 1000);
    }
}

static const char *str(const json_t *o, const char *k) { return json_string_value(json_object_get(o, k)); }

static bool alive(pid_t pid) { return kill(pid, 0) == 0; }

TEST(a_python_script_is_a_job_kind) {
    char def[PATH_MAX + 64];
    snprintf(def, sizeof def, "py.job:application/json=/usr/bin/python3 %s/tests/app/fixtures/command_job.py",
             COIL_SOURCE_DIR);
    serve_proc p;
    serve_start(&p, (const char *const[]){"--job-workers", "1", "--command-kind", def, NULL});
    char id[40];

    /* stdin to stdout, progress from fd 3, in a directory of its own. */
    json_t *doc = post(p.port, "/jobs/py.job", "{\"mode\": \"echo\", \"text\": \"h\\u00e9llo\"}");
    snprintf(id, sizeof id, "%s", str(doc, "id"));
    json_decref(doc);
    doc = await(p.port, id, "succeeded");
    ASSERT_EQ(json_integer_value(json_object_get(doc, "progress")), 100);
    ASSERT_STR_EQ(str(doc, "message"), "done");
    ASSERT_STR_EQ(str(json_object_get(doc, "result"), "content_type"), "application/json");
    json_decref(doc);
    char path[96];
    snprintf(path, sizeof path, "/jobs/%s/result", id);
    serve_reply r;
    serve_get(p.port, path, &r);
    ASSERT_EQ(r.status, 200);
    json_t *out = serve_json(&r);
    serve_reply_free(&r);
    ASSERT_STR_EQ(str(out, "echo"), "h\xc3\xa9llo");
    ASSERT_STR_EQ(str(out, "kind"), "py.job");
    ASSERT_STR_EQ(str(out, "id"), id); /* the store's id, in its environment */
    ASSERT_STR_EQ(str(out, "attempt"), "1");
    const char *cwd = str(out, "cwd");
    ASSERT(strncmp(cwd, "/tmp/coil-job-", 14) == 0);
    ASSERT(access(cwd, F_OK) != 0); /* removed after the job */
    json_decref(out);

    /* The attempt number: a script that fails its first attempt only. */
    doc = post(p.port, "/jobs/py.job?backoff_ms=10", "{\"mode\": \"flaky\"}");
    snprintf(id, sizeof id, "%s", str(doc, "id"));
    json_decref(doc);
    doc = await(p.port, id, "succeeded");
    ASSERT_EQ(json_integer_value(json_object_get(doc, "attempts")), 2);
    json_decref(doc);
    snprintf(path, sizeof path, "/jobs/%s/result", id);
    serve_get(p.port, path, &r);
    ASSERT_STR_EQ(r.body, "2\n");
    serve_reply_free(&r);

    /* A non-zero exit: failed, with the status and stderr in the message. */
    doc = post(p.port, "/jobs/py.job?max_attempts=1", "{\"mode\": \"fail\"}");
    snprintf(id, sizeof id, "%s", str(doc, "id"));
    json_decref(doc);
    doc = await(p.port, id, "dead");
    const char *msg = str(json_object_get(doc, "error"), "message");
    ASSERT_CONTAINS(msg, "exited with status 3");
    ASSERT_CONTAINS(msg, "the input has no rows");
    json_decref(doc);

    /* A signal it sends itself: a crash, recorded and retried. */
    doc = post(p.port, "/jobs/py.job?max_attempts=2&backoff_ms=10", "{\"mode\": \"segv\"}");
    snprintf(id, sizeof id, "%s", str(doc, "id"));
    json_decref(doc);
    doc = await(p.port, id, "dead");
    ASSERT_EQ(json_integer_value(json_object_get(doc, "attempts")), 2);
    ASSERT_EQ(json_integer_value(json_object_get(json_object_get(doc, "error"), "signal")), SIGSEGV);
    json_decref(doc);

    /* Output past the limit: a clear failure, not a truncated result. */
    doc = post(p.port, "/jobs/py.job", "{\"mode\": \"big\"}");
    snprintf(id, sizeof id, "%s", str(doc, "id"));
    json_decref(doc);
    doc = await(p.port, id, "dead");
    ASSERT_CONTAINS(str(json_object_get(doc, "error"), "message"), "over the 16 MiB limit");
    json_decref(doc);

    /* A cancel stops the script and its grandchild. */
    char pidfile[160], body[256];
    snprintf(pidfile, sizeof pidfile, "%s/pids", p.dir);
    snprintf(body, sizeof body, "{\"mode\": \"sleep\", \"pidfile\": \"%s\"}", pidfile);
    doc = post(p.port, "/jobs/py.job", body);
    snprintf(id, sizeof id, "%s", str(doc, "id"));
    json_decref(doc);
    json_decref(await(p.port, id, "running"));
    coil_time until = coil_now() + COIL_SEC(10);
    while (serve_file_size(pidfile) == 0) {
        ASSERT(coil_now() < until);
        usleep(20 * 1000);
    }
    usleep(50 * 1000);
    char *pids = serve_read_file(pidfile, NULL);
    int script = 0, grandchild = 0;
    ASSERT_EQ(sscanf(pids, "%d %d", &script, &grandchild), 2);
    free(pids);
    ASSERT(alive(script) && alive(grandchild));
    snprintf(path, sizeof path, "/jobs/%s", id);
    serve_http(p.port, "DELETE", path, NULL, NULL, &r);
    ASSERT_EQ(r.status, 202);
    serve_reply_free(&r);
    json_decref(await(p.port, id, "cancelled"));
    until = coil_now() + COIL_SEC(5);
    while (alive(script) || alive(grandchild)) {
        ASSERT(coil_now() < until);
        usleep(20 * 1000);
    }
    serve_stop(&p);
    /* A kinds file: comments, blank lines, quoted arguments. */
    char file[160], text[PATH_MAX + 256];
    snprintf(file, sizeof file, "%s/kinds", p.dir);
    snprintf(text, sizeof text,
             "# the kinds of this test\n\n"
             "py.args:application/json=/usr/bin/python3 %s/tests/app/fixtures/command_job.py"
             " \"two words\" 'single quoted' back\\ slash\n",
             COIL_SOURCE_DIR);
    FILE *f = fopen(file, "w");
    ASSERT(f != NULL);
    fputs(text, f);
    fclose(f);
    serve_launch(&p, (const char *const[]){"--job-workers", "1", "--kinds-file", file, NULL});
    doc = post(p.port, "/jobs/py.args", "{\"mode\": \"argv\"}");
    snprintf(id, sizeof id, "%s", str(doc, "id"));
    json_decref(doc);
    json_decref(await(p.port, id, "succeeded"));
    snprintf(path, sizeof path, "/jobs/%s/result", id);
    serve_get(p.port, path, &r);
    ASSERT_STR_EQ(r.body, "[\"two words\", \"single quoted\", \"back slash\"]");
    serve_reply_free(&r);
    serve_stop(&p);
    /* Bad definitions are refused at the command line, with the line. */
    f = fopen(file, "w");
    ASSERT(f != NULL);
    fputs("# ok\nok.kind=/bin/true\nbad.kind=/bin/echo \"unclosed\n", f);
    fclose(f);
    serve_ran bad0;
    serve_coil_run(p.dir, (const char *const[]){"serve", "--kinds-file", file, NULL}, &bad0);
    ASSERT_EQ(bad0.status, 2);
    ASSERT_CONTAINS(bad0.err, "line 3");
    serve_ran_free(&bad0);
    serve_ran bad;
    serve_coil_run(p.dir, (const char *const[]){"serve", "--command-kind", "noprogram=", NULL}, &bad);
    ASSERT_EQ(bad.status, 2);
    ASSERT_CONTAINS(bad.err, "NAME[:TYPE]=PROGRAM");
    serve_ran_free(&bad);
    serve_cleanup(&p);
}
