/* tests/runtime/test_group.c: task groups, gather, race, as_completed. */
#include "test.h"

static coil_result sleep_then(void *arg) {
    int ms = (int)(intptr_t)arg;
    int err = coil_sleep(COIL_MSEC(ms));
    if (err) return coil_fail(err);
    return coil_ok((void *)(intptr_t)ms);
}

static coil_result fail_after(void *arg) {
    int ms = (int)(intptr_t)arg;
    int err = coil_sleep(COIL_MSEC(ms));
    return coil_fail(err ? err : -EIO);
}

static coil_result group_ok_main(void *arg) {
    (void)arg;
    coil_group g;
    coil_group_init(&g);
    for (int i = 1; i <= 5; i++) ASSERT(coil_group_spawn(&g, sleep_then, (void *)(intptr_t)i));
    ASSERT_EQ(coil_group_wait(&g), 0);
    ASSERT_EQ(coil_group_error_count(&g), 0);
    coil_group_destroy(&g);
    return coil_ok(NULL);
}

TEST(group_waits_for_all) { RUN_MAIN(group_ok_main, NULL); }

static int cancelled_siblings;

static coil_result sibling(void *arg) {
    (void)arg;
    int err = coil_sleep(COIL_SEC(30));
    if (err == -ECANCELED) cancelled_siblings++;
    return coil_fail(err);
}

static coil_result group_fail_main(void *arg) {
    (void)arg;
    coil_group g;
    coil_group_init(&g);
    for (int i = 0; i < 3; i++) coil_group_spawn(&g, sibling, NULL);
    coil_group_spawn_named(&g, "breaker", fail_after, (void *)5);
    coil_time start = coil_now();
    ASSERT_EQ(coil_group_wait(&g), -EIO);
    ASSERT(coil_now() - start < COIL_SEC(20));
    ASSERT_EQ(cancelled_siblings, 3);
    /* Siblings cancelled by the group are not failures. */
    ASSERT_EQ(coil_group_error_count(&g), 1);
    const coil_group_error *e = coil_group_error_at(&g, 0);
    ASSERT_EQ(e->err, -EIO);
    ASSERT_STR_EQ(e->name, "breaker");
    ASSERT_CONTAINS(e->file, "test_group.c");
    ASSERT(coil_group_error_at(&g, 1) == NULL);
    coil_group_destroy(&g);
    return coil_ok(NULL);
}

TEST(first_failure_cancels_siblings) {
    cancelled_siblings = 0;
    RUN_MAIN(group_fail_main, NULL);
}

static coil_result fail_now(void *arg) { return coil_fail((int)(intptr_t)arg); }

static coil_result every_error_main(void *arg) {
    (void)arg;
    coil_group g;
    coil_group_init(&g);
    /* Both fail before either can be cancelled: both are reported. */
    coil_group_spawn(&g, fail_now, (void *)-EIO);
    coil_group_spawn(&g, fail_now, (void *)-EPIPE);
    ASSERT_EQ(coil_group_wait(&g), -EIO);
    ASSERT_EQ(coil_group_error_count(&g), 1 + (coil_group_error_at(&g, 1) != NULL));
    coil_group_destroy(&g);
    return coil_ok(NULL);
}

TEST(group_reports_errors) { RUN_MAIN(every_error_main, NULL); }

static coil_result group_in_task(void *arg) {
    int *done = arg;
    coil_group g;
    coil_group_init(&g);
    for (int i = 0; i < 4; i++) coil_group_spawn(&g, sibling, NULL);
    int err = coil_group_wait(&g);
    coil_group_destroy(&g);
    *done = 1;
    return coil_fail(err);
}

static coil_result cancel_parent_main(void *arg) {
    (void)arg;
    int done = 0;
    coil_task *parent = coil_spawn(group_in_task, &done);
    ASSERT_EQ(coil_sleep(COIL_MSEC(5)), 0);
    coil_cancel(parent);
    coil_result r;
    ASSERT_EQ(coil_join(parent, &r), 0);
    ASSERT_EQ(r.err, -ECANCELED);
    ASSERT_EQ(done, 1);
    ASSERT_EQ(cancelled_siblings, 4);
    return coil_ok(NULL);
}

TEST(cancelling_owner_cancels_children) {
    cancelled_siblings = 0;
    RUN_MAIN(cancel_parent_main, NULL);
}

