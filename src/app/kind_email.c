/* app/kind_email.c: the email.send job kind: a job's outcome and the link
 * to its result, by SMTP (kind_notify.h has the payload).
 *
 * The message is MIME multipart/alternative, plain text and HTML, each
 * part base64 so that any title survives any relay. Its Message-ID is made
 * from the job's id and the recipient, so that a retry after a lost
 * answer is the same message to the receiver, not a second one. libcurl
 * speaks SMTP: STARTTLS when the server offers it on smtp://, TLS from the
 * start on smtps://, AUTH with --smtp-user and the password file, and
 * then TLS is required: a password never travels in the clear. The
 * server's certificate is checked against the system's CAs, or the one of
 * --smtp-ca-file.
 *
 * Failures to reach or talk to the server are retried (the job's
 * backoff); a login the server refuses is not (COIL_JOB_NO_RETRY).
 */
#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "app/kind_notify.h"
#include "runtime/json_text.h"

enum { SMTP_CONNECT_MS = 10000, SMTP_TIMEOUT_MS = 60000, PASSWORD_MAX = 512 };

/* The message as it is built: the runtime's growable text buffer, whose
 * `failed` says an allocation failed somewhere along the way. */
typedef coil__json_text text;

static void put(text *t, const char *p, size_t n) { coil__json_raw(t, p, n); }

static void puts_(text *t, const char *s) { put(t, s, strlen(s)); }

static void putf(text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void putf(text *t, const char *fmt, ...) {
    char buf[2048];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n > 0) put(t, buf, (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1);
}

/* `s` as base64 in lines of 76, each ending CRLF (RFC 2045). */
static void put_base64(text *t, const char *s, size_t n) {
    for (size_t at = 0; at < n; at += 57) {
        unsigned char line[80];
        size_t chunk = n - at < 57 ? n - at : 57;
        int k = EVP_EncodeBlock(line, (const unsigned char *)s + at, (int)chunk);
        put(t, (const char *)line, (size_t)k);
        puts_(t, "\r\n");
    }
}

/* A header value: as is if ASCII, else RFC 2047 base64 encoded-words. */
static void put_header_text(text *t, const char *s) {
    bool ascii = true;
    for (const char *p = s; *p; p++) ascii &= (unsigned char)*p >= 0x20 && (unsigned char)*p < 0x7f;
    if (ascii) {
        puts_(t, s);
        return;
    }
    unsigned char word[128];
    size_t n = strlen(s);
    /* 45 bytes make 60 characters of base64: words stay under 75. */
    for (size_t at = 0; at < n;) {
        size_t chunk = n - at < 45 ? n - at : 45;
        while (at + chunk < n && ((unsigned char)s[at + chunk] & 0xc0) == 0x80) chunk--;
        EVP_EncodeBlock(word, (const unsigned char *)s + at, (int)chunk);
        putf(t, "%s=?UTF-8?B?%s?=", at ? "\r\n " : "", (const char *)word);
        at += chunk;
    }
}

static void put_html_escaped(text *t, const char *s) {
    for (; *s; s++) {
        switch (*s) {
        case '<': puts_(t, "&lt;"); break;
        case '>': puts_(t, "&gt;"); break;
        case '&': puts_(t, "&amp;"); break;
        case '"': puts_(t, "&quot;"); break;
        default: put(t, s, 1);
        }
    }
}

/* What the email says. */
typedef struct letter {
    const char *to, *from, *title, *job_kind;
    const char *job_id, *status, *error;
    char link[1200];
    char message_id[128];
} letter;

static void body_plain(text *t, const letter *l, bool ok) {
    if (ok) putf(t, "Your %s \"%s\" is ready.\n\nDownload it here:\n%s\n", l->job_kind, l->title,
                 l->link);
    else putf(t, "Your %s \"%s\" did not complete: %s (%s).\n\nIts status:\n%s\n", l->job_kind,
              l->title, l->status, l->error ? l->error : "no message", l->link);
    putf(t, "\nJob %s\n", l->job_id);
}

static void body_html(text *t, const letter *l, bool ok) {
    puts_(t, "<!DOCTYPE html><html><body><p>Your ");
    put_html_escaped(t, l->job_kind);
    puts_(t, " <b>");
    put_html_escaped(t, l->title);
    puts_(t, ok ? "</b> is ready.</p><p><a href=\"" : "</b> did not complete: ");
    if (!ok) {
        put_html_escaped(t, l->status);
        puts_(t, " (");
        put_html_escaped(t, l->error ? l->error : "no message");
        puts_(t, ").</p><p><a href=\"");
    }
    put_html_escaped(t, l->link);
    puts_(t, ok ? "\">Download it</a></p>" : "\">Its status</a></p>");
    puts_(t, "<p style=\"color:#666\">Job ");
    put_html_escaped(t, l->job_id);
    puts_(t, "</p></body></html>\n");
}

/* The whole message, headers and MIME parts, lines ending CRLF. */
static void compose(text *t, const letter *l) {
    bool ok = strcmp(l->status, "succeeded") == 0;
    char date[64];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S +0000", &tm);
    char subject[512];
    snprintf(subject, sizeof subject, ok ? "Ready: %s" : "Failed: %s", l->title);
    putf(t, "Date: %s\r\nFrom: <%s>\r\nTo: <%s>\r\nMessage-ID: %s\r\nSubject: ", date, l->from,
         l->to, l->message_id);
    put_header_text(t, subject);
    putf(t, "\r\nMIME-Version: 1.0\r\n"
            "Content-Type: multipart/alternative; boundary=\"coil-%s\"\r\n\r\n",
         l->job_id);
    text part = {0};
    body_plain(&part, l, ok);
    putf(t, "--coil-%s\r\nContent-Type: text/plain; charset=utf-8\r\n"
            "Content-Transfer-Encoding: base64\r\n\r\n",
         l->job_id);
    put_base64(t, part.s ? part.s : "", part.len);
    t->failed |= part.failed;
    part.len = 0;
    body_html(&part, l, ok);
    putf(t, "--coil-%s\r\nContent-Type: text/html; charset=utf-8\r\n"
            "Content-Transfer-Encoding: base64\r\n\r\n",
         l->job_id);
    put_base64(t, part.s ? part.s : "", part.len);
    t->failed |= part.failed;
    free(part.s);
    putf(t, "--coil-%s--\r\n", l->job_id);
}

/* "<JOBID.HASH@coil>": the job and the recipient, the same every attempt. */
static void message_id(letter *l) {
    unsigned char md[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)l->to, strlen(l->to), md);
    snprintf(l->message_id, sizeof l->message_id, "<%s.%02x%02x%02x%02x@coil>", l->job_id, md[0],
             md[1], md[2], md[3]);
}

