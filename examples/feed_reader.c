/* feed_reader: seed 003's feed reader. GET /hello/{name} fetches an RSS
 * feed, reads its lastBuildDate with libxml2 and answers
 * "Hello, NAME. Recent feed was built on DATE".
 *
 *     ./feed_reader [PORT] [FEED_URL]   (defaults: 8000, https://realpython.com/atom.xml)
 *     curl localhost:8000/hello/ada
 *     curl localhost:8000/health        fast, even while a slow feed is fetched
 *
 * - The fetch runs under a deadline scope of 10 s: past it coil_http_fetch
 *   returns -ETIMEDOUT and the route answers 504. Only this request's task
 *   waits; /health and every other request are served meanwhile.
 * - The feed is parsed by libxml2 from memory, with the network off
 *   (XML_PARSE_NONET: no external entities) and its errors kept out of the
 *   log. A feed is small: parsing it on the loop takes microseconds. A
 *   large document would go to coil_to_thread().
 * - An Atom feed has <updated> where RSS has <lastBuildDate>: both are read.
 *
 * pkg-config: libxml-2.0
 */
#include <coil/coil.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *feed_url = "https://realpython.com/atom.xml";

/* The text of the first element called `name` under `node`, depth first
 * (xmlFree it), or NULL. */
static xmlChar *find_text(xmlNode *node, const char *name) {
    for (xmlNode *n = node; n; n = n->next) {
        if (n->type == XML_ELEMENT_NODE && xmlStrcmp(n->name, (const xmlChar *)name) == 0)
            return xmlNodeGetContent(n);
        xmlChar *found = find_text(n->children, name);
        if (found) return found;
    }
    return NULL;
}

static int hello(coil_http_request *req, coil_http_response *res, void *arg) {
    (void)arg;
    const char *name = coil_http_param(req, "name");
    coil_scope sc;
    coil_scope_enter(&sc, coil_now() + COIL_SEC(10)); /* async with timeout(10) */
    coil_http_client_response feed;
    int err = coil_http_get(feed_url, &feed);
    coil_scope_exit(&sc);
    if (err == -ETIMEDOUT) return coil_http_respond_error(res, 504, "the feed took over 10 s");
    if (err) return coil_http_respond_error(res, 502, coil_strerror(err));
    if (coil_http_client_status_error(&feed)) {
        coil_http_client_response_free(&feed);
        return coil_http_respond_error(res, 502, "the feed's server failed");
    }
    xmlDoc *doc = xmlReadMemory(feed.body, (int)feed.body_len, "feed.xml", NULL,
                                XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
    coil_http_client_response_free(&feed);
    if (!doc) return coil_http_respond_error(res, 502, "the feed is not XML");
    xmlNode *root = xmlDocGetRootElement(doc);
    xmlChar *built = find_text(root, "lastBuildDate");
    if (!built) built = find_text(root, "updated");
    xmlFreeDoc(doc);
    char text[512];
    snprintf(text, sizeof text, "Hello, %s. Recent feed was built on %s", name,
             built ? (const char *)built : "an unknown date");
    xmlFree(built);
    return coil_http_respond_text(res, 200, text);
}

static int health(coil_http_request *req, coil_http_response *res, void *arg) {
    (void)req, (void)arg;
    return coil_http_respond_text(res, 200, "ok");
}

int main(int argc, char **argv) {
    coil_http_config cfg;
    coil_http_config_init(&cfg);
    cfg.host = "127.0.0.1";
    cfg.port = argc > 1 ? (uint16_t)atoi(argv[1]) : 8000;
    if (argc > 2) feed_url = argv[2];
    xmlInitParser();
    coil_http_server *srv = coil_http_server_new(&cfg);
    if (!srv || coil_http_route(srv, "GET", "/hello/{name}", hello, NULL, 0) != 0 ||
        coil_http_route(srv, "GET", "/health", health, NULL, 0) != 0)
        return 1;
    int err = coil_http_server_run(srv); /* until SIGTERM or Ctrl-C */
    coil_http_server_free(srv);
    xmlCleanupParser();
    return err ? 1 : 0;
}
