/* runtime/switch.c: the context switch, and the hooks that let sanitizers and
 * valgrind follow it.
 *
 * A loop's scheduler runs on the thread's own stack. It resumes a task with
 * jump_fcontext(); the task comes back with another jump_fcontext() when it
 * parks, yields or finishes. Every jump returns the context that was left, so
 * each side saves the other's latest context: the scheduler into task->ctx,
 * the task into loop->sched_ctx. Two jumps per suspend/resume cycle.
 *
 * ASan needs to know the bounds of the stack being switched to
 * (__sanitizer_start/finish_switch_fiber), TSan needs a fiber per task
 * (__tsan_switch_to_fiber), and valgrind learns the stacks in stack.c.
 */
#include "runtime/internal.h"
#include "runtime/sanitizer.h"

/* Boost.Context's assembly has C linkage; its C++ header is not needed. */
extern coil__transfer jump_fcontext(coil__fctx to, void *vp);
extern coil__fctx make_fcontext(void *sp, size_t size, void (*fn)(coil__transfer));

void coil__context_loop_init(coil_loop *loop) {
#ifdef COIL_TSAN
    loop->tsan_sched_fiber = __tsan_get_current_fiber();
#else
    (void)loop;
#endif
}

void coil__context_make(coil_task *t, void (*entry)(coil__transfer)) {
    /* The task struct occupies the top of the stack; the frames go below. */
    char *sp = (char *)((uintptr_t)t & ~(uintptr_t)63);
    t->ctx = make_fcontext(sp, (size_t)(sp - t->stack.limit), entry);
#ifdef COIL_TSAN
    t->tsan_fiber = __tsan_create_fiber(0);
#endif
}

void coil__context_destroy(coil_task *t) {
#ifdef COIL_TSAN
    if (t->tsan_fiber) __tsan_destroy_fiber(t->tsan_fiber);
    t->tsan_fiber = NULL;
#else
    (void)t;
#endif
}

void coil__context_resume(coil_loop *loop, coil_task *t) {
#ifdef COIL_TSAN
    __tsan_switch_to_fiber(t->tsan_fiber, 0);
#endif
#ifdef COIL_ASAN
    void *fake = NULL;
    __sanitizer_start_switch_fiber(&fake, t->stack.limit,
                                   (size_t)(t->stack.top - t->stack.limit));
#endif
    coil__transfer back = jump_fcontext(t->ctx, t);
#ifdef COIL_ASAN
    __sanitizer_finish_switch_fiber(fake, NULL, NULL);
#endif
    t->ctx = back.fctx;
    (void)loop;
}

void coil__context_started(coil_loop *loop, coil_task *t, coil__transfer from) {
    loop->sched_ctx = from.fctx;
#ifdef COIL_ASAN
    __sanitizer_finish_switch_fiber(NULL, &loop->sched_stack_bottom, &loop->sched_stack_size);
#else
    (void)t;
#endif
}

void coil__context_suspend(coil_loop *loop, coil_task *t, bool finished) {
#ifdef COIL_TSAN
    __tsan_switch_to_fiber(loop->tsan_sched_fiber, 0);
#endif
#ifdef COIL_ASAN
    __sanitizer_start_switch_fiber(finished ? NULL : &t->asan_fake_stack,
                                   loop->sched_stack_bottom, loop->sched_stack_size);
#endif
    coil__transfer back = jump_fcontext(loop->sched_ctx, NULL);
    /* Resumed: only a task that did not finish gets here. */
#ifdef COIL_ASAN
    __sanitizer_finish_switch_fiber(t->asan_fake_stack, &loop->sched_stack_bottom,
                                    &loop->sched_stack_size);
#endif
    loop->sched_ctx = back.fctx;
    (void)finished;
    (void)t;
}
