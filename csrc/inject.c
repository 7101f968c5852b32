/* inject(), cancel() and pending(): find the target thread and set, clear or
 * read its pending exception.
 *
 * Thread idents are recycled by the OS as soon as a thread exits, so an
 * injection aimed at a threading.Thread must not land in a newer thread that
 * got the same ident.  A Thread's OS thread cannot have exited while the
 * Thread is still registered in threading._active (or, while starting, in
 * threading._limbo): it removes itself in Thread._delete() before it ends.
 * So each call checks the registration and calls PyThreadState_SetAsyncExc
 * as one step that the target cannot interleave with:
 *   - with a GIL, that step runs no Python code (dict look-ups with int keys,
 *     identity comparisons, no object is freed: references that might be the
 *     last are dropped after it), so the GIL is never released inside it;
 *   - on free-threaded builds it runs in critical sections on the dicts
 *     threading._active and threading._limbo (TI_REGISTRY_BEGIN): whoever
 *     changes one takes its lock, so Thread._delete()'s `del _active[...]`
 *     and a starting thread's move from _limbo to _active wait until the
 *     step is over.  Nothing in the step suspends them after the check
 *     (look-ups in these dicts are lock-free there, PyThreadState_SetAsyncExc
 *     takes its lock with _Py_LOCK_DONT_DETACH: Include/internal/
 *     pycore_pystate.h, 3.13.15).  This is the recycled-ident guarantee the
 *     GIL gives, at a fraction of the cost of threading._active_limbo_lock.
 */
#include "inject.h"
#include "active_watch.h"
#include "pending.h"
#include "wake.h"
#include "withdrawal_signal.h"

#include <errno.h>

#ifdef __linux__
#  include <fcntl.h>
#  include <stdio.h>
#  include <stdlib.h>
#  include <string.h>
#  include <sys/syscall.h>
#  include <unistd.h>
#endif

/* _inject_if_at's `syscall` values (src/threadinject/_wake.py) */
#define TI_UNREAD  (-1)   /* do not read /proc */
#define TI_RUNNING (-2)   /* running, or in a futex wait (the GIL's, say) */

/* What a `thread` argument resolved to. */
typedef struct {
    PyObject *thread;        /* the Thread object (borrowed), or NULL for an ident */
    PyObject *key;           /* new reference: the ident as an exact int */
    unsigned long ident;
    /* 1: key and ident are those of the last Thread found registered (see
     * remembered()), not read from `thread`: registered() confirms them */
    int from_cache;
} target;

/* registered() and set_pending(): a target from remembered() is not the
 * Thread it remembers (or no longer registered): resolve it afresh, outside
 * the step (resolving may fail, and its error messages run Python code). */
#define TI_RESOLVE_AGAIN 2

static int
not_found(core_state *st, PyObject *thread, const char *why)
{
    PyErr_Format(st->not_found_error, "thread=%R %s", thread, why);
    return -1;
}

/* ThreadNotFoundError for a target that is not (or no longer) running. */
static void
not_running(core_state *st, PyObject *arg, const target *t)
{
    not_found(st, arg, t->thread == NULL ? "is not the ident of a running thread"
                                         : "is not running (it has finished)");
}

/* inject() into the same Thread again (the common case: a loop that keeps
 * injecting, kill() escalating) skips reading the Thread's ident: the key
 * and ident of the last Thread found registered in threading._active are
 * kept, and if `arg` is that object, they are used.  That needs no proof
 * that `arg` is still the same object, nor that its ident has not changed
 * (after fork, threading gives the surviving thread its new ident): the
 * check in registered() that _active maps the key to `arg` proves by itself
 * that `arg`'s thread runs with that ident.  If the check fails, inject()
 * resolves `arg` afresh: it may not even be a Thread (the remembered one can
 * have been freed and its address reused by any object).  GIL builds only:
 * there the cache is read and written with the GIL held, by code that runs
 * no Python code. */
