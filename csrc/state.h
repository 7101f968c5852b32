/* Module state of threadinject._core: everything the module keeps between
 * calls lives here (no static globals), so the module can be loaded into
 * several interpreters. */
#ifndef THREADINJECT_STATE_H
#define THREADINJECT_STATE_H

#include "compat.h"

#include <stdint.h>

/* One thread's place in the table of pending injections (pending.c). */
typedef struct {
    unsigned long ident;
    PyObject *exc;       /* the injected class or instance (owned), or NULL */
    int withdrawn;       /* cancel()ed after a delivery may have begun */
    int used;            /* the place holds this ident's slot */
} ti_slot;

typedef struct {
    /* The private BaseException subclass that PyThreadState_SetAsyncExc is
     * given for every injection; see carrier.c. */
    PyObject *carrier;
    /* The pending injections, a hash table of `pending_capacity` places (0 or
     * a power of two), `pending_used` of them holding a thread's slot; see
     * pending.c.  Set by inject(), taken when the target thread receives it
     * (carrier.c), withdrawn by cancel(), replaced by a later inject(). */
    ti_slot *pending_slots;
    size_t pending_capacity;
    size_t pending_used;
    /* At this many slots, inject() drops the slots of threads that hold no
     * pending exception (ended, or received theirs). */
    size_t sweep_at;
    /* threading.Thread, threading._active ({ident: Thread} for running
     * threads) and threading._limbo (threads being started). threading
     * mutates both dicts in place, even after fork, and never rebinds them. */
    PyObject *thread_type;
    PyObject *active;
    PyObject *limbo;
    /* The last Thread found registered in threading._active (its address
     * only: never dereferenced, not a reference), with its key there (owned)
     * and ident; see remembered() in inject.c.  GIL builds only. */
    PyObject *last_thread;
    PyObject *last_key;
    unsigned long last_ident;
    /* The stamp of _active when last_thread was last found registered, and
     * whether _active is watched, by watcher `active_watcher` (3.12+); see
     * active_watch.h. */
    uint64_t last_stamp;
    int active_watched;
    int active_watcher;
    /* threadinject.ThreadNotFoundError */
    PyObject *not_found_error;
    /* interned "_ident", the attribute where Thread keeps its ident, and
     * "f_lasti" */
    PyObject *str_ident;
    PyObject *str_f_lasti;
    /* The gc module, and whether an allocation can start a collection
     * (CPython < 3.12; later ones collect at the next eval-breaker check). */
    PyObject *gc;
    int collect_on_alloc;
    /* Whether the carrier hands the exception over by raising it (CPython
     * < 3.12) rather than returning it (3.12+); see carrier.c. */
    int deliver_by_raising;
    /* The dict of thread idents a kill is aimed at, and the Python
     * sys.monitoring callbacks for them (src/threadinject/_monitor.py); set
     * once by _monitor_setup(), see monitor_filter.c. */
    PyObject *monitor_watched;
    PyObject *monitor_on_start;
    PyObject *monitor_on_jump;
    /* CPython 3.11: the exception and the Python function that clear the
     * signal a withdrawal leaves (withdrawal_signal.c); NULL elsewhere. */
    PyObject *withdrawal_signal;
    PyObject *withdrawal_receiver;
} core_state;

/* Who may touch the pending table: with a GIL, the code that touches it
 * runs no Python code, so it is atomic already.  Free-threaded builds hold
 * a critical section on threading._active, the dict that inject() checks in
 * the same step (TI_REGISTRY_BEGIN below takes it too): one lock instead of
 * two, each of which costs an inject() about 10 ns there.  Nothing that
 * holds it blocks (table operations, PyThreadState_SetAsyncExc), so it is
 * never suspended meanwhile; and it is never taken inside
 * TI_REGISTRY_BEGIN, which already holds it.  BEGIN and END (LOCK and
 * UNLOCK) open and close a block: use them in the same scope. */
#if TI_FREE_THREADED
#  define TI_PENDING_LOCK(st)   Py_BEGIN_CRITICAL_SECTION((st)->active)
#  define TI_PENDING_UNLOCK(st) Py_END_CRITICAL_SECTION()
#  define TI_REGISTRY_BEGIN(st) Py_BEGIN_CRITICAL_SECTION2((st)->active, (st)->limbo)
#  define TI_REGISTRY_END()     Py_END_CRITICAL_SECTION2()
#else
#  define TI_PENDING_LOCK(st)   {
#  define TI_PENDING_UNLOCK(st) }
#  define TI_REGISTRY_BEGIN(st) {
#  define TI_REGISTRY_END()     }
#endif

#endif /* THREADINJECT_STATE_H */
