/* tests/app/test_notify.c: the seed's scenario to its end. A report job is
 * POSTed with notify=mailto:, the email arrives at a real SMTP server
 * (Debian's python3-aiosmtpd, a Maildir behind it), its link is fetched,
 * and the PDF is checked with pdfinfo. Then the same with the SMTP server
 * down, and with coil serve killed (SIGKILL) right after the report; and
 * webhooks to a receiver here that checks every signature. */
#include "app/serve_harness.h"

#include <dirent.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <pthread.h>
#include <stdatomic.h>

#define PUBLIC_URL "http://reports.coil.test"
#define SECRET "s3cret-for-tests"

static const char report_body[] =
    "{\"title\":\"Quarterly caf\xc3\xa9 <figures>\",\"rows\":[{\"label\":\"north\",\"value\":3},"
    "{\"label\":\"south\",\"value\":5}]}";


/* ------------------------------------------------------------------ the SMTP server */

typedef struct smtp_server {
    pid_t pid;
    int port;
    char maildir[128];
} smtp_server;

/* python3 -m aiosmtpd on 127.0.0.1:port, delivering into a Maildir. */
static void smtp_start(smtp_server *s, const char *dir, int port) {
    s->port = port;
    snprintf(s->maildir, sizeof s->maildir, "%s/mail", dir);
    char listen[32];
    snprintf(listen, sizeof listen, "127.0.0.1:%d", port);
    fflush(NULL);
    s->pid = fork();
    ASSERT(s->pid >= 0);
    if (s->pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int null = open("/dev/null", O_WRONLY);
        dup2(null, 1);
        execl("/usr/bin/python3", "python3", "-m", "aiosmtpd", "-n", "-l", listen, "-c",
              "aiosmtpd.handlers.Mailbox", s->maildir, (char *)NULL);
        _exit(127);
    }
    serve_await_port(port, s->pid, 15, "aiosmtpd (is python3-aiosmtpd installed? scripts/deps test)");
}

static void smtp_stop(smtp_server *s) {
    if (s->pid <= 0) return;
    kill(s->pid, SIGTERM);
    serve_wait_exit(s->pid);
    s->pid = 0;
}

/* The n-th message of the Maildir (n from 1), waiting up to `secs` for it.
 * Returns it (malloc'd). Fails the test if it does not come. */
static char *await_mail(const smtp_server *s, size_t n, int secs) {
    char dir[160];
    snprintf(dir, sizeof dir, "%s/new", s->maildir);
    coil_time until = coil_now() + COIL_SEC(secs);
    for (;;) {
        DIR *d = opendir(dir);
        size_t seen = 0;
        char name[256] = "";
        for (struct dirent *e; d && (e = readdir(d));) {
            if (e->d_name[0] == '.') continue;
            if (++seen == n) snprintf(name, sizeof name, "%s", e->d_name);
        }
        if (d) closedir(d);
        if (name[0]) {
            char path[512];
            snprintf(path, sizeof path, "%s/%s", dir, name);
            return serve_read_file(path, NULL);
        }
        if (coil_now() >= until)
            coil_test_fail(__FILE__, __LINE__, "no email %zu in %s after %d s", n, dir, secs);
        usleep(50 * 1000);
    }
}

static size_t mail_count(const smtp_server *s) {
    char dir[160];
    snprintf(dir, sizeof dir, "%s/new", s->maildir);
    DIR *d = opendir(dir);
    size_t n = 0;
    for (struct dirent *e; d && (e = readdir(d));) n += e->d_name[0] != '.';
    if (d) closedir(d);
    return n;
}

/* The base64 body of the MIME part of `type` in `mail`, decoded. */
static char *mime_part(const char *mail, const char *type) {
    char want[96];
    snprintf(want, sizeof want, "Content-Type: %s", type);
    const char *p = strstr(mail, want);
    ASSERT(p != NULL);
    p = strstr(p, "\r\n\r\n");
    if (!p) p = strstr(strstr(mail, want), "\n\n");
    ASSERT(p != NULL);
    while (*p == '\r' || *p == '\n') p++;
    const char *end = strstr(p, "--coil-");
    ASSERT(end != NULL);
    char *b64 = malloc((size_t)(end - p) + 1), *w = b64;
    for (const char *c = p; c < end; c++)
        if (*c != '\r' && *c != '\n') *w++ = *c;
    *w = '\0';
    size_t len = strlen(b64);
    unsigned char *out = malloc(len + 1);
    int n = EVP_DecodeBlock(out, (unsigned char *)b64, (int)len);
    ASSERT(n >= 0);
    while (len && b64[len - 1] == '=') len--, n--; /* EVP_DecodeBlock counts padding */
    out[n] = '\0';
    free(b64);
    return (char *)out;
}