static int
remembered(core_state *st, PyObject *arg, target *t)
{
#if TI_FREE_THREADED
    (void)st, (void)arg, (void)t;
    return 0;
#else
    if (arg != st->last_thread || st->last_key == NULL) {
        return 0;
    }
    t->thread = arg;
    t->key = Py_NewRef(st->last_key);
    t->ident = st->last_ident;
    t->from_cache = 1;
    return 1;
#endif
}

static void
remember(core_state *st, const target *t)
{
#if !TI_FREE_THREADED
    st->last_thread = t->thread;
    st->last_ident = t->ident;
#  if TI_ACTIVE_STAMPS
    st->last_stamp = ti_active_stamp(st);
#  endif
    if (st->last_key != t->key) {
        PyObject *old = st->last_key;
        st->last_key = Py_NewRef(t->key);
        Py_XDECREF(old);   /* an int: runs no Python code */
    }
#else
    (void)st, (void)t;
#endif
}

/* Resolve the `thread` argument of `fname` (inject() tries remembered()
 * first).  Returns 0, or -1 with an exception set (TypeError, ValueError or
 * ThreadNotFoundError). */
static int
target_from_arg(core_state *st, PyObject *arg, const char *fname, target *t)
{
    t->thread = NULL;
    t->key = NULL;   /* also on failure */
    t->from_cache = 0;
    if (PyLong_Check(arg) && !PyBool_Check(arg)) {
        t->ident = PyLong_AsUnsignedLong(arg);
        if (t->ident == (unsigned long)-1 && PyErr_Occurred()) {
            if (!PyErr_ExceptionMatches(PyExc_OverflowError)) {
                return -1;
            }
            PyErr_Clear();
            PyErr_Format(PyExc_ValueError,
                         "%s() argument 'thread' must be a thread ident between "
                         "0 and %lu, not %R", fname, (unsigned long)-1, arg);
            return -1;
        }
        /* int subclasses may hash in Python code: key the dict with a plain int */
        t->key = PyLong_CheckExact(arg) ? Py_NewRef(arg) : PyLong_FromUnsignedLong(t->ident);
        return t->key == NULL ? -1 : 0;
    }
    if (!PyBool_Check(arg) && PyObject_TypeCheck(arg, (PyTypeObject *)st->thread_type)) {
        /* Thread keeps its ident in the plain instance attribute `_ident`
         * (Lib/threading.py, 3.9-3.15).  Reading the instance dict skips the
         * MRO walk of a full getattr: half of what resolving a Thread costs
         * (callgrind). */
        PyObject *dict = PyObject_GenericGetDict(arg, NULL);
        if (dict == NULL) {
            return -1;
        }
        PyObject *ident = PyDict_GetItemWithError(dict, st->str_ident);   /* borrowed */
        Py_XINCREF(ident);
        Py_DECREF(dict);
        if (ident == NULL) {
            if (PyErr_Occurred()) {
                return -1;
            }
            /* not not_found(): Thread.__repr__ fails on such an object */
            PyObject *name = ti_type_name(arg);
            if (name != NULL) {
                PyErr_Format(st->not_found_error, "thread=<%U object> has not been started "
                             "(Thread.__init__() was not called)", name);
                Py_DECREF(name);
            }
            return -1;
        }
        if (ident == Py_None) {
            Py_DECREF(ident);
            return not_found(st, arg, "has not been started");
        }
        if (!PyLong_CheckExact(ident)) {
            PyErr_Format(PyExc_TypeError,
                         "%s() argument 'thread': its _ident must be an int, not %R",
                         fname, ident);
            Py_DECREF(ident);
            return -1;
        }
        t->ident = PyLong_AsUnsignedLong(ident);
        if (t->ident == (unsigned long)-1 && PyErr_Occurred()) {
            Py_DECREF(ident);
            return -1;
        }
        t->thread = arg;
        t->key = ident;
        return 0;
    }
    PyObject *name = ti_type_name(arg);
    if (name != NULL) {
        PyErr_Format(PyExc_TypeError,
                     "%s() argument 'thread' must be a threading.Thread or an "
                     "int thread ident, not %U", fname, name);
        Py_DECREF(name);
    }
    return -1;
}

