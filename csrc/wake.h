/* Waking a thread blocked in a system call, so that its pending exception is
 * raised.  One implementation per platform (wake_linux.c,
 * wake_unsupported.c); the policy (which calls, which results) is Python's,
 * in src/threadinject/_syscalls.py. */
#ifndef THREADINJECT_WAKE_H
#define THREADINJECT_WAKE_H

#include "compat.h"

/* _wake_install(signo, /) -> None: install the handler for real-time signal
 * `signo` (once; later calls with the same signo do nothing). */
PyObject *ti_wake_install(PyObject *module, PyObject *const *args, Py_ssize_t nargs);

/* _wake_send(tid, ip, arg0, result, zero_fdsets, rewrite, guard_addr,
 * guard_value, /) -> bool: arm the slot of thread `tid` (its kernel id,
 * Thread.native_id) for the system call that returns at `ip` with first
 * argument `arg0`, then send the signal to that thread.  When the handler
 * finds the thread returning -EINTR from exactly that call (and, if
 * `guard_addr` is not 0, the word at `guard_addr` holding `guard_value`), it
 * replaces the result with `result` (if `rewrite`), zeroing select()'s fd sets
 * if `zero_fdsets`.  Returns whether the signal was sent. */
PyObject *ti_wake_send(PyObject *module, PyObject *const *args, Py_ssize_t nargs);

/* A lock wait to end: the futex call that returns at `ip` with first
 * argument `arg0`, whose result becomes `result` if the word at `guard_addr`
 * holds `guard_value`. */
typedef struct {
    unsigned long ip, arg0, guard_addr, guard_value;
    long result;
} ti_lock_wake;

/* Fill `out` from `wake`, the tuple (ip, result, guard_addr, guard_value),
 * and `arg0`.  Returns 0, or -1 with an exception (also when the handler is
 * not installed or this platform has no wake). */
int ti_lock_wake_parse(PyObject *wake, unsigned long arg0, ti_lock_wake *out);

/* Arm the slot of thread `tid` for `wait`, send the signal and wait, without
 * letting the GIL go, for the handler to run (up to 0.02 s; then the arming
 * is withdrawn).  Returns 1 if the handler rewrote the call's result, 0 if it
 * did not (the thread was not returning from that call, or had ended),
 * -ETIMEDOUT if the signal did not come in time, or -errno if it could not
 * be sent; it sets no exception.  kill() calls it with the thread's exception
 * scheduled and the GIL held, so that no release of the lock comes between. */
int ti_wake_and_wait(long tid, const ti_lock_wake *wait);

/* A system call to hold a thread at: the one returning at `ip` with first
 * argument `arg0`.  Once let go, the call returns `result` instead of EINTR
 * if `rewrite`, select()'s fd sets cleared if `zero_fdsets`. */
typedef struct {
    unsigned long ip, arg0;
    long result;
    int zero_fdsets, rewrite;
} ti_call;

/* A thread held at its call by the signal handler (ti_hold_in_call). */
typedef struct {
    void *slot;
    unsigned int seq;
} ti_hold;

/* Fill `out` from args[0:5], the Python ints and bools (ip, arg0, result,
 * zero_fdsets, rewrite) of `fname`.  Returns 0, or -1 with an exception (also
 * when the handler is not installed or this platform has no wake). */
int ti_call_parse(const char *fname, PyObject *const *args, ti_call *out);

/* Send the signal to thread `tid` and have the handler hold it there if it
 * is returning from `call` (in a futex wait, for up to 0.02 s).  Returns 1 if the
 * thread is held (*hold says where: let it go with ti_let_go()), 0 if it was
 * not at that call (or had ended), -ETIMEDOUT if the signal did not come in
 * time, -errno if it could not be sent.  Sets no exception.  Free-threaded
 * kill() schedules its exception in the held thread, which cannot leave the
 * call meanwhile, so the exception lands at that call and nowhere further
 * on (no GIL keeps the thread from running on between a check and the
 * scheduling there). */
int ti_hold_in_call(long tid, const ti_call *call, ti_hold *hold);

/* Keep the held thread held until ti_let_go(), however long that takes,
 * instead of for what is left of 0.02 s: the caller is about to read its
 * frames.  Returns 1, or 0 if the handler had already given up waiting (the
 * thread has gone on: nothing of it may be read). */
int ti_keep_held(const ti_hold *hold);

/* Let the held thread go: its call returns as `call` said if `open`, else
 * with EINTR, for CPython to retry.  Returns 1, or 0 if the handler had
 * already given up waiting (the call returned EINTR). */
int ti_let_go(const ti_hold *hold, int open);

/* Whether this build can wake blocked system calls (a module constant). */
extern const int ti_wake_supported;

#endif /* THREADINJECT_WAKE_H */