typedef struct upload {
    const text *msg;
    size_t at;
    coil_job_ctx *ctx;
} upload;

static size_t read_message(char *buf, size_t size, size_t n, void *arg) {
    upload *u = arg;
    size_t left = u->msg->len - u->at, take = size * n < left ? size * n : left;
    memcpy(buf, u->msg->s + u->at, take);
    u->at += take;
    return take;
}

static int progress(void *arg, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t d) {
    (void)a, (void)b, (void)c, (void)d;
    return coil_job_cancelled(((upload *)arg)->ctx); /* non-zero aborts */
}

/* The first line of the password file, without its newline. */
static bool read_password(const char *path, char *out, size_t cap) {
    FILE *f = fopen(path, "r");
    if (!f) return false;
    bool ok = fgets(out, (int)cap, f) != NULL;
    fclose(f);
    if (ok) out[strcspn(out, "\r\n")] = '\0';
    return ok;
}

static int fail(coil_job_ctx *ctx, int err, const char *fmt, const char *detail) {
    char msg[512];
    snprintf(msg, sizeof msg, fmt, detail);
    coil_job_set_error(ctx, msg);
    return err;
}

/* Sends `msg` to l->to. Returns 0 or the job's error. */
static int deliver(const app_notify *n, const letter *l, const text *msg, coil_job_ctx *ctx) {
    curl_global_init(CURL_GLOBAL_DEFAULT);
    CURL *c = curl_easy_init();
    if (!c) return fail(ctx, -ENOMEM, "%s", "out of memory");
    char from[300], rcpt[300], password[PASSWORD_MAX] = "";
    snprintf(from, sizeof from, "<%s>", l->from);
    snprintf(rcpt, sizeof rcpt, "<%s>", l->to);
    struct curl_slist *to = curl_slist_append(NULL, rcpt);
    upload u = {.msg = msg, .ctx = ctx};
    char errbuf[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(c, CURLOPT_URL, n->smtp_url);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "smtp,smtps");
    curl_easy_setopt(c, CURLOPT_MAIL_FROM, from);
    curl_easy_setopt(c, CURLOPT_MAIL_RCPT, to);
    curl_easy_setopt(c, CURLOPT_READFUNCTION, read_message);
    curl_easy_setopt(c, CURLOPT_READDATA, &u);
    curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, (curl_off_t)msg->len);
    /* STARTTLS when the server offers it; required when there is a password
     * to send, which never travels in the clear. */
    curl_easy_setopt(c, CURLOPT_USE_SSL, (long)(n->smtp_user ? CURLUSESSL_ALL : CURLUSESSL_TRY));
    if (n->smtp_ca_file) curl_easy_setopt(c, CURLOPT_CAINFO, n->smtp_ca_file);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)SMTP_CONNECT_MS);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)SMTP_TIMEOUT_MS);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, progress);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, &u);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
    int err = 0;
    if (n->smtp_user) {
        if (!read_password(n->smtp_password_file, password, sizeof password))
            err = fail(ctx, -EACCES, "cannot read the SMTP password file %s",
                       n->smtp_password_file);
        curl_easy_setopt(c, CURLOPT_USERNAME, n->smtp_user);
        curl_easy_setopt(c, CURLOPT_PASSWORD, password);
    }
    CURLcode rc = err ? CURLE_OK : curl_easy_perform(c);
    if (!err && rc == CURLE_ABORTED_BY_CALLBACK) err = -ECANCELED;
    else if (!err && rc == CURLE_LOGIN_DENIED)
        err = fail(ctx, COIL_JOB_NO_RETRY, "the SMTP server refused the login: %s",
                   errbuf[0] ? errbuf : curl_easy_strerror(rc));
    else if (!err && rc != CURLE_OK)
        err = fail(ctx, -EIO, "SMTP: %s", errbuf[0] ? errbuf : curl_easy_strerror(rc));
    memset(password, 0, sizeof password);
    curl_slist_free_all(to);
    curl_easy_cleanup(c);
    return err;
}

