/* app/kind_notify.c: the notification settings, and notify=TARGET turned
 * into a follow-up job (kind_notify.h has the contract). */
#include "app/kind_notify.h"

#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

/* How hard a notification tries: about half an hour of retries, at most
 * five minutes apart. */
enum { NOTIFY_ATTEMPTS = 10 };
#define NOTIFY_BACKOFF COIL_SEC(1)
#define NOTIFY_BACKOFF_CAP COIL_SEC(300)

const char app_notify_usage[] =
    "  --smtp URL          send notify=mailto: email through smtp://HOST:PORT or\n"
    "                      smtps://HOST:PORT (STARTTLS when the server offers it)\n"
    "  --smtp-user USER    log in to the SMTP server as USER, with the password\n"
    "  --smtp-password-file PATH  in the first line of PATH (then TLS is required)\n"
    "  --smtp-ca-file PATH trust the CA in PATH for the SMTP server's certificate\n"
    "  --mail-from ADDR    the From: address of notification email\n"
    "  --public-url URL    where links in notifications point (http://host:port)\n"
    "  --webhook-secret S  sign webhook bodies with HMAC-SHA256 under key S\n"
    "  --webhook-allow P   allow notify=https:// webhooks to host P, host:port, or\n"
    "                      *.domain (repeatable; with none, webhooks are refused)\n";

static bool has_prefix(const char *s, const char *prefix) {
    return strncasecmp(s, prefix, strlen(prefix)) == 0;
}

bool app_notify_address_ok(const char *addr) {
    size_t n = strlen(addr);
    const char *at = strchr(addr, '@');
    if (n < 3 || n > 254 || !at || at == addr || !at[1] || strchr(at + 1, '@')) return false;
    for (const char *p = addr; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (c <= 0x20 || c >= 0x7f || strchr("<>()[]\\,;:\"", c)) return false;
    }
    return strchr(at + 1, '.') != NULL && at[strlen(at) - 1] != '.';
}

/* A --webhook-allow pattern: a host name or address, optionally "*." in
 * front, optionally ":port" after. */
static bool pattern_ok(const char *p) {
    if (!*p || strlen(p) > 255) return false;
    for (const char *c = p; *c; c++)
        if (!isalnum((unsigned char)*c) && !strchr(".-:*[]", *c)) return false;
    const char *star = strchr(p, '*');
    return !star || (star == p && p[1] == '.' && !strchr(p + 1, '*'));
}

int app_notify_flag(app_notify *n, const char *flag, const char *value, const char **why) {
    *why = NULL;
    if (strcmp(flag, "--smtp") == 0) {
        if (!has_prefix(value, "smtp://") && !has_prefix(value, "smtps://")) {
            *why = "--smtp is smtp://HOST:PORT or smtps://HOST:PORT";
            return -1;
        }
        n->smtp_url = value;
    } else if (strcmp(flag, "--smtp-user") == 0) {
        n->smtp_user = value;
    } else if (strcmp(flag, "--smtp-password-file") == 0) {
        n->smtp_password_file = value;
    } else if (strcmp(flag, "--smtp-ca-file") == 0) {
        n->smtp_ca_file = value;
    } else if (strcmp(flag, "--mail-from") == 0) {
        if (!app_notify_address_ok(value)) {
            *why = "--mail-from is a plain address: name@example.com";
            return -1;
        }
        n->mail_from = value;
    } else if (strcmp(flag, "--public-url") == 0) {
        if (!has_prefix(value, "http://") && !has_prefix(value, "https://")) {
            *why = "--public-url is http://HOST[:PORT] or https://...";
            return -1;
        }
        n->public_url = value;
    } else if (strcmp(flag, "--webhook-secret") == 0) {
        if (!value[0]) {
            *why = "--webhook-secret is empty";
            return -1;
        }
        n->webhook_secret = value;
    } else if (strcmp(flag, "--webhook-allow") == 0) {
        if (!pattern_ok(value) || n->nallow == APP_NOTIFY_ALLOW_MAX) {
            *why = "--webhook-allow is host, host:port or *.domain (16 at most)";
            return -1;
        }
        n->allow[n->nallow++] = value;
    } else {
        return 0;
    }
    return 1;
}

