/* tests/runtime/test_locals.c: task-local values (contextvars semantics),
 * including what functions run by coil_to_thread() see.
 *
 * COIL_TEST_THREADS: runs under TSan too.
 */
#include "test.h"

COIL_LOCAL_KEY(request_id, "request_id");
COIL_LOCAL_KEY(user, "user");

static int A, B, C; /* distinct addresses to store as values */

static coil_result read_request_id(void *arg) {
    (void)arg;
    return coil_ok(coil_local_get(&request_id));
}

static coil_result unset_main(void *arg) {
    (void)arg;
    ASSERT(coil_local_get(&request_id) == NULL);
    ASSERT_EQ(coil_local_set(&request_id, &A), 0);
    ASSERT(coil_local_get(&request_id) == &A);
    ASSERT(coil_local_get(&user) == NULL);
    ASSERT_EQ(coil_local_set(&request_id, &B), 0); /* replaces */
    ASSERT(coil_local_get(&request_id) == &B);
    ASSERT_EQ(coil_local_set(&request_id, NULL), 0);
    ASSERT(coil_local_get(&request_id) == NULL);
    return coil_ok(NULL);
}

TEST(get_set_in_one_task) { RUN_MAIN(unset_main, NULL); }

TEST(outside_tasks_set_is_eperm) {
    ASSERT_EQ(coil_local_set(&request_id, &A), -EPERM);
    ASSERT(coil_local_get(&request_id) == NULL);
}

static coil_result copy_at_spawn_main(void *arg) {
    (void)arg;
    ASSERT_EQ(coil_local_set(&request_id, &A), 0);
    coil_result r;
    ASSERT_EQ(coil_join(coil_spawn(read_request_id, NULL), &r), 0);
    ASSERT(r.value == &A);
    return coil_ok(NULL);
}

TEST(child_gets_copy_at_spawn) { RUN_MAIN(copy_at_spawn_main, NULL); }

/* Sets its own value, lets the sibling run, and reports what it reads. */
static coil_result setter_child(void *arg) {
    (void)arg;
    if (coil_local_set(&request_id, &B)) return coil_fail(-ENOMEM);
    if (coil_yield()) return coil_fail(-ECANCELED);
    return coil_ok(coil_local_get(&request_id));
}

static coil_result reader_child(void *arg) {
    (void)arg;
    /* Runs after the setter's set (spawn order is run order). */
    if (coil_yield()) return coil_fail(-ECANCELED);
    return coil_ok(coil_local_get(&request_id));
}

static coil_result isolation_main(void *arg) {
    (void)arg;
    ASSERT_EQ(coil_local_set(&request_id, &A), 0);
    coil_task *setter = coil_spawn(setter_child, NULL);
    coil_task *reader = coil_spawn(reader_child, NULL);
    coil_result rs, rr;
    ASSERT_EQ(coil_join(setter, &rs), 0);
    ASSERT_EQ(coil_join(reader, &rr), 0);
    ASSERT(rs.value == &B);                       /* the child sees its own set */
    ASSERT(rr.value == &A);                       /* the sibling does not */
    ASSERT(coil_local_get(&request_id) == &A);    /* nor does the parent */
    return coil_ok(NULL);
}

TEST(set_in_child_not_seen_by_parent_or_siblings) { RUN_MAIN(isolation_main, NULL); }

static coil_result wait_then_read(void *arg) {
    coil_event *e = arg;
    if (coil_event_wait(e)) return coil_fail(-ECANCELED);
    return coil_ok(coil_local_get(&request_id));
}

static coil_result parent_set_after_spawn_main(void *arg) {
    (void)arg;
    coil_event e;
    coil_event_init(&e);
    ASSERT_EQ(coil_local_set(&request_id, &A), 0);
    coil_task *old_child = coil_spawn(wait_then_read, &e);
    ASSERT_EQ(coil_yield(), 0); /* it has started and waits */
    ASSERT_EQ(coil_local_set(&request_id, &B), 0);
    coil_task *new_child = coil_spawn(wait_then_read, &e);
    coil_event_set(&e);
    coil_result r;
    ASSERT_EQ(coil_join(old_child, &r), 0);
    ASSERT(r.value == &A);
    ASSERT_EQ(coil_join(new_child, &r), 0);
    ASSERT(r.value == &B);
    return coil_ok(NULL);
}

TEST(parent_set_after_spawn_not_seen_by_child) { RUN_MAIN(parent_set_after_spawn_main, NULL); }

static coil_result grandchild(void *arg) {
    (void)arg;
    return coil_ok(coil_local_get(&user));
}