/* ------------------------------------------------------------------ jobs over HTTP */

static json_t *post_json(int port, const char *path, const char *body, int want) {
    serve_reply r;
    serve_http(port, "POST", path, "Content-Type: application/json\r\n", body, &r);
    if (r.status != want)
        coil_test_fail(__FILE__, __LINE__, "POST %s: %d, not %d: %s", path, r.status, want,
                       r.body);
    json_t *doc = serve_json(&r);
    serve_reply_free(&r);
    return doc;
}


static const char *status_of(const json_t *doc) {
    return json_string_value(json_object_get(doc, "status"));
}

/* Waits (secs at most) until job `id` has status `want`. */
static void await_status(int port, const char *id, const char *want, int secs) {
    coil_time until = coil_now() + COIL_SEC(secs);
    for (;;) {
        json_t *doc = serve_job_doc(port, id);
        bool done = strcmp(status_of(doc), want) == 0;
        if (!done && coil_now() >= until) {
            char *text = json_dumps(doc, 0);
            coil_test_fail(__FILE__, __LINE__, "job %s is not %s: %s", id, want, text);
        }
        json_decref(doc);
        if (done) return;
        usleep(50 * 1000);
    }
}

/* The id of job `id`'s follow-up number i once written (secs at most). */
static void followup_id(int port, const char *id, size_t i, char *out, size_t cap, int secs) {
    coil_time until = coil_now() + COIL_SEC(secs);
    for (;;) {
        json_t *doc = serve_job_doc(port, id);
        json_t *f = json_array_get(json_object_get(doc, "followups"), i);
        const char *got = json_string_value(json_object_get(f, "id"));
        if (got) snprintf(out, cap, "%s", got);
        json_decref(doc);
        if (got) return;
        ASSERT(coil_now() < until);
        usleep(50 * 1000);
    }
}

static void post_report(int port, const char *target, char id[40]) {
    char path[256];
    snprintf(path, sizeof path, "/jobs/report.pdf?notify=%s", target);
    json_t *doc = post_json(port, path, report_body, 202);
    snprintf(id, 40, "%s", json_string_value(json_object_get(doc, "id")));
    json_decref(doc);
}

/* The link of the email's text part, fetched from this server (the link
 * names PUBLIC_URL, where a proxy would be): a PDF, by pdfinfo. */
static void check_mail_and_pdf(const char *mail, int port, const char *job_id, const char *dir) {
    ASSERT_CONTAINS(mail, "To: <alice@example.com>");
    ASSERT_CONTAINS(mail, "From: <coil@example.com>");
    char mid[96];
    snprintf(mid, sizeof mid, "Message-ID: <%s.", job_id);
    ASSERT_CONTAINS(mail, mid); /* from the job: a retry is the same message */
    ASSERT_CONTAINS(mail, "Subject: =?UTF-8?B?");
    ASSERT_CONTAINS(mail, "multipart/alternative");
    char *plain = mime_part(mail, "text/plain");
    char *html = mime_part(mail, "text/html");
    char link[160];
    snprintf(link, sizeof link, PUBLIC_URL "/jobs/%s/result", job_id);
    ASSERT_CONTAINS(plain, link);
    ASSERT_CONTAINS(plain, "Quarterly caf\xc3\xa9 <figures>");
    ASSERT_CONTAINS(html, link);
    ASSERT_CONTAINS(html, "Quarterly caf\xc3\xa9 &lt;figures&gt;"); /* escaped in HTML */
    free(html);
    char path[128];
    const char *at = strstr(strstr(plain, link), "/jobs/");
    snprintf(path, sizeof path, "%.*s", (int)strcspn(at, " \r\n"), at);
    serve_reply r;
    serve_get(port, path, &r);
    ASSERT_EQ(r.status, 200);
    char type[64];
    ASSERT_STR_EQ(serve_header(&r, "Content-Type", type, sizeof type), "application/pdf");
    char pdf[160], cmd[400];
    snprintf(pdf, sizeof pdf, "%s/report.pdf", dir);
    FILE *f = fopen(pdf, "w");
    ASSERT(f != NULL);
    ASSERT_EQ(fwrite(r.body, 1, r.body_len, f), r.body_len);
    fclose(f);
    serve_reply_free(&r);
    snprintf(cmd, sizeof cmd, "pdfinfo '%s' | grep -q '^Pages:'", pdf);
    ASSERT_EQ(system(cmd), 0);
    free(plain);
}