static int email_send(const void *payload, size_t len, coil_job_ctx *ctx) {
    (void)len;
    json_t *doc = json_loads(payload, 0, NULL);
    const json_t *parent = json_object_get(doc, "parent");
    letter l = {
        .to = json_string_value(json_object_get(doc, "to")),
        .title = json_string_value(json_object_get(doc, "title")),
        .job_kind = json_string_value(json_object_get(doc, "job_kind")),
        .job_id = json_string_value(json_object_get(parent, "id")),
        .status = json_string_value(json_object_get(parent, "status")),
        .error = json_string_value(json_object_get(parent, "error")),
    };
    if (!l.to || !app_notify_address_ok(l.to) || !l.job_id || strlen(l.job_id) != COIL_JOB_ID_SIZE - 1 ||
        strspn(l.job_id, "0123456789abcdef") != COIL_JOB_ID_SIZE - 1 ||
        !l.status) {
        json_decref(doc);
        return fail(ctx, COIL_JOB_NO_RETRY, "%s",
                    "email.send: the payload needs \"to\" and a \"parent\" job");
    }
    if (!l.job_kind) l.job_kind = "job";
    if (!l.title) l.title = l.job_kind;
    char buf[APP_NOTIFY_ALLOW_MAX * 257];
    app_notify n;
    app_notify_from_env(&n, buf, sizeof buf);
    if (!n.smtp_url || !n.mail_from || !n.public_url) {
        json_decref(doc);
        /* Retried: the server may be restarted with its settings. */
        return fail(ctx, -ENOTCONN, "%s", "email.send: this node has no --smtp, --mail-from "
                                          "and --public-url");
    }
    l.from = n.mail_from;
    size_t base = strlen(n.public_url);
    while (base && n.public_url[base - 1] == '/') base--;
    bool ok = strcmp(l.status, "succeeded") == 0;
    snprintf(l.link, sizeof l.link, "%.*s/jobs/%s%s", (int)base, n.public_url, l.job_id,
             ok ? "/result" : "");
    message_id(&l);
    text msg = {0};
    compose(&msg, &l);
    int err = msg.failed ? fail(ctx, -ENOMEM, "%s", "out of memory") : deliver(&n, &l, &msg, ctx);
    if (!err) {
        char out[512];
        int k = snprintf(out, sizeof out, "{\"to\":\"%s\",\"message_id\":\"%s\"}", l.to,
                         l.message_id);
        err = coil_job_set_result(ctx, out, (size_t)k, "application/json");
    }
    free(msg.s);
    json_decref(doc);
    return err;
}
COIL_JOB_HANDLER("email.send", email_send)
