/* Knowing, without a look-up, that threading._active has not changed.
 *
 * inject() into the Thread it aimed at last (inject.c, remembered()) must
 * still prove that the Thread is registered in threading._active: a dict
 * look-up that is a third of what inject() adds to a bare
 * PyThreadState_SetAsyncExc call on CPython 3.13+.  Where dict watchers
 * exist (full C API of 3.12+; not the limited API, so not the abi3 build),
 * the module watches _active and counts its changes; if none happened since
 * the look-up that found the Thread registered, that look-up still holds. */
#ifndef THREADINJECT_ACTIVE_WATCH_H
#define THREADINJECT_ACTIVE_WATCH_H

#include "state.h"

#if TI_WATCH_ACTIVE
/* How many changes of a watched threading._active this process has seen, in
 * any interpreter and by any instance of the module (a change that does not
 * concern a given module only costs it one look-up).  Atomic: interpreters
 * with GILs of their own change their _active at the same time. */
extern uint64_t ti_active_changes;

#  if defined(_MSC_VER) && !defined(__clang__)
/* an aligned 64-bit load is single-copy atomic on x64 and ARM64 */
#    define TI_ACTIVE_CHANGES() (*(const volatile uint64_t *)&ti_active_changes)
#  else
#    define TI_ACTIVE_CHANGES() __atomic_load_n(&ti_active_changes, __ATOMIC_RELAXED)
#  endif

/* Whether _active is known not to have changed since `changes` was read. */
static inline int
ti_active_unchanged(const core_state *st, uint64_t changes)
{
    return st->active_watched && TI_ACTIVE_CHANGES() == changes;
}
#endif

/* Start watching st->active, if the build can and a watcher id is free
 * (each interpreter has 8; without one, inject() looks _active up every
 * time).  Returns 0, or -1 with an exception set. */
int ti_active_watch_start(core_state *st);

/* Stop watching st->active (before it is released) and free the watcher id.
 * For the module's clear: cannot fail. */
void ti_active_watch_stop(core_state *st);

#endif /* THREADINJECT_ACTIVE_WATCH_H */