static void smtp_args(const char *argv[16], const char *smtp_url) {
    const char *a[] = {"--job-workers", "1", "--no-access-log", "--smtp", smtp_url,
                       "--mail-from", "coil@example.com", "--public-url", PUBLIC_URL, NULL};
    memcpy(argv, a, sizeof a);
}

/* A coil serve that sends email through an SMTP server on `smtp.port`
 * (started, or not yet), and a report POSTed to it with notify=mailto:. */
typedef struct scenario {
    serve_proc p;
    smtp_server smtp;
    char url[64];
    const char *args[16];
    char id[40];                  /* the report job */
} scenario;

static void scenario_start(scenario *sc, bool smtp_up) {
    serve_init(&sc->p);
    sc->smtp = (smtp_server){.pid = 0};
    int port = serve_free_port();
    if (smtp_up) smtp_start(&sc->smtp, sc->p.dir, port);
    else sc->smtp.port = port;
    snprintf(sc->url, sizeof sc->url, "smtp://127.0.0.1:%d", port);
    smtp_args(sc->args, sc->url);
    serve_launch(&sc->p, sc->args);
    post_report(sc->p.port, "mailto:alice@example.com", sc->id);
}

static void scenario_end(scenario *sc) {
    serve_stop(&sc->p);
    smtp_stop(&sc->smtp);
    serve_cleanup(&sc->p);
}

/* ------------------------------------------------------------------ tests */

