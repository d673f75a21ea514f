/* app/kind_webhook.c: the webhook.post job kind: a job's final status,
 * POSTed as JSON to a URL its submitter gave (kind_notify.h).
 *
 * The body is {"event": "job.finished", "job": {"id", "kind", "status",
 * "attempts", "error", "finished_at", "result_url"}}. It is signed:
 *
 *   X-Coil-Timestamp: T                      (Unix seconds)
 *   X-Coil-Signature: sha256=HEX             HMAC-SHA256(secret, T "." body)
 *
 * so that a receiver can check both that coil sent it and that it is not
 * an old one replayed. The URL is checked again against --webhook-allow
 * here, in the worker, whatever the server checked when it took the job:
 * redirects are not followed, and only http and https are spoken.
 *
 * A 2xx answer is success. 5xx, 408, 429, a timeout or a refused
 * connection are retried with the job's backoff; any other 4xx is not
 * (COIL_JOB_NO_RETRY): the receiver said the request itself is wrong.
 */
#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "app/kind_notify.h"

enum { WEBHOOK_CONNECT_MS = 5000, WEBHOOK_TIMEOUT_MS = 10000 };

static int fail(coil_job_ctx *ctx, int err, const char *msg) {
    coil_job_set_error(ctx, msg);
    return err;
}

/* hex(HMAC-SHA256(secret, ts "." body)) into out (65 bytes). */
static bool sign(const char *secret, const char *ts, const char *body, size_t len, char out[65]) {
    size_t tn = strlen(ts);
    unsigned char *msg = malloc(tn + 1 + len);
    if (!msg) return false;
    memcpy(msg, ts, tn);
    msg[tn] = '.';
    memcpy(msg + tn + 1, body, len);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    bool ok = HMAC(EVP_sha256(), secret, (int)strlen(secret), msg, tn + 1 + len, md, &mdlen) &&
              mdlen == 32;
    free(msg);
    for (unsigned i = 0; ok && i < mdlen; i++) snprintf(out + 2 * i, 3, "%02x", md[i]);
    return ok;
}

static int progress(void *arg, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t d) {
    (void)a, (void)b, (void)c, (void)d;
    return coil_job_cancelled(arg);
}

static size_t discard(char *p, size_t size, size_t n, void *arg) {
    (void)p, (void)arg;
    return size * n;
}

/* The body: the parent as a status document. malloc'd, or NULL. */
static char *body_of(const json_t *parent, const char *public_url) {
    const char *id = json_string_value(json_object_get(parent, "id"));
    const char *status = json_string_value(json_object_get(parent, "status"));
    char url[1200] = "";
    if (public_url && status && strcmp(status, "succeeded") == 0) {
        size_t base = strlen(public_url);
        while (base && public_url[base - 1] == '/') base--;
        snprintf(url, sizeof url, "%.*s/jobs/%s/result", (int)base, public_url, id);
    }
    json_t *doc = json_pack("{s:s, s:{s:O, s:O, s:O, s:O, s:O, s:O, s:s?}}", "event",
                            "job.finished", "job", "id", json_object_get(parent, "id"), "kind",
                            json_object_get(parent, "kind"), "status",
                            json_object_get(parent, "status"), "attempts",
                            json_object_get(parent, "attempts"), "error",
                            json_object_get(parent, "error"), "finished_at",
                            json_object_get(parent, "finished"), "result_url",
                            url[0] ? url : NULL);
    char *body = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    return body;
}

/* Posts `body` to `url`, signed. Returns 0 or the job's error. */
static int post(const app_notify *n, const char *url, const char *job_id, const char *body,
                coil_job_ctx *ctx) {
    char ts[24], sig[65], h_sig[96], h_ts[48], h_job[64];
    snprintf(ts, sizeof ts, "%lld", (long long)time(NULL));
    if (!sign(n->webhook_secret, ts, body, strlen(body), sig))
        return fail(ctx, -ENOMEM, "cannot sign the webhook");
    snprintf(h_sig, sizeof h_sig, "X-Coil-Signature: sha256=%s", sig);
    snprintf(h_ts, sizeof h_ts, "X-Coil-Timestamp: %s", ts);
    snprintf(h_job, sizeof h_job, "X-Coil-Job: %s", job_id);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    CURL *c = curl_easy_init();
    if (!c) return fail(ctx, -ENOMEM, "out of memory");
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    h = curl_slist_append(h, "User-Agent: coil-webhook");
    h = curl_slist_append(h, "Expect:"); /* no 100-continue round trip */
    h = curl_slist_append(h, h_sig);
    h = curl_slist_append(h, h_ts);
    h = curl_slist_append(h, h_job);
    char errbuf[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(body));
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)WEBHOOK_CONNECT_MS);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)WEBHOOK_TIMEOUT_MS);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, progress);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, ctx);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
    CURLcode rc = curl_easy_perform(c);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    char msg[CURL_ERROR_SIZE + 64];
    if (rc == CURLE_ABORTED_BY_CALLBACK) return -ECANCELED;
    if (rc != CURLE_OK) {
        snprintf(msg, sizeof msg, "webhook: %s", errbuf[0] ? errbuf : curl_easy_strerror(rc));
        return fail(ctx, rc == CURLE_OPERATION_TIMEDOUT ? -ETIMEDOUT : -EIO, msg);
    }
    if (status >= 200 && status < 300) {
        snprintf(msg, sizeof msg, "{\"status\":%ld}", status);
        return coil_job_set_result(ctx, msg, strlen(msg), "application/json");
    }
    snprintf(msg, sizeof msg, "webhook answered %ld", status);
    bool retry = status >= 500 || status == 408 || status == 429 || status < 200;
    return fail(ctx, retry ? -EIO : COIL_JOB_NO_RETRY, msg);
}

static int webhook_post(const void *payload, size_t len, coil_job_ctx *ctx) {
    (void)len;
    json_t *doc = json_loads(payload, 0, NULL);
    const char *url = json_string_value(json_object_get(doc, "url"));
    const json_t *parent = json_object_get(doc, "parent");
    const char *id = json_string_value(json_object_get(parent, "id"));
    char buf[APP_NOTIFY_ALLOW_MAX * 257];
    app_notify n;
    app_notify_from_env(&n, buf, sizeof buf);
    int err;
    char *body = NULL;
    if (!url || !id) err = fail(ctx, COIL_JOB_NO_RETRY, "webhook.post: needs \"url\" and a parent");
    else if (!n.webhook_secret) err = fail(ctx, -ENOTCONN, "webhook.post: no --webhook-secret here");
    else if (!app_notify_url_allowed(&n, url))
        err = fail(ctx, COIL_JOB_NO_RETRY, "webhook.post: the URL's host is not allowed");
    else if (!(body = body_of(parent, n.public_url))) err = fail(ctx, -ENOMEM, "out of memory");
    else err = post(&n, url, id, body, ctx);
    free(body);
    json_decref(doc);
    return err;
}
COIL_JOB_HANDLER("webhook.post", webhook_post)
