/* tests/http/app/test_static.c: static files, and paths that try to leave the
 * root. The server runs on a thread: COIL_TEST_THREADS.
 *
 * Layout made for each test, in a fresh temporary directory:
 *
 *     secret.txt              outside the root: must never be served
 *     root/index.txt          "hello static\n"
 *     root/sub/style.css
 *     root/link-out  ->  ../secret.txt   (a symlink out of the root)
 *     root/link-in   ->  index.txt       (a symlink inside it: fine)
 *     root/sub/up    ->  ..              (a directory link, still inside)
 */
#include "http/app/app_harness.h"

#include <fcntl.h>
#include <sys/stat.h>

static const char SECRET[] = "the secret that must stay put";

typedef struct tree {
    char dir[64];                 /* the temporary directory */
    char root[96];                /* dir/root */
} tree;

static void put_file(const char *dir, const char *name, const char *text) {
    char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    ASSERT(fd >= 0);
    ASSERT_EQ(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
}

static void make_tree(tree *t) {
    snprintf(t->dir, sizeof t->dir, "/tmp/coil-static-XXXXXX");
    ASSERT(mkdtemp(t->dir) != NULL);
    snprintf(t->root, sizeof t->root, "%s/root", t->dir);
    ASSERT_EQ(mkdir(t->root, 0755), 0);
    char sub[128], path[256];
    snprintf(sub, sizeof sub, "%s/sub", t->root);
    ASSERT_EQ(mkdir(sub, 0755), 0);
    put_file(t->dir, "secret.txt", SECRET);
    put_file(t->root, "index.txt", "hello static\n");
    put_file(sub, "style.css", "body { color: red }\n");
    snprintf(path, sizeof path, "%s/link-out", t->root);
    ASSERT_EQ(symlink("../secret.txt", path), 0);
    snprintf(path, sizeof path, "%s/link-in", t->root);
    ASSERT_EQ(symlink("index.txt", path), 0);
    snprintf(path, sizeof path, "%s/up", sub);
    ASSERT_EQ(symlink("..", path), 0);
}

static void remove_tree(tree *t) {
    const char *names[] = {"root/sub/up", "root/sub/style.css", "root/sub", "root/link-out",
                           "root/link-in", "root/index.txt", "root", "secret.txt"};
    char path[256];
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", t->dir, names[i]);
        if (unlink(path) != 0) rmdir(path);
    }
    rmdir(t->dir);
}

static coil_http_server *static_server(const tree *t) {
    coil_http_server *srv = harness_server();
    ASSERT_EQ(coil_http_static(srv, "/static", t->root), 0);
    return srv;
}

TEST(serves_files_with_content_and_type) {
    tree t;
    make_tree(&t);
    harness h;
    harness_start(&h, static_server(&t));
    reply r;
    char v[128];
    harness_get(h.port, "/static/index.txt", &r);
    ASSERT_EQ(r.status, 200);
    ASSERT_STR_EQ(reply_body(&r), "hello static\n");
    ASSERT(reply_header(&r, "Content-Type", v, sizeof v));
    ASSERT_EQ(strncmp(v, "text/plain", 10), 0);
    ASSERT_STR_EQ(reply_header(&r, "Content-Length", v, sizeof v), "13");

    harness_get(h.port, "/static/sub/style.css", &r);
    ASSERT_EQ(r.status, 200);
    ASSERT_STR_EQ(reply_body(&r), "body { color: red }\n");
    ASSERT(reply_header(&r, "Content-Type", v, sizeof v));
    ASSERT_EQ(strncmp(v, "text/css", 8), 0);

    harness_get(h.port, "/static/link-in", &r); /* a link that stays inside */
    ASSERT_EQ(r.status, 200);
    ASSERT_STR_EQ(reply_body(&r), "hello static\n");
    harness_get(h.port, "/static/sub/up/index.txt", &r);
    ASSERT_EQ(r.status, 200);
    harness_stop(&h);
    remove_tree(&t);
}