static coil_result deadline_covers_children_main(void *arg) {
    (void)arg;
    coil_scope s;
    coil_scope_enter(&s, coil_now() + COIL_MSEC(10));
    coil_group g;
    coil_group_init(&g);
    for (int i = 0; i < 3; i++) coil_group_spawn(&g, sibling, NULL);
    /* The owner is busy elsewhere when the deadline fires: the children are
     * cancelled at that moment anyway, not when the owner gets to wait. */
    coil_scope inner;
    coil_scope_enter_shielded(&inner, COIL_NEVER);
    ASSERT_EQ(coil_sleep(COIL_MSEC(40)), 0);
    ASSERT_EQ(cancelled_siblings, 3);
    coil_scope_exit(&inner);
    ASSERT_EQ(coil_group_wait(&g), -ETIMEDOUT);
    coil_group_destroy(&g);
    ASSERT_EQ(coil_scope_exit(&s), -ETIMEDOUT);
    return coil_ok(NULL);
}

TEST(deadline_scope_cancels_group_children) {
    cancelled_siblings = 0;
    RUN_MAIN(deadline_covers_children_main, NULL);
}

static coil_result late_spawn_main(void *arg) {
    (void)arg;
    coil_group g;
    coil_group_init(&g);
    coil_group_cancel(&g);
    int started = 0;
    coil_group_spawn(&g, sibling, &started);
    ASSERT_EQ(coil_group_wait(&g), 0);
    coil_group_destroy(&g);
    ASSERT_EQ(cancelled_siblings, 0); /* never even started */
    return coil_ok(NULL);
}

TEST(spawn_into_cancelled_group_never_starts) {
    cancelled_siblings = 0;
    RUN_MAIN(late_spawn_main, NULL);
}

static coil_result nested_groups_main(void *arg) {
    (void)arg;
    coil_group outer;
    coil_group_init(&outer);
    coil_group_spawn(&outer, group_in_task, &(int){0});
    coil_group_spawn(&outer, fail_after, (void *)5);
    ASSERT_EQ(coil_group_wait(&outer), -EIO);
    ASSERT_EQ(cancelled_siblings, 4); /* grandchildren cancelled too */
    coil_group_destroy(&outer);
    return coil_ok(NULL);
}

TEST(cancellation_reaches_grandchildren) {
    cancelled_siblings = 0;
    RUN_MAIN(nested_groups_main, NULL);
}

/* ------------------------------------------------------------------ gather */

static coil_result gather_main(void *arg) {
    (void)arg;
    coil_call calls[4] = {
        {sleep_then, (void *)30, "a", {0}},
        {fail_after, (void *)10, "b", {0}},
        {sleep_then, (void *)20, "c", {0}},
        {sleep_then, (void *)5, "d", {0}},
    };
    /* return_exceptions=True: b's failure does not cancel the others. */
    ASSERT_EQ(coil_gather(calls, 4), -EIO);
    ASSERT_EQ(calls[0].result.err, 0);
    ASSERT_EQ((intptr_t)calls[0].result.value, 30);
    ASSERT_EQ(calls[1].result.err, -EIO);
    ASSERT_EQ((intptr_t)calls[2].result.value, 20);
    ASSERT_EQ((intptr_t)calls[3].result.value, 5);
    coil_call ok[2] = {{sleep_then, (void *)1, NULL, {0}}, {sleep_then, (void *)2, NULL, {0}}};
    ASSERT_EQ(coil_gather(ok, 2), 0);
    ASSERT_EQ(coil_gather(NULL, 0), 0);
    return coil_ok(NULL);
}

TEST(gather_collects_results_and_errors) { RUN_MAIN(gather_main, NULL); }

static coil_result gather_timeout_main(void *arg) {
    (void)arg;
    coil_call calls[2] = {{sleep_then, (void *)1, NULL, {0}}, {sleep_then, (void *)30000, NULL, {0}}};
    coil_scope s;
    coil_scope_enter(&s, coil_now() + COIL_MSEC(20));
    ASSERT_EQ(coil_gather(calls, 2), -ETIMEDOUT);
    coil_scope_exit(&s);
    ASSERT_EQ((intptr_t)calls[0].result.value, 1);
    ASSERT_EQ(calls[1].result.err, -ECANCELED);
    return coil_ok(NULL);
}

TEST(gather_under_deadline) { RUN_MAIN(gather_timeout_main, NULL); }

/* ------------------------------------------------------------------ race */