int app_notify_check(const app_notify *n, const char **why) {
    *why = NULL;
    if (n->smtp_url && (!n->mail_from || !n->public_url))
        *why = "--smtp needs --mail-from and --public-url (the link in the email)";
    else if ((n->smtp_user != NULL) != (n->smtp_password_file != NULL))
        *why = "--smtp-user and --smtp-password-file go together";
    else if (n->smtp_password_file && access(n->smtp_password_file, R_OK) != 0)
        *why = "--smtp-password-file cannot be read";
    else if (n->smtp_ca_file && access(n->smtp_ca_file, R_OK) != 0)
        *why = "--smtp-ca-file cannot be read";
    return *why ? -EINVAL : 0;
}

static void export_one(const char *name, const char *value) {
    if (value) setenv(name, value, 1);
    else unsetenv(name);
}

void app_notify_export(const app_notify *n) {
    export_one("COIL_SMTP_URL", n->smtp_url);
    export_one("COIL_SMTP_USER", n->smtp_user);
    export_one("COIL_SMTP_PASSWORD_FILE", n->smtp_password_file);
    export_one("COIL_SMTP_CA_FILE", n->smtp_ca_file);
    export_one("COIL_MAIL_FROM", n->mail_from);
    export_one("COIL_PUBLIC_URL", n->public_url);
    export_one("COIL_WEBHOOK_SECRET", n->webhook_secret);
    char allow[APP_NOTIFY_ALLOW_MAX * 257] = "";
    size_t len = 0;
    for (size_t i = 0; i < n->nallow; i++)
        len += (size_t)snprintf(allow + len, sizeof allow - len, "%s%s", i ? "," : "",
                                n->allow[i]);
    export_one("COIL_WEBHOOK_ALLOW", n->nallow ? allow : NULL);
}

void app_notify_from_env(app_notify *n, char *buf, size_t cap) {
    memset(n, 0, sizeof *n);
    n->smtp_url = getenv("COIL_SMTP_URL");
    n->smtp_user = getenv("COIL_SMTP_USER");
    n->smtp_password_file = getenv("COIL_SMTP_PASSWORD_FILE");
    n->smtp_ca_file = getenv("COIL_SMTP_CA_FILE");
    n->mail_from = getenv("COIL_MAIL_FROM");
    n->public_url = getenv("COIL_PUBLIC_URL");
    n->webhook_secret = getenv("COIL_WEBHOOK_SECRET");
    const char *allow = getenv("COIL_WEBHOOK_ALLOW");
    if (!allow || strlen(allow) >= cap) return;
    memcpy(buf, allow, strlen(allow) + 1);
    for (char *save = NULL, *t = strtok_r(buf, ",", &save); t && n->nallow < APP_NOTIFY_ALLOW_MAX;
         t = strtok_r(NULL, ",", &save))
        n->allow[n->nallow++] = t;
}

/* ------------------------------------------------------------------ webhook targets */

static bool host_matches(const char *pattern, size_t plen, const char *host) {
    if (plen >= 2 && pattern[0] == '*' && pattern[1] == '.') {
        size_t hlen = strlen(host), slen = plen - 1; /* ".domain" */
        return hlen > slen && strncasecmp(host + hlen - slen, pattern + 1, slen) == 0;
    }
    return strlen(host) == plen && strncasecmp(host, pattern, plen) == 0;
}

static bool allowed_by(const char *pattern, const char *host, long port) {
    /* host:port, where host may be [v6]; a bare v6 address has no port. */
    const char *colon = strrchr(pattern, ':');
    if (colon && pattern[0] != '[' && strchr(pattern, ':') != colon) colon = NULL;
    if (colon && pattern[0] == '[' && colon < strchr(pattern, ']')) colon = NULL;
    size_t plen = colon ? (size_t)(colon - pattern) : strlen(pattern);
    if (colon) {
        char *end;
        long want = strtol(colon + 1, &end, 10);
        if (*end || want != port) return false;
    }
    /* curl gives an IPv6 host in brackets, as the pattern has it. */
    return host_matches(pattern, plen, host);
}

