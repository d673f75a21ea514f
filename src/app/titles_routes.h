/* app/titles_routes.h: the titles API of coil serve, over DATA/titles.db
 * (made by coil import titles), through coil_db. */
#ifndef COIL_APP_TITLES_ROUTES_H
#define COIL_APP_TITLES_ROUTES_H

#include <coil/coil.h>

typedef struct app_titles app_titles;

/* Adds GET /titles, /titles/{tconst} and /titles/stats to `srv`, over
 * data_dir/titles.db, opened at the first request (they answer 503 until
 * an import makes it). Returns 0 with *out set, or -ENOMEM. Before the
 * server runs; does not block. */
int app_titles_mount(coil_http_server *srv, const char *data_dir, app_titles **out);

/* After the server has stopped: closes the database. Blocks; a plain
 * thread. NULL is fine. */
void app_titles_free(app_titles *t);

#endif