/* 1 if the Thread is registered as running (always 1 for a raw ident: then
 * PyThreadState_SetAsyncExc is the test), 0 if not, -1 on error.  Runs no
 * Python code: the keys of _active are exact ints and the values are only
 * compared by identity.  A target from remembered() that fails the test
 * gets TI_RESOLVE_AGAIN: `thread` may be another object at the remembered
 * address, of any type. */
static int
registered(core_state *st, target *t);

/* registered(), with the answers that need no look-up inlined: 1 for a raw
 * ident, and 1 for a remembered Thread if _active has not changed since it
 * was found registered (active_watch.h): the Thread, which _active still
 * holds, is still the object at that address, registered under that key. */
static inline int
registered_quickly(core_state *st, target *t)
{
    if (t->thread == NULL) {
        return 1;
    }
#if TI_ACTIVE_STAMPS
    if (t->from_cache && ti_active_unchanged(st, st->last_stamp)) {
        return 1;
    }
#endif
    return registered(st, t);
}

static int
registered(core_state *st, target *t)
{
    if (t->thread == NULL) {
        return 1;
    }
    PyObject *running = PyDict_GetItemWithError(st->active, t->key);   /* borrowed */
    if (running == t->thread) {
        remember(st, t);
        return 1;
    }
    if (running == NULL && PyErr_Occurred()) {
        return -1;
    }
    if (t->from_cache) {
        return TI_RESOLVE_AGAIN;
    }
    /* Between Thread._set_ident() and its registration in _active, a
     * starting thread is in _limbo ({Thread: Thread}); it is short. */
    Py_ssize_t pos = 0;
    PyObject *key, *value;
    while (PyDict_Next(st->limbo, &pos, &key, &value)) {
        if (value == t->thread) {
            return 1;
        }
    }
    return 0;
}

/* What the step below let go of, for its caller to drop with let_go_release()
 * once the step is over (either may hold a last reference, whose release
 * may run Python code). */
typedef struct {
    PyObject *previous;   /* the exception replaced or withdrawn, or NULL */
    ti_slot *swept;       /* the pending table before a sweep, or NULL */
    size_t swept_capacity;
} let_go;

static void
let_go_release(let_go *gone)
{
    Py_XDECREF(gone->previous);
    if (gone->swept != NULL) {   /* rarely: inline the test, inject() is hot */
        ti_pending_release(gone->swept, gone->swept_capacity);
    }
}

/* Once there are st->sweep_at slots, drop those that hold no pending
 * exception (pending.c), so the cost of sweeping is amortised.  Caller holds
 * the pending table. */
static int
maybe_sweep(core_state *st, let_go *gone)
{
    if (st->pending_used < st->sweep_at) {
        return 0;
    }
    int rc = ti_pending_sweep(st, &gone->swept, &gone->swept_capacity);
    st->sweep_at = st->pending_used < 32 ? 64 : 2 * st->pending_used;
    return rc;
}

/* The step described at the top of this file: if the target is running,
 * make `exc` its pending injection (sweeping the table first if it is due),
 * or, for exc == NULL, withdraw the pending one (cancel()).  Returns 1 on
 * success, 0 if the target is not running, -1 on error, TI_RESOLVE_AGAIN
 * (nothing done) for a target from remembered() to resolve afresh.  *gone
 * receives what was let go of, for let_go_release().  For exc == NULL, *was_pending
 * says whether an exception was pending; otherwise it is not touched (and
 * may be NULL). */
