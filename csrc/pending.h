/* The pending injections: for each thread ident, the exception injected and
 * not yet received (pending.c).  Callers hold TI_PENDING_LOCK or
 * TI_REGISTRY_BEGIN (state.h; no-ops with a GIL), except for traverse and
 * clear. */
#ifndef THREADINJECT_PENDING_H
#define THREADINJECT_PENDING_H

#include "state.h"

/* Make `exc` the pending exception of `ident`, or, for exc == NULL, leave it
 * nothing at all.  Returns the exception the slot held, pending or withdrawn,
 * as a new reference, or NULL: with MemoryError set if a slot could not be
 * made, without an exception if it held none.  The caller drops the returned
 * reference only when it may run Python code again. */
PyObject *ti_pending_swap(core_state *st, unsigned long ident, PyObject *exc);

/* Withdraw the pending exception of `ident` (cancel()).  It stays in the
 * slot, marked withdrawn, for a delivery that had already begun: see
 * carrier.c.  Returns 1 if an exception was pending, 0 if not. */
int ti_pending_withdraw(core_state *st, unsigned long ident);

/* The pending exception of `ident` (new reference), or NULL.  A withdrawn one
 * is not pending. */
PyObject *ti_pending_get(core_state *st, unsigned long ident);

/* Drop the slots that hold no pending exception.  Puts the old array, in
 * which the withdrawn exceptions they held remain, in *old for the caller to
 * pass to ti_pending_release once it may run Python code again.  Returns 0,
 * or -1 with MemoryError set if the new table could not be made (nothing
 * changed, *old untouched). */
int ti_pending_sweep(core_state *st, ti_slot **old, size_t *old_capacity);

/* Drop the exceptions left in `slots` and free it (NULL is allowed). */
void ti_pending_release(ti_slot *slots, size_t capacity);

/* The module's traverse and clear, for the table. */
int ti_pending_traverse(core_state *st, visitproc visit, void *arg);
void ti_pending_clear(core_state *st);

#endif /* THREADINJECT_PENDING_H */