TEST(a_report_link_arrives_by_email_and_is_a_pdf) {
    static scenario sc;
    scenario_start(&sc, true);
    serve_proc p = sc.p;
    const char *id = sc.id;
    char *mail = await_mail(&sc.smtp, 1, 30);
    check_mail_and_pdf(mail, p.port, id, p.dir);
    free(mail);
    /* The report lists its follow-up, and the email job names its parent. */
    char email_id[40];
    followup_id(p.port, id, 0, email_id, sizeof email_id, 10);
    await_status(p.port, email_id, "succeeded", 10);
    json_t *doc = serve_job_doc(p.port, email_id);
    ASSERT_STR_EQ(json_string_value(json_object_get(doc, "kind")), "email.send");
    ASSERT_STR_EQ(json_string_value(json_object_get(doc, "parent")), id);
    json_decref(doc);
    doc = serve_job_doc(p.port, id);
    json_t *f = json_array_get(json_object_get(doc, "followups"), 0);
    ASSERT_STR_EQ(json_string_value(json_object_get(f, "kind")), "email.send");
    ASSERT_STR_EQ(json_string_value(json_object_get(f, "status")), "succeeded");
    json_decref(doc);
    ASSERT_EQ(mail_count(&sc.smtp), 1);
    /* Targets that cannot work are refused at once, with what to do. */
    static const struct {
        const char *target, *want;
    } bad[] = {
        {"mailto:not-an-address", "plain address"},
        {"mailto:a@b.c%0D%0ARCPT%20TO:x@y.z", "plain address"},
        {"ftp://example.com/x", "notify is mailto:"},
        {"https://hooks.example/done", "--webhook-allow"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char path[256];
        snprintf(path, sizeof path, "/jobs/report.pdf?notify=%s", bad[i].target);
        serve_reply r;
        serve_http(p.port, "POST", path, NULL, report_body, &r);
        ASSERT_EQ(r.status, 422);
        ASSERT_CONTAINS(r.body, bad[i].want);
        serve_reply_free(&r);
    }
    scenario_end(&sc);
}

TEST(with_the_smtp_server_down_the_email_waits_and_then_arrives) {
    static scenario sc;
    scenario_start(&sc, false);
    int port = sc.p.port;
    const char *id = sc.id;
    char email_id[40];
    await_status(port, id, "succeeded", 30);
    followup_id(port, id, 0, email_id, sizeof email_id, 10);
    /* Refused: it fails, and is retried; the report stays succeeded. */
    await_status(port, email_id, "failed", 20);
    json_t *doc = serve_job_doc(port, email_id);
    ASSERT_CONTAINS(json_string_value(json_object_get(json_object_get(doc, "error"), "message")),
                    "SMTP");
    json_decref(doc);
    doc = serve_job_doc(port, id);
    ASSERT_STR_EQ(status_of(doc), "succeeded");
    json_decref(doc);
    smtp_start(&sc.smtp, sc.p.dir, sc.smtp.port);
    char *mail = await_mail(&sc.smtp, 1, 40);
    check_mail_and_pdf(mail, port, id, sc.p.dir);
    free(mail);
    await_status(port, email_id, "succeeded", 10);
    doc = serve_job_doc(port, email_id);
    ASSERT_GE(json_integer_value(json_object_get(doc, "attempts")), 2);
    json_decref(doc);
    scenario_end(&sc);
}

TEST(a_server_killed_right_after_the_report_still_sends_the_email) {
    static scenario sc;
    scenario_start(&sc, false);
    await_status(sc.p.port, sc.id, "succeeded", 30);
    serve_kill(&sc.p); /* SIGKILL: no shutdown of any kind */
    smtp_start(&sc.smtp, sc.p.dir, sc.smtp.port);
    serve_launch(&sc.p, sc.args);
    char *mail = await_mail(&sc.smtp, 1, 40);
    check_mail_and_pdf(mail, sc.p.port, sc.id, sc.p.dir);
    free(mail);
    scenario_end(&sc);
}

/* ------------------------------------------------------------------ webhooks */

/* A receiver on loopback: /flaky answers 500 the first time and 200 after,
 * /bad answers 400. Every request's signature is checked here. */
typedef struct receiver {
    int fd, port;
    pthread_t thread;
    atomic_int flaky, bad, bad_signatures, other;
    atomic_bool stop;
    char last_body[2048];
} receiver;

static bool signature_ok(const char *head, const char *body, size_t len) {
    const char *ts = strstr(head, "X-Coil-Timestamp: ");
    const char *sig = strstr(head, "X-Coil-Signature: sha256=");
    if (!ts || !sig) return false;
    ts += strlen("X-Coil-Timestamp: ");
    sig += strlen("X-Coil-Signature: sha256=");
    size_t tn = strcspn(ts, "\r\n");
    char msg[4096];
    if (tn + 1 + len > sizeof msg) return false;
    memcpy(msg, ts, tn);
    msg[tn] = '.';
    memcpy(msg + tn + 1, body, len);
    unsigned char md[32];
    unsigned int mdlen = 0;
    HMAC(EVP_sha256(), SECRET, (int)strlen(SECRET), (unsigned char *)msg, tn + 1 + len, md,
         &mdlen);
    char hex[65];
    for (int i = 0; i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", md[i]);
    long age = (long)time(NULL) - strtol(ts, NULL, 10);
    return mdlen == 32 && strncmp(sig, hex, 64) == 0 && age >= 0 && age < 300;
}

static void *receiver_main(void *arg) {
    receiver *rv = arg;
    while (!atomic_load(&rv->stop)) {
        int c = accept(rv->fd, NULL, NULL);
        if (c < 0) continue;
        char buf[8192];
        size_t n = 0;
        char *end = NULL;
        long want = -1;
        while (n < sizeof buf - 1) { /* the head, then Content-Length bytes */
            ssize_t k = read(c, buf + n, sizeof buf - 1 - n);
            if (k <= 0) break;
            n += (size_t)k;
            buf[n] = '\0';
            if (!end && (end = strstr(buf, "\r\n\r\n"))) {
                const char *cl = strcasestr(buf, "Content-Length: ");
                want = cl ? strtol(cl + 16, NULL, 10) : 0;
            }
            if (end && (long)(n - (size_t)(end + 4 - buf)) >= want) break;
        }
        int status = 404;
        if (end) {
            *end = '\0';
            const char *body = end + 4;
            size_t len = n - (size_t)(body - buf);
            if (!signature_ok(buf, body, len)) atomic_fetch_add(&rv->bad_signatures, 1);
            snprintf(rv->last_body, sizeof rv->last_body, "%.*s", (int)len, body);
            if (strncmp(buf, "POST /flaky ", 12) == 0)
                status = atomic_fetch_add(&rv->flaky, 1) == 0 ? 500 : 200;
            else if (strncmp(buf, "POST /bad ", 10) == 0)
                status = (atomic_fetch_add(&rv->bad, 1), 400);
            else
                atomic_fetch_add(&rv->other, 1);
        }
        char out[128];
        int k = snprintf(out, sizeof out, "HTTP/1.1 %d X\r\nContent-Length: 0\r\n"
                                          "Connection: close\r\n\r\n", status);
        ssize_t w = write(c, out, (size_t)k);
        (void)w;
        close(c);
    }
    return NULL;
}

static void receiver_start(receiver *rv) {
    rv->fd = serve_loopback_socket(&rv->port);
    ASSERT_EQ(listen(rv->fd, 16), 0);
    struct timeval tv = {0, 100 * 1000}; /* accept() wakes to see stop */
    setsockopt(rv->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ASSERT_EQ(pthread_create(&rv->thread, NULL, receiver_main, rv), 0);
}

static void receiver_stop(receiver *rv) {
    atomic_store(&rv->stop, true);
    pthread_join(rv->thread, NULL);
    close(rv->fd);
}

TEST(webhooks_are_signed_retried_on_5xx_and_not_on_4xx) {
    static receiver rv;
    receiver_start(&rv);
    serve_proc p;
    serve_init(&p);
    char allow[32];
    snprintf(allow, sizeof allow, "127.0.0.1:%d", rv.port);
    const char *args[] = {"--job-workers", "1", "--no-access-log", "--webhook-allow", allow,
                          "--webhook-secret", SECRET, "--public-url", PUBLIC_URL, NULL};
    serve_launch(&p, args);
    char path[256];
    snprintf(path, sizeof path,
             "/jobs/demo.noop?notify=http://127.0.0.1:%d/flaky&notify=http://127.0.0.1:%d/bad",
             rv.port, rv.port);
    json_t *doc = post_json(p.port, path, "{}", 202);
    char id[40], flaky_id[40], bad_id[40];
    snprintf(id, sizeof id, "%s", json_string_value(json_object_get(doc, "id")));
    json_decref(doc);
    followup_id(p.port, id, 0, flaky_id, sizeof flaky_id, 20);
    followup_id(p.port, id, 1, bad_id, sizeof bad_id, 20);
    await_status(p.port, flaky_id, "succeeded", 30);
    await_status(p.port, bad_id, "dead", 30);
    ASSERT_EQ(atomic_load(&rv.flaky), 2);  /* a 500, retried, then a 200 */
    ASSERT_EQ(atomic_load(&rv.bad), 1);    /* a 400: never again */
    ASSERT_EQ(atomic_load(&rv.bad_signatures), 0);
    ASSERT_EQ(atomic_load(&rv.other), 0);
    doc = serve_job_doc(p.port, bad_id);
    ASSERT_EQ(json_integer_value(json_object_get(doc, "attempts")), 1);
    ASSERT_CONTAINS(json_string_value(json_object_get(json_object_get(doc, "error"), "message")),
                    "answered 400");
    json_decref(doc);
    /* The body is the job's final status. */
    json_t *body = json_loads(rv.last_body, 0, NULL);
    json_t *job = json_object_get(body, "job");
    ASSERT_STR_EQ(json_string_value(json_object_get(body, "event")), "job.finished");
    ASSERT_STR_EQ(json_string_value(json_object_get(job, "id")), id);
    ASSERT_STR_EQ(json_string_value(json_object_get(job, "status")), "succeeded");
    json_decref(body);
    /* Hosts, ports and schemes not allowed are refused when POSTed. */
    static const char *const refused[] = {"http://10.0.0.1/x", "http://127.0.0.1:1/x",
                                          "http://user:pw@127.0.0.1/x", "gopher://127.0.0.1/"};
    for (size_t i = 0; i < sizeof refused / sizeof *refused; i++) {
        char target[128];
        snprintf(target, sizeof target, "%s", refused[i]);
        if (strstr(target, "user:pw")) snprintf(target, sizeof target,
                                                "http://user:pw@127.0.0.1:%d/x", rv.port);
        snprintf(path, sizeof path, "/jobs/demo.noop?notify=%s", target);
        serve_reply r;
        serve_http(p.port, "POST", path, NULL, "{}", &r);
        ASSERT_EQ(r.status, 422);
        serve_reply_free(&r);
    }
    serve_stop(&p);
    serve_cleanup(&p);
    receiver_stop(&rv);
}

/* ------------------------------------------------------------------ STARTTLS and AUTH */

/* A relay set up as production ones are: STARTTLS required, then AUTH
 * (tests/app/fixtures/smtp_auth_tls.py, aiosmtpd), with a certificate made
 * here for 127.0.0.1 and trusted through --smtp-ca-file. */
static void tls_smtp_start(smtp_server *s, const char *dir, const char *mode, char *cert,
                           size_t cap) {
    char key[160], cmd[800], script[PATH_MAX], port[16];
    snprintf(cert, cap, "%s/cert.pem", dir);
    snprintf(key, sizeof key, "%s/key.pem", dir);
    snprintf(cmd, sizeof cmd,
             "openssl req -x509 -newkey rsa:2048 -nodes -keyout '%s' -out '%s' -days 1"
             " -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 2>/dev/null",
             key, cert);
    ASSERT_EQ(system(cmd), 0);
    snprintf(script, sizeof script, "%s/tests/app/fixtures/smtp_auth_tls.py", COIL_SOURCE_DIR);
    s->port = serve_free_port();
    snprintf(port, sizeof port, "%d", s->port);
    snprintf(s->maildir, sizeof s->maildir, "%s/mail", dir);
    fflush(NULL);
    s->pid = fork();
    ASSERT(s->pid >= 0);
    if (s->pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int null = open("/dev/null", O_WRONLY);
        dup2(null, 1);
        execl("/usr/bin/python3", "python3", script, port, s->maildir, cert, key, "alice",
              "s3cret pass", mode, (char *)NULL);
        _exit(127);
    }
    serve_await_port(s->port, s->pid, 15, "the TLS relay (tests/app/fixtures/smtp_auth_tls.py)");
}

/* A coil serve that sends through the TLS relay (`mode`, on `scheme`://)
 * with AUTH, and a report whose email arrived and checked out. */
typedef struct tls_scenario {
    serve_proc p;
    smtp_server smtp;
    char cert[160], pw[160], url[64];
    const char *args[16];
    char id[40];
} tls_scenario;

static void write_password(const char *path, const char *password) {
    FILE *f = fopen(path, "w");
    ASSERT(f != NULL);
    fprintf(f, "%s\n", password);
    ASSERT_EQ(fclose(f), 0);
}

static void tls_scenario_run(tls_scenario *t, const char *mode, const char *scheme) {
    serve_init(&t->p);
    tls_smtp_start(&t->smtp, t->p.dir, mode, t->cert, sizeof t->cert);
    snprintf(t->pw, sizeof t->pw, "%s/password", t->p.dir);
    write_password(t->pw, "s3cret pass");
    snprintf(t->url, sizeof t->url, "%s://127.0.0.1:%d", scheme, t->smtp.port);
    const char *args[] = {"--job-workers", "1", "--no-access-log", "--smtp", t->url,
                          "--smtp-user", "alice", "--smtp-password-file", t->pw,
                          "--smtp-ca-file", t->cert, "--mail-from", "coil@example.com",
                          "--public-url", PUBLIC_URL, NULL};
    memcpy(t->args, args, sizeof args);
    serve_launch(&t->p, t->args);
    post_report(t->p.port, "mailto:alice@example.com", t->id);
    char *mail = await_mail(&t->smtp, 1, 30);
    check_mail_and_pdf(mail, t->p.port, t->id, t->p.dir);
    free(mail);
    serve_stop(&t->p);
}

static void tls_scenario_end(tls_scenario *t) {
    smtp_stop(&t->smtp);
    serve_cleanup(&t->p);
}

TEST(email_goes_through_starttls_and_auth) {
    static tls_scenario t;
    tls_scenario_run(&t, "starttls", "smtp");
    /* A wrong password: the server refuses the login, and that is not
     * retried (the job is dead after one attempt). */
    write_password(t.pw, "wrong");
    serve_launch(&t.p, t.args);
    post_report(t.p.port, "mailto:alice@example.com", t.id);
    char email_id[40];
    followup_id(t.p.port, t.id, 0, email_id, sizeof email_id, 30);
    await_status(t.p.port, email_id, "dead", 30);
    json_t *doc = serve_job_doc(t.p.port, email_id);
    ASSERT_EQ(json_integer_value(json_object_get(doc, "attempts")), 1);
    ASSERT_CONTAINS(json_string_value(json_object_get(json_object_get(doc, "error"), "message")),
                    "refused the login");
    json_decref(doc);
    ASSERT_EQ(mail_count(&t.smtp), 1);
    serve_stop(&t.p);
    tls_scenario_end(&t);
}

/* smtps://: TLS from the first byte, then AUTH. */
TEST(email_goes_through_smtps) {
    static tls_scenario t;
    tls_scenario_run(&t, "tls", "smtps");
    tls_scenario_end(&t);
}