static int
set_pending(core_state *st, target *t, PyObject *exc, let_go *gone, int *was_pending)
{
    gone->previous = NULL;
    gone->swept = NULL;
    gone->swept_capacity = 0;
    int rc;
    /* Free-threaded: this also holds the pending table (TI_PENDING_LOCK
     * takes the same critical section on _active). */
    TI_REGISTRY_BEGIN(st);
    rc = exc != NULL && maybe_sweep(st, gone) < 0 ? -1 : registered_quickly(st, t);
    if (rc == 1) {
        if (exc != NULL) {
            gone->previous = ti_pending_swap(st, t->ident, exc);
        }
        else {
            *was_pending = ti_pending_withdraw(st, t->ident);
        }
        if (exc != NULL && gone->previous == NULL && PyErr_Occurred()) {
            rc = -1;   /* no memory for its slot */
        }
        else if (PyThreadState_SetAsyncExc(t->ident, exc == NULL ? NULL : st->carrier) == 0) {
            rc = 0;   /* no such thread: empty its slot */
            PyObject *emptied = ti_pending_swap(st, t->ident, NULL);
            if (gone->previous == NULL) {
                gone->previous = emptied;   /* what cancel() withdrew, or `exc` */
            }
            else {
                Py_XDECREF(emptied);   /* `exc`, which the caller still holds */
            }
        }
    }
    TI_REGISTRY_END();
    return rc;
}

/* set_pending(st, t, NULL, ...), then what follows a withdrawal outside the
 * step: letting go, and clearing the signal it leaves on CPython 3.11
 * (withdrawal_signal.c).  Returns as set_pending(), or -1 with an exception
 * a signal handler raised meanwhile (the exception is withdrawn then too). */
static int
withdraw(core_state *st, target *t, int *was_pending)
{
    let_go gone;
    int rc = set_pending(st, t, NULL, &gone, was_pending);
    let_go_release(&gone);
    if (rc == 1 && ti_clear_withdrawal_signal(st) < 0) {
        return -1;
    }
    return rc;
}

/* gc.<name>() for its effect: 0, or -1 with an exception set. */
static int
call_gc(core_state *st, const char *name)
{
    PyObject *res = PyObject_CallMethod(st->gc, name, NULL);
    if (res == NULL) {
        return -1;
    }
    Py_DECREF(res);
    return 0;
}

/* sys._current_frames(): {ident: frame} for every thread of the interpreter,
 * as a new reference.  On 3.9-3.11 with the cyclic collector paused: there an
 * allocation can start a collection, whose finalizers are Python code, which
 * lets other threads run (still_at() must not), and on 3.11.0-3.11.11 can
 * hang the process for good: sys._current_frames() holds the runtime's
 * thread-list lock while it makes frame objects, a finalizer lets the GIL go,
 * and a thread that starts or ends takes the GIL and waits for that lock
 * (gh-106883; 3.11.12 pauses the collector there itself).  The pause is C
 * calls only: no other thread runs between them. */
static PyObject *
current_frames(core_state *st)
{
    PyObject *func = PySys_GetObject("_current_frames");   /* borrowed */
    if (func == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "sys._current_frames is missing");
        return NULL;
    }
    int paused = 0;
    if (st->collect_on_alloc) {
        PyObject *enabled = PyObject_CallMethod(st->gc, "isenabled", NULL);
        if (enabled == NULL) {
            return NULL;
        }
        paused = enabled == Py_True;
        Py_DECREF(enabled);
        if (paused && call_gc(st, "disable") < 0) {
            return NULL;
        }
    }
    PyObject *frames = PyObject_CallNoArgs(func);
    if (paused) {
        PyObject *type, *value, *traceback;
        PyErr_Fetch(&type, &value, &traceback);   /* the call's error, if any, outlives the resumption */
        if (call_gc(st, "enable") < 0) {
            Py_XDECREF(type);
            Py_XDECREF(value);
            Py_XDECREF(traceback);
            Py_CLEAR(frames);
        }
        else {
            PyErr_Restore(type, value, traceback);
        }
    }
    return frames;
}

