/* Knowing, without a look-up, that threading._active has not changed.
 *
 * inject() into the Thread it aimed at last (inject.c, remembered()) must
 * still prove that the Thread is registered in threading._active: a dict
 * look-up that was a third of what inject() added to a bare
 * PyThreadState_SetAsyncExc call on CPython 3.13+.  Instead, it keeps a
 * stamp of _active from the look-up that found the Thread registered; while
 * _active shows the same stamp, that look-up still holds (a Thread that ends
 * unregisters itself, which changes _active).  The stamp is:
 *   - 3.9-3.11: the dict's version, ma_version_tag, which CPython gives a
 *     new, globally unique value at each change of the dict's content
 *     (PEP 509; declared an implementation detail in 3.12 by PEP 699);
 *   - 3.12+: a count of the changes of every watched _active, kept by a dict
 *     watcher (PyDict_AddWatcher) that the module puts on _active.
 * Neither is in the limited API: the abi3 build looks _active up each time,
 * and so does a 3.12+ module that found no free watcher id. */
#ifndef THREADINJECT_ACTIVE_WATCH_H
#define THREADINJECT_ACTIVE_WATCH_H

#include "state.h"

#if TI_ACTIVE_WATCHER
/* How many changes of a watched threading._active this process has seen, in
 * any interpreter and by any instance of the module (a change that does not
 * concern a given module only costs it one look-up).  Atomic: interpreters
 * with GILs of their own change their _active at the same time. */
extern uint64_t ti_active_changes;

/* Read and count it (relaxed: a change only has to be counted once, and
 * each interpreter's GIL orders its own reads after its own changes). */
#  if defined(_MSC_VER) && !defined(__clang__)
#    include <intrin.h>
/* an aligned 64-bit load is single-copy atomic on x64 and ARM64 */
#    define TI_ACTIVE_CHANGES() (*(const volatile uint64_t *)&ti_active_changes)
#    define TI_ACTIVE_COUNT_CHANGE() \
         ((void)_InterlockedIncrement64((volatile __int64 *)&ti_active_changes))
#  else
#    define TI_ACTIVE_CHANGES() __atomic_load_n(&ti_active_changes, __ATOMIC_RELAXED)
#    define TI_ACTIVE_COUNT_CHANGE() \
         ((void)__atomic_fetch_add(&ti_active_changes, 1, __ATOMIC_RELAXED))
#  endif

static inline uint64_t
ti_active_stamp(const core_state *st)
{
    (void)st;
    return TI_ACTIVE_CHANGES();
}

/* Whether _active is known not to have changed since `stamp` was taken. */
static inline int
ti_active_unchanged(const core_state *st, uint64_t stamp)
{
    return st->active_watched && TI_ACTIVE_CHANGES() == stamp;
}

#elif TI_ACTIVE_STAMPS

static inline uint64_t
ti_active_stamp(const core_state *st)
{
    return ((PyDictObject *)st->active)->ma_version_tag;
}

static inline int
ti_active_unchanged(const core_state *st, uint64_t stamp)
{
    return ti_active_stamp(st) == stamp;
}
#endif

/* Start watching st->active where the build needs a watcher and a watcher
 * id is free (each interpreter has 8), and add the module's
 * `_ACTIVE_CHECK`, which says how inject() knows that _active has not
 * changed: "version", "watcher" or "look-up" (each time).  Returns 0, or -1
 * with an exception set. */
int ti_active_watch_start(PyObject *module, core_state *st);

/* Stop watching st->active (before it is released) and free the watcher id.
 * For the module's clear: cannot fail. */
void ti_active_watch_stop(core_state *st);

#endif /* THREADINJECT_ACTIVE_WATCH_H */