static coil_result middle_child(void *arg) {
    (void)arg;
    if (coil_local_set(&user, &C)) return coil_fail(-ENOMEM);
    coil_result r;
    int err = coil_join(coil_spawn(grandchild, NULL), &r);
    if (err) return coil_fail(err);
    if (coil_local_get(&request_id) != &A) return coil_fail(-EINVAL);
    return r;
}

static coil_result grandchild_main(void *arg) {
    (void)arg;
    ASSERT_EQ(coil_local_set(&request_id, &A), 0);
    coil_result r;
    ASSERT_EQ(coil_join(coil_spawn(middle_child, NULL), &r), 0);
    ASSERT_EQ(r.err, 0);
    ASSERT(r.value == &C);
    ASSERT(coil_local_get(&user) == NULL);
    return coil_ok(NULL);
}

TEST(values_pass_down_generations) { RUN_MAIN(grandchild_main, NULL); }

/* Many keys: the block grows, and a child still copies all of them. */
static coil_local_key many[20];
static int values[20];

static coil_result read_many(void *arg) {
    (void)arg;
    for (int i = 0; i < 20; i++)
        if (coil_local_get(&many[i]) != &values[i]) return coil_fail(-EINVAL);
    return coil_ok(NULL);
}

static coil_result many_keys_main(void *arg) {
    (void)arg;
    for (int i = 0; i < 20; i++) ASSERT_EQ(coil_local_set(&many[i], &values[i]), 0);
    coil_result r;
    ASSERT_EQ(coil_join(coil_spawn(read_many, NULL), &r), 0);
    ASSERT_EQ(r.err, 0);
    ASSERT_EQ(read_many(NULL).err, 0);
    return coil_ok(NULL);
}

TEST(many_keys) { RUN_MAIN(many_keys_main, NULL); }

/* ------------------------------------------------------------------ offloaded functions */

typedef struct seen {
    void *request_id;
    void *user;
    int set_err;
} seen;

static void *look_from_thread(void *arg) {
    seen *s = arg;
    s->request_id = coil_local_get(&request_id);
    s->user = coil_local_get(&user);
    s->set_err = coil_local_set(&request_id, &C);
    return s;
}

static coil_result offload_look(void *arg) {
    seen *s = arg;
    void *out = NULL;
    int err = coil_to_thread(look_from_thread, s, &out);
    if (err) return coil_fail(err);
    return coil_ok(out);
}

static coil_result setter_then_offload(void *arg) {
    if (coil_local_set(&request_id, &C)) return coil_fail(-ENOMEM);
    return offload_look(arg);
}

static coil_result to_thread_main(void *arg) {
    (void)arg;
    ASSERT_EQ(coil_local_set(&request_id, &A), 0);
    ASSERT_EQ(coil_local_set(&user, &B), 0);
    seen s = {NULL, NULL, 0};
    coil_result r = offload_look(&s);
    ASSERT_EQ(r.err, 0);
    ASSERT(s.request_id == &A);
    ASSERT(s.user == &B);
    ASSERT_EQ(s.set_err, -EPERM);               /* read-only there */
    ASSERT(coil_local_get(&request_id) == &A);  /* and nothing changed */

    /* A child that overrides a value offloads with its own view. */
    seen cs = {NULL, NULL, 0};
    coil_task *t = coil_spawn(setter_then_offload, &cs);
    ASSERT_EQ(coil_join(t, &r), 0);
    ASSERT_EQ(r.err, 0);
    ASSERT(cs.request_id == &C);
    ASSERT(cs.user == &B);
    ASSERT(coil_local_get(&request_id) == &A);
    return coil_ok(NULL);
}

TEST(offloaded_functions_see_task_values) { RUN_MAIN(to_thread_main, NULL); }

/* A pool thread that ran one task's call keeps nothing for the next. */
static coil_result offload_without_values(void *arg) {
    seen *s = arg;
    return offload_look(s);
}

static coil_result no_leak_main(void *arg) {
    (void)arg;
    ASSERT_EQ(coil_local_set(&request_id, &A), 0);
    seen s = {NULL, NULL, 0};
    ASSERT_EQ(offload_look(&s).err, 0);
    ASSERT(s.request_id == &A);
    ASSERT_EQ(coil_local_set(&request_id, NULL), 0);
    seen s2 = {&B, &B, 0};
    ASSERT_EQ(offload_without_values(&s2).err, 0);
    ASSERT(s2.request_id == NULL);
    ASSERT(s2.user == NULL);
    return coil_ok(NULL);
}

TEST(offloaded_values_do_not_leak_between_calls) {
    ASSERT_EQ(coil_threadpool_configure(1, 0), 0); /* the same thread runs both */
    RUN_MAIN(no_leak_main, NULL);
}