PyObject *
ti_current_frames(PyObject *module, PyObject *Py_UNUSED(ignored))
{
    return current_frames((core_state *)PyModule_GetState(module));
}

/* 1 if a thread of this interpreter running Python code has the ident
 * `key`, 0 if not, -1 on error.  (Only pending() needs this: inject() and
 * cancel() learn it from PyThreadState_SetAsyncExc.) */
static int
ident_is_live(core_state *st, PyObject *key)
{
    PyObject *live = current_frames(st);
    if (live == NULL) {
        return -1;
    }
    int rc = PyDict_Contains(live, key);
    Py_DECREF(live);
    return rc;
}

static int
check_nargs(const char *fname, Py_ssize_t nargs, Py_ssize_t expected, const char *names)
{
    if (nargs == expected) {
        return 0;
    }
    PyErr_Format(PyExc_TypeError, "%s() takes %zd positional argument%s (%s) but %zd %s given",
                 fname, expected, expected == 1 ? "" : "s", names, nargs,
                 nargs == 1 ? "was" : "were");
    return -1;
}

/* TypeError unless `exc` is a BaseException subclass or instance. */
static int
check_exc(const char *fname, PyObject *exc)
{
    if (PyExceptionClass_Check(exc) || PyExceptionInstance_Check(exc)) {
        return 0;
    }
    PyObject *name = ti_type_name(exc);
    if (name != NULL) {
        PyErr_Format(PyExc_TypeError, "%s() argument 'exc' must be a BaseException subclass "
                     "or instance, not %U", fname, name);
        Py_DECREF(name);
    }
    return -1;
}

/* Make `exc` the target's pending injection: 1, 0 if it is not running, -1
 * on error (TI_RESOLVE_AGAIN as set_pending()). */
static int
schedule(core_state *st, target *t, PyObject *exc)
{
    let_go gone;
    int rc = set_pending(st, t, exc, &gone, NULL);
    let_go_release(&gone);
    return rc;
}

PyObject *
ti_inject(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    core_state *st = (core_state *)PyModule_GetState(module);
    if (check_nargs("inject", nargs, 2, "thread, exc") < 0) {
        return NULL;
    }
    if (check_exc("inject", args[1]) < 0) {
        return NULL;
    }
    target t;
    if (!remembered(st, args[0], &t) && target_from_arg(st, args[0], "inject", &t) < 0) {
        return NULL;
    }
    int rc = schedule(st, &t, args[1]);
    if (rc == TI_RESOLVE_AGAIN) {
        Py_CLEAR(t.key);
        if (target_from_arg(st, args[0], "inject", &t) < 0) {
            return NULL;
        }
        rc = schedule(st, &t, args[1]);
    }
    if (rc == 0) {
        not_running(st, args[0], &t);
    }
    Py_DECREF(t.key);
    return rc == 1 ? Py_NewRef(Py_None) : NULL;
}

/* Whether the target's innermost frame is `frame`, at instruction `lasti`:
 * 1, 0, or -1 on error.  On a GIL build nothing here lets the target run:
 * sys._current_frames() and the attribute read are C code, and on 3.9-3.11,
 * where an allocation can start a garbage collection (whose finalizers would
 * be Python code), the collector is paused meanwhile.  (An audit hook on
 * sys._current_frames is Python code: README, Limits.) */