static int loser_cancelled;

static coil_result resolver(void *arg) {
    int ms = (int)(intptr_t)arg;
    int err = coil_sleep(COIL_MSEC(ms));
    if (err == -ECANCELED) loser_cancelled++;
    if (err) return coil_fail(err);
    return coil_ok((void *)(intptr_t)ms);
}

static coil_result race_main(void *arg) {
    (void)arg;
    coil_call calls[3] = {
        {resolver, (void *)300, "slow-dns", {0}},
        {resolver, (void *)5, "fast-dns", {0}},
        {resolver, (void *)200, "mid-dns", {0}},
    };
    size_t winner = 99;
    coil_time start = coil_now();
    ASSERT_EQ(coil_race(calls, 3, &winner), 0);
    ASSERT_EQ(winner, 1);
    ASSERT_EQ((intptr_t)calls[1].result.value, 5);
    ASSERT_EQ(loser_cancelled, 2);
    ASSERT_EQ(calls[0].result.err, -ECANCELED);
    ASSERT_EQ(calls[2].result.err, -ECANCELED);
    ASSERT(coil_now() - start < COIL_MSEC(190)); /* did not wait for losers */
    return coil_ok(NULL);
}

TEST(race_first_success_wins_losers_cancelled) {
    loser_cancelled = 0;
    RUN_MAIN(race_main, NULL);
}

static coil_result race_skip_failures_main(void *arg) {
    (void)arg;
    coil_call calls[2] = {{fail_after, (void *)1, NULL, {0}}, {resolver, (void *)10, NULL, {0}}};
    size_t winner = 99;
    ASSERT_EQ(coil_race(calls, 2, &winner), 0); /* a failure does not win */
    ASSERT_EQ(winner, 1);
    coil_call bad[2] = {{fail_after, (void *)1, NULL, {0}}, {fail_after, (void *)2, NULL, {0}}};
    ASSERT_EQ(coil_race(bad, 2, &winner), -EIO);
    ASSERT_EQ(coil_race(NULL, 0, &winner), -EINVAL);
    return coil_ok(NULL);
}

TEST(race_failures_do_not_win) { RUN_MAIN(race_skip_failures_main, NULL); }

/* ------------------------------------------------------------------ as_completed */

static coil_result as_completed_main(void *arg) {
    (void)arg;
    coil_call calls[4] = {
        {sleep_then, (void *)40, NULL, {0}},
        {sleep_then, (void *)10, NULL, {0}},
        {fail_after, (void *)20, NULL, {0}},
        {sleep_then, (void *)30, NULL, {0}},
    };
    coil_as_completed ac;
    ASSERT_EQ(coil_as_completed_start(&ac, calls, 4), 0);
    size_t order[4], idx;
    for (int i = 0; i < 4; i++) {
        ASSERT_EQ(coil_as_completed_next(&ac, &idx), 0);
        order[i] = idx;
    }
    ASSERT_EQ(coil_as_completed_next(&ac, &idx), -EPIPE);
    coil_as_completed_stop(&ac);
    ASSERT_EQ(order[0], 1);
    ASSERT_EQ(order[1], 2);
    ASSERT_EQ(order[2], 3);
    ASSERT_EQ(order[3], 0);
    ASSERT_EQ(calls[2].result.err, -EIO);
    return coil_ok(NULL);
}

TEST(as_completed_in_finishing_order) { RUN_MAIN(as_completed_main, NULL); }

static coil_result as_completed_stop_main(void *arg) {
    (void)arg;
    coil_call calls[3] = {
        {resolver, (void *)5, NULL, {0}},
        {resolver, (void *)30000, NULL, {0}},
        {resolver, (void *)30000, NULL, {0}},
    };
    coil_as_completed ac;
    ASSERT_EQ(coil_as_completed_start(&ac, calls, 3), 0);
    size_t idx;
    ASSERT_EQ(coil_as_completed_next(&ac, &idx), 0);
    ASSERT_EQ(idx, 0);
    coil_as_completed_stop(&ac); /* the rest are cancelled and awaited */
    ASSERT_EQ(loser_cancelled, 2);
    ASSERT_EQ(calls[1].result.err, -ECANCELED);
    return coil_ok(NULL);
}

TEST(as_completed_stop_cancels_rest) {
    loser_cancelled = 0;
    RUN_MAIN(as_completed_stop_main, NULL);
}
