/* planet_proxy: a route that calls another HTTP API and answers with part of
 * its JSON, Quart's /planet/<n> calling aiohttp.
 *
 *     ./planet_proxy [PORT] [UPSTREAM]   (defaults: 8000, https://swapi.dev)
 *     curl localhost:8000/planet/1       {"name":"Tatooine","climate":"arid",...}
 *
 * GET /planet/{n} asks UPSTREAM/api/planets/{n}/ with coil's HTTP client. The
 * handler's task waits for the upstream; the loop serves other requests
 * meanwhile (no thread per request, no blocking call). The client's
 * helpers do what aiohttp's do: coil_http_client_status_error() is
 * raise_for_status() (a 404 upstream becomes our 404), and
 * coil_http_client_json() is resp.json(), with a clear error for a body
 * that is not JSON (our 502). The upstream gets 5 s.
 */
#include <coil/coil.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *upstream = "https://swapi.dev";

static int planet(coil_http_request *req, coil_http_response *res, void *arg) {
    (void)arg;
    const char *n = coil_http_param(req, "n");
    char *end;
    long id = n ? strtol(n, &end, 10) : 0;
    if (!n || *end || id < 1 || id > 100000)
        return coil_http_respond_error(res, 400, "a planet is a number");
    char url[512];
    snprintf(url, sizeof url, "%s/api/planets/%ld/", upstream, id);
    coil_http_client_request rq = {.url = url, .timeout = COIL_SEC(5)};
    coil_http_client_response up;
    int err = coil_http_fetch(&rq, &up); /* await session.get(url) */
    if (err) return coil_http_respond_error(res, 502, coil_strerror(err));
    err = coil_http_client_status_error(&up); /* resp.raise_for_status() */
    if (err) {
        int status = err == -ENOENT ? 404 : 502;
        coil_http_client_response_free(&up);
        return coil_http_respond_error(res, status, status == 404 ? "no such planet"
                                                                  : "the upstream failed");
    }
    json_t *doc;
    char why[160];
    err = coil_http_client_json(&up, (void **)&doc, why, sizeof why); /* await resp.json() */
    coil_http_client_response_free(&up);
    if (err) return coil_http_respond_error(res, 502, why);
    json_t *out = json_pack("{s:O?, s:O?, s:O?}", "name", json_object_get(doc, "name"),
                            "climate", json_object_get(doc, "climate"), "population",
                            json_object_get(doc, "population"));
    json_decref(doc);
    if (!out) return -ENOMEM;
    err = coil_http_respond_json(res, 200, out);
    json_decref(out);
    return err;
}

int main(int argc, char **argv) {
    coil_http_config cfg;
    coil_http_config_init(&cfg);
    cfg.host = "127.0.0.1";
    cfg.port = argc > 1 ? (uint16_t)atoi(argv[1]) : 8000;
    if (argc > 2) upstream = argv[2];
    coil_http_server *srv = coil_http_server_new(&cfg);
    if (!srv || coil_http_route(srv, "GET", "/planet/{n}", planet, NULL, 0) != 0) return 1;
    int err = coil_http_server_run(srv); /* until SIGTERM or Ctrl-C */
    coil_http_server_free(srv);
    return err ? 1 : 0;
}