static int
still_at(core_state *st, const target *t, PyObject *frame, PyObject *lasti)
{
#ifdef Py_GIL_DISABLED
    /* Reading a frame that another thread is executing is a use-after-free on
     * free-threaded builds (src/threadinject/_frames.py): refuse; kill() does
     * not ask there. */
    (void)st; (void)t; (void)frame; (void)lasti;
    PyErr_SetString(PyExc_NotImplementedError,
                    "_inject_if_at(): on a free-threaded build another thread's frames cannot be read safely");
    return -1;
#else
    /* the only allocation of objects the collector tracks is in
     * current_frames(), which pauses it (the f_lasti read makes an int) */
    int rc = -1;
    PyObject *frames = current_frames(st);
    if (frames != NULL) {
        PyObject *now = PyDict_GetItemWithError(frames, t->key);   /* borrowed */
        if (now == NULL) {
            rc = PyErr_Occurred() ? -1 : 0;
        }
        else if (now != frame) {
            rc = 0;
        }
        else {
            PyObject *now_lasti = PyObject_GetAttr(now, st->str_f_lasti);
            if (now_lasti != NULL) {
                rc = PyObject_RichCompareBool(now_lasti, lasti, Py_EQ);   /* exact ints */
                Py_DECREF(now_lasti);
            }
        }
        Py_DECREF(frames);
    }
    return rc;
#endif
}

/* Whether /proc shows task `tid` in system call `number` with first argument
 * `arg0` (TI_RUNNING: in none, or in any futex wait): 1 or 0 (also when /proc
 * cannot be read).
 * Plain system calls: the GIL is held throughout, so the thread cannot move
 * on meanwhile.  Elsewhere than Linux there is nothing to compare: 1. */
static int
still_in_syscall(long tid, long number, unsigned long arg0)
{
#ifdef __linux__
    char path[64], text[256];
    snprintf(path, sizeof path, "/proc/self/task/%ld/syscall", tid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return 0;
    }
    ssize_t n = read(fd, text, sizeof text - 1);
    close(fd);
    if (n <= 0) {
        return 0;
    }
    text[n] = '\0';
    if (strncmp(text, "running", 7) == 0) {
        return number == TI_RUNNING;
    }
    /* "nr arg0 ... sp ip", nr -1 when the task sleeps outside a system call */
    char *end;
    long now = strtol(text, &end, 10);
    if (now < 0 || (now == SYS_futex && number == TI_RUNNING)) {
        return number == TI_RUNNING;
    }
    return now == number && strtoul(end, NULL, 16) == arg0;
#else
    (void)tid, (void)number, (void)arg0;
    return 1;
#endif
}

/* The exception just scheduled for `t`, blocked in a lock wait, must land
 * only if that wait ends without the lock: have the signal handler rewrite
 * the wait's result (ti_wake_and_wait) and withdraw the exception unless it
 * did.  With a GIL, held from the scheduling to here, the holder cannot
 * release the lock in between, so a wait that was rewritten fails and the
 * exception lands at its call (README, "Lock waits"); woken separately (as
 * wake() does), a release could hand the lock over first and the exception
 * land after acquire() returned True, leaving it held.  Returns 1 (scheduled
 * and woken), 0 (withdrawn) or -1 with an exception (withdrawn too):
 * TimeoutError if the signal was not taken in time. */