TEST(head_sends_the_length_without_the_body) {
    tree t;
    make_tree(&t);
    harness h;
    harness_start(&h, static_server(&t));
    reply r;
    char v[32];
    harness_request(h.port, "HEAD", "/static/index.txt", NULL, &r);
    ASSERT_EQ(r.status, 200);
    ASSERT_EQ(r.body_len, 0);
    ASSERT_STR_EQ(reply_header(&r, "Content-Length", v, sizeof v), "13");
    harness_stop(&h);
    remove_tree(&t);
}

TEST(missing_files_and_directories_are_404) {
    tree t;
    make_tree(&t);
    harness h;
    harness_start(&h, static_server(&t));
    reply r;
    harness_get(h.port, "/static/nope.txt", &r);
    ASSERT_EQ(r.status, 404);
    harness_get(h.port, "/static/sub", &r);
    ASSERT_EQ(r.status, 404);
    harness_get(h.port, "/static/", &r);
    ASSERT_EQ(r.status, 404);
    harness_get(h.port, "/static/sub//style.css", &r);
    ASSERT_EQ(r.status, 404);
    harness_request(h.port, "POST", "/static/index.txt", "Content-Length: 0\r\n", &r);
    ASSERT_EQ(r.status, 405);
    harness_stop(&h);
    remove_tree(&t);
}

/* Asserts that `path` is refused and the secret is not in the answer. */
static void refused(int port, const char *path) {
    reply r;
    harness_get(port, path, &r);
    if (r.status != 400 && r.status != 403 && r.status != 404)
        coil_test_fail(__FILE__, __LINE__, "%s: status %d:\n%s", path, r.status, r.raw);
    if (strstr(r.raw, SECRET)) coil_test_fail(__FILE__, __LINE__, "%s leaked the secret", path);
}

TEST(paths_that_escape_the_root_are_refused) {
    tree t;
    make_tree(&t);
    harness h;
    harness_start(&h, static_server(&t));
    refused(h.port, "/static/../secret.txt");
    refused(h.port, "/static/sub/../../secret.txt");
    refused(h.port, "/static/%2e%2e/secret.txt");
    refused(h.port, "/static/%2E%2E/secret.txt");
    refused(h.port, "/static/sub/%2e%2e%2f%2e%2e%2fsecret.txt");
    refused(h.port, "/static/.%2e/secret.txt");
    refused(h.port, "/static/./index.txt/../../secret.txt");
    refused(h.port, "/static/link-out");
    refused(h.port, "/static/sub/up/../secret.txt");

    /* The ones the router sees as dot segments get 403 from the mount. */
    reply r;
    harness_get(h.port, "/static/%2e%2e/secret.txt", &r);
    ASSERT(r.status == 400 || r.status == 403);
    harness_get(h.port, "/static/link-out", &r); /* a symlink out */
    ASSERT_EQ(r.status, 403);
    harness_stop(&h);
    remove_tree(&t);
}

TEST(bad_mounts) {
    tree t;
    make_tree(&t);
    coil_http_server *srv = harness_server();
    char file[160];
    snprintf(file, sizeof file, "%s/index.txt", t.root);
    ASSERT_EQ(coil_http_static(srv, "static", t.root), -EINVAL);
    ASSERT_EQ(coil_http_static(srv, "/s/{x}", t.root), -EINVAL);
    ASSERT_EQ(coil_http_static(srv, "/s", "/nonexistent/coil/dir"), -ENOENT);
    ASSERT_EQ(coil_http_static(srv, "/s", file), -ENOTDIR);
    ASSERT_EQ(coil_http_static(srv, "/s/", t.root), 0);     /* a trailing slash is fine */
    ASSERT_EQ(coil_http_static(srv, "/s", t.root), -EEXIST); /* the same route again */
    coil_http_server_free(srv);
    remove_tree(&t);
}
