/* app/dashboard.h: the dashboard of coil serve, at GET /.
 *
 * One page (src/app/dashboard/index.html, compiled into the binary) and
 * one event stream that feeds all of it, GET /dashboard/events: an event
 * "snapshot" every second with everything the page shows, and first an
 * event "history" with the last ten minutes of job counters, which a
 * sampler thread takes once a second whether or not a page is open. A
 * closed tab ends its stream at the next send; nothing else is kept per
 * page.
 *
 * The page's buttons call the job API (DELETE /jobs/{id}, POST
 * /jobs/{id}/retry), which refuses cross-site requests.
 */
#ifndef COIL_APP_DASHBOARD_H
#define COIL_APP_DASHBOARD_H

#include <coil/coil.h>

typedef struct app_dashboard app_dashboard;

/* Mounts GET / and GET /dashboard/events for `jobs`, and starts the
 * sampler. Returns 0 or a negative errno. */
int app_dashboard_mount(coil_http_server *srv, coil_jobs *jobs, app_dashboard **out);

/* Stops the sampler and frees it, after the server has stopped. */
void app_dashboard_free(app_dashboard *d);

#endif