static int
end_lock_wait(core_state *st, target *t, long tid, const ti_lock_wake *wait)
{
    int rc = ti_wake_and_wait(tid, wait);
    if (rc == 1) {
        return 1;
    }
    int was_pending = 0;
    int withdrawn = withdraw(st, t, &was_pending);
    if (withdrawn < 0) {
        return -1;
    }
    if (rc == -ETIMEDOUT) {
        PyErr_SetString(PyExc_TimeoutError, "_inject_if_at(): the thread did not take the wake "
                        "signal in time; the exception was withdrawn");
        return -1;
    }
    if (rc < 0) {
        errno = -rc;
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    return 0;
}

PyObject *
ti_inject_if_at(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    core_state *st = (core_state *)PyModule_GetState(module);
    if (check_nargs("_inject_if_at", nargs == 8 ? 7 : nargs, 7,
                    "thread, exc, frame, lasti, native_id, syscall, arg0[, wake]") < 0
        || check_exc("_inject_if_at", args[1]) < 0) {
        return NULL;
    }
    for (int i = 3; i < 7; i++) {
        if (!PyLong_CheckExact(args[i])) {
            PyErr_Format(PyExc_TypeError, "_inject_if_at() argument %d must be an int, not %R",
                         i + 1, args[i]);
            return NULL;
        }
    }
    long tid = PyLong_AsLong(args[4]);
    if (tid == -1 && PyErr_Occurred()) {
        return NULL;
    }
    long number = PyLong_AsLong(args[5]);
    if (number == -1 && PyErr_Occurred()) {
        return NULL;
    }
    unsigned long arg0 = PyLong_AsUnsignedLong(args[6]);
    if (arg0 == (unsigned long)-1 && PyErr_Occurred()) {
        return NULL;
    }
    ti_lock_wake wait;
    if (nargs == 8 && ti_lock_wake_parse(args[7], arg0, &wait) < 0) {
        return NULL;
    }
    target t;
    if (target_from_arg(st, args[0], "_inject_if_at", &t) < 0) {
        return NULL;
    }
    int rc = still_at(st, &t, args[2], args[3]);
    if (rc == 1 && number != TI_UNREAD) {
        rc = still_in_syscall(tid, number, arg0);
    }
    if (rc == 1) {
        rc = schedule(st, &t, args[1]);
        if (rc == 0) {
            not_running(st, args[0], &t);
        }
        rc = rc == 1 ? 1 : -1;
    }
    if (rc == 1 && nargs == 8) {
        rc = end_lock_wait(st, &t, tid, &wait);
    }
    Py_DECREF(t.key);
    return rc < 0 ? NULL : PyBool_FromLong(rc);
}

/* Whether the exception may land at the call `hold` holds the thread at:
 * what `judge` says of the thread's innermost frame, read while it is held.
 * Returns 1, or 0 (or -1 with an exception) with the thread let go, the call
 * interrupted, nothing scheduled.
 *
 * On a free-threaded build another thread's frames are read soundly only
 * while it cannot run (src/threadinject/_frames.py): the thread is held from
 * before sys._current_frames() stops the world until it is let go.  The
 * world stops only with every other thread detached from the interpreter; a
 * thread held in an attached state (a system call made without letting the
 * interpreter go) would keep it from stopping until the handler gave up, and
 * then ti_keep_held() fails: its frames are dropped unread.  So a thread
 * kept held is detached, and a collection the judge sets off (it stops the
 * world too) does not wait for it.  `judge` must keep no reference to the
 * frames once it returns. */
static int
may_land_at_held_call(core_state *st, const target *t, const ti_hold *hold, PyObject *judge)
{
    PyObject *frames = current_frames(st);
    if (frames == NULL) {
        (void)ti_let_go(hold, 0);
        return -1;
    }
    if (!ti_keep_held(hold)) {
        Py_DECREF(frames);   /* read nothing: the thread has gone on */
        return 0;
    }
    int verdict = 1;   /* no Python frame: nothing to judge by */
    PyObject *frame = PyDict_GetItemWithError(frames, t->key);   /* borrowed */
    if (frame == NULL) {
        verdict = PyErr_Occurred() ? -1 : 1;
    }
    else {
        PyObject *said = PyObject_CallFunctionObjArgs(judge, frame, NULL);
        verdict = said == NULL ? -1 : PyObject_IsTrue(said);
        Py_XDECREF(said);
    }
    Py_DECREF(frames);
    if (verdict != 1) {
        (void)ti_let_go(hold, 0);
    }
    return verdict;
}

PyObject *
ti_inject_in_call(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    core_state *st = (core_state *)PyModule_GetState(module);
    if (check_nargs("_inject_in_call", nargs == 9 ? 8 : nargs, 8,
                    "thread, exc, native_id, ip, arg0, result, zero_fdsets, rewrite[, judge]") < 0
        || check_exc("_inject_in_call", args[1]) < 0) {
        return NULL;
    }
    PyObject *judge = nargs == 9 && args[8] != Py_None ? args[8] : NULL;
    if (judge != NULL && !PyCallable_Check(judge)) {
        PyErr_Format(PyExc_TypeError, "_inject_in_call() argument 'judge' must be callable or None, not %R",
                     args[8]);
        return NULL;
    }
    long tid = PyLong_AsLong(args[2]);
    if (tid == -1 && PyErr_Occurred()) {
        return NULL;
    }
    ti_call call;
    if (ti_call_parse("_inject_in_call", args + 3, &call) < 0) {
        return NULL;
    }
    target t;
    if (target_from_arg(st, args[0], "_inject_in_call", &t) < 0) {
        return NULL;
    }
    ti_hold hold;
    int rc = ti_hold_in_call(tid, &call, &hold);
    if (rc == 1 && judge != NULL) {
        rc = may_land_at_held_call(st, &t, &hold, judge);
        if (rc < 0) {
            Py_DECREF(t.key);
            return NULL;
        }
    }
    if (rc == 1) {
        /* the thread cannot leave the call until it is let go */
        int scheduled = schedule(st, &t, args[1]);
        int held = ti_let_go(&hold, scheduled == 1);
        if (scheduled == 1 && !held) {
            /* the handler gave up first, and the thread may have run on:
             * withdrawn (False: the caller judges it afresh) */
            int was_pending = 0;
            rc = withdraw(st, &t, &was_pending) < 0 ? -1 : 0;
        }
        else if (scheduled == 0) {
            not_running(st, args[0], &t);
            rc = -1;
        }
        else {
            rc = scheduled;   /* 1, or -1 with an exception */
        }
    }
    else if (rc == -ETIMEDOUT) {
        PyErr_SetString(PyExc_TimeoutError, "_inject_in_call(): the thread did not take the "
                        "signal in time; nothing was scheduled");
        rc = -1;
    }
    else if (rc < 0) {
        errno = -rc;
        PyErr_SetFromErrno(PyExc_OSError);
        rc = -1;
    }
    Py_DECREF(t.key);
    return rc < 0 ? NULL : PyBool_FromLong(rc);
}

PyObject *
ti_cancel(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    core_state *st = (core_state *)PyModule_GetState(module);
    if (check_nargs("cancel", nargs, 1, "thread") < 0) {
        return NULL;
    }
    target t;
    if (target_from_arg(st, args[0], "cancel", &t) < 0) {
        return NULL;
    }
    int was_pending = 0;
    int rc = withdraw(st, &t, &was_pending);
    if (rc == 0) {
        not_running(st, args[0], &t);
    }
    Py_DECREF(t.key);
    return rc == 1 ? PyBool_FromLong(was_pending) : NULL;
}

PyObject *
ti_pending(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    core_state *st = (core_state *)PyModule_GetState(module);
    if (check_nargs("pending", nargs, 1, "thread") < 0) {
        return NULL;
    }
    target t;
    if (target_from_arg(st, args[0], "pending", &t) < 0) {
        return NULL;
    }
    PyObject *result = NULL;
    int rc;
    TI_REGISTRY_BEGIN(st);   /* holds the pending table too */
    rc = registered(st, &t);   /* always 1 for a raw ident: see below */
    if (rc == 1) {
        result = ti_pending_get(st, t.ident);
    }
    TI_REGISTRY_END();
    if (rc == 1) {
        if (result == NULL && t.thread == NULL) {
            /* Nothing pending for a raw ident: is there such a thread at all?
             * (With something pending, its thread was running when it was
             * injected and cannot be shown to have ended: csrc/pending.c.) */
            rc = ident_is_live(st, t.key);
        }
        if (result == NULL && rc == 1) {
            result = Py_NewRef(Py_None);
        }
    }
    if (rc == 0) {
        not_running(st, args[0], &t);
    }
    Py_DECREF(t.key);
    return result;
}
