/* app/kind_notify.h: notifications of coil serve: notify=mailto:ADDRESS and
 * notify=https://URL on POST /jobs/{kind}, and the two job kinds that
 * deliver them.
 *
 *   email.send    {"to", "title", "job_kind", "parent": {...}}
 *                 -> {"to", "message_id"}: the link to the parent's result
 *                 by SMTP (libcurl), plain text and HTML
 *   webhook.post  {"url", "parent": {...}}
 *                 -> {"status": N}: the parent's final status as JSON,
 *                 signed with HMAC-SHA256 (libcrypto)
 *
 * A notification is a follow-up job of the job it tells about (jobs.h):
 * written in the transaction that ends that job, retried like any job.
 * Neither kind is in the table of kinds.h: they are enqueued only as
 * follow-ups, never POSTed.
 *
 * The settings come from coil serve's flags, and reach the worker
 * processes that deliver as environment variables (a worker inherits its
 * supervisor's environment): the flag --smtp is COIL_SMTP_URL, and so on
 * (app_notify_export). The SMTP password stays in its file, which the
 * worker reads, so that it is not in any process's environment.
 */
#ifndef COIL_APP_KIND_NOTIFY_H
#define COIL_APP_KIND_NOTIFY_H

#include <coil/coil.h>
#include <stdbool.h>
#include <stddef.h>

enum { APP_NOTIFY_ALLOW_MAX = 16 };

typedef struct app_notify {
    const char *smtp_url;           /* --smtp smtp://host:port or smtps:// */
    const char *smtp_user;          /* --smtp-user */
    const char *smtp_password_file; /* --smtp-password-file */
    const char *smtp_ca_file;       /* --smtp-ca-file: trust this CA for TLS */
    const char *mail_from;          /* --mail-from */
    const char *public_url;         /* --public-url: where result links point */
    const char *webhook_secret;     /* --webhook-secret: the HMAC key */
    const char *allow[APP_NOTIFY_ALLOW_MAX]; /* --webhook-allow, repeatable */
    size_t nallow;
} app_notify;

/* Takes `flag` and its value if they are a notification setting. Returns 1
 * (taken), 0 (not one of these flags), or -1 (a bad value: *why says). */
int app_notify_flag(app_notify *n, const char *flag, const char *value, const char **why);

/* The flags' lines for a usage message. */
extern const char app_notify_usage[];

/* Checks the settings together (a password file that can be read, a URL
 * that is a URL). Returns 0, or -EINVAL with *why. */
int app_notify_check(const app_notify *n, const char **why);

/* Puts the settings into the environment, for the worker processes. Call
 * before the job pool starts (setenv is not thread-safe). */
void app_notify_export(const app_notify *n);

/* The settings as a worker process sees them (from the environment). The
 * strings are the environment's; allow[] points into `buf`. */
void app_notify_from_env(app_notify *n, char *buf, size_t cap);

/* coil_jobs_config.notify for coil serve: `arg` is an app_notify. */
int app_notify_target(void *arg, const char *kind, const void *json, const char *target,
                      coil_job_followup *out, char *payload, size_t payload_cap, char *msg,
                      size_t cap);

/* Whether `url` is an http(s) URL without credentials whose host (and
 * port) one of the patterns allows: "host", "host:port", "*.domain",
 * "*.domain:port". A pattern without a port allows any port. */
bool app_notify_url_allowed(const app_notify *n, const char *url);

/* Whether `addr` is a plain mail address: local@domain, printable ASCII,
 * none of the characters that would break a header or an SMTP command. */
bool app_notify_address_ok(const char *addr);

#endif