bool app_notify_url_allowed(const app_notify *n, const char *url) {
    CURLU *u = curl_url();
    if (!u) return false;
    char *scheme = NULL, *host = NULL, *port = NULL, *user = NULL, *password = NULL;
    bool ok = curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
              curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
              curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK &&
              curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) == CURLUE_OK;
    ok = ok && (strcmp(scheme, "http") == 0 || strcmp(scheme, "https") == 0);
    /* Credentials in a URL would be sent to whoever it names. */
    ok = ok && curl_url_get(u, CURLUPART_USER, &user, 0) != CURLUE_OK &&
         curl_url_get(u, CURLUPART_PASSWORD, &password, 0) != CURLUE_OK;
    bool allowed = false;
    for (size_t i = 0; ok && !allowed && i < n->nallow; i++)
        allowed = allowed_by(n->allow[i], host, strtol(port, NULL, 10));
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
    curl_free(user);
    curl_free(password);
    curl_url_cleanup(u);
    return allowed;
}

/* ------------------------------------------------------------------ notify=TARGET */

static int refuse(char *msg, size_t cap, const char *why) {
    snprintf(msg, cap, "%s", why);
    return -EINVAL;
}

/* A follow-up's payload, written into buf; -EINVAL if it does not fit. */
static int write_payload(json_t *doc, char *buf, size_t cap, char *msg, size_t mcap) {
    if (!doc) return refuse(msg, mcap, "out of memory");
    size_t n = json_dumpb(doc, buf, cap - 1, JSON_COMPACT);
    json_decref(doc);
    if (n == 0 || n >= cap - 1) return refuse(msg, mcap, "the notify target is too long");
    buf[n] = '\0';
    return 0;
}

int app_notify_target(void *arg, const char *kind, const void *json, const char *target,
                      coil_job_followup *out, char *payload, size_t payload_cap, char *msg,
                      size_t cap) {
    const app_notify *n = arg;
    *out = (coil_job_followup){.when = COIL_JOB_ON_DONE, .max_attempts = NOTIFY_ATTEMPTS,
                               .backoff = NOTIFY_BACKOFF, .backoff_cap = NOTIFY_BACKOFF_CAP};
    if (has_prefix(target, "mailto:")) {
        const char *addr = target + 7;
        if (!n->smtp_url)
            return refuse(msg, cap, "email notifications are off: start coil serve with --smtp "
                                    "URL, --mail-from ADDRESS and --public-url URL");
        if (!app_notify_address_ok(addr))
            return refuse(msg, cap, "notify=mailto: needs a plain address: "
                                    "mailto:name@example.com");
        const char *title = json_string_value(json_object_get(json, "title"));
        out->kind = "email.send";
        return write_payload(json_pack("{s:s, s:s?, s:s}", "to", addr, "title", title, "job_kind",
                                       kind),
                             payload, payload_cap, msg, cap);
    }
    if (has_prefix(target, "https://") || has_prefix(target, "http://")) {
        if (n->nallow == 0)
            return refuse(msg, cap, "webhooks are off: start coil serve with --webhook-allow "
                                    "HOST[:PORT] and --webhook-secret SECRET");
        if (!n->webhook_secret)
            return refuse(msg, cap, "webhooks are signed: start coil serve with "
                                    "--webhook-secret SECRET");
        if (!app_notify_url_allowed(n, target))
            return refuse(msg, cap, "this webhook's host is not allowed: add it with "
                                    "--webhook-allow HOST[:PORT]");
        out->kind = "webhook.post";
        return write_payload(json_pack("{s:s}", "url", target), payload, payload_cap, msg, cap);
    }
    return refuse(msg, cap, "notify is mailto:ADDRESS or an https:// webhook URL");
}
