/* The pending injections: a C hash table from a thread ident (unsigned long)
 * to that thread's slot, {exception or NULL, withdrawn}.  A slot is created
 * on the first injection into a thread and then reused, so an inject() costs
 * one probe of an array and no Python object is created or looked up for it
 * (a dict of per-thread slots cost about a quarter of an inject(): one hashed
 * look-up of an int key and two list stores, callgrind on 3.12).  When the
 * table fills, inject.c drops the slots that hold no pending exception
 * (ti_pending_sweep), which costs nothing but their re-creation; there is no
 * other removal, so plain linear probing needs no tombstones.
 *
 * cancel() does not empty a slot but marks its exception withdrawn.  Where
 * CPython takes the scheduled carrier class out of the thread state before
 * the carrier runs (3.9-3.11, and free-threaded builds, where the target
 * runs in parallel with cancel()), a cancel() can come in between: the
 * delivery can no longer be stopped, and the carrier then delivers the
 * withdrawn exception, the one the user injected, rather than failing.
 *
 * A slot that still holds a pending exception is never dropped, even when
 * its thread looks gone: there is no sound test for that.
 * sys._current_frames() omits live threads that run no Python code (a C
 * function started with _thread.start_new_thread, a C library's thread
 * between callbacks), and such a thread would later receive the carrier and
 * find nothing.  So an exception injected into a thread that ends without
 * running bytecode again stays referenced until that ident is injected into
 * again.
 *
 * The table's exceptions are owned references, visited by the module's
 * traverse (module.c), so the garbage collector sees them. */
#include "pending.h"

#include <string.h>

#define MIN_CAPACITY 16

/* Thread idents are pthread_t values, addresses aligned to pages on glibc:
 * multiplying by a large odd constant (Fibonacci hashing) spreads their high
 * bits into the low ones the table indexes by. */
static size_t
home_of(unsigned long ident, size_t capacity)
{
    unsigned long long h = (unsigned long long)ident * 0x9E3779B97F4A7C15ULL;
    return (size_t)(h >> 32) & (capacity - 1);
}

/* The slot of `ident`, or the empty place where it belongs (used == 0). */
static ti_slot *
probe(ti_slot *slots, size_t capacity, unsigned long ident)
{
    size_t i = home_of(ident, capacity);
    while (slots[i].used && slots[i].ident != ident) {
        i = (i + 1) & (capacity - 1);
    }
    return &slots[i];
}

static ti_slot *
find(core_state *st, unsigned long ident)
{
    if (st->pending_capacity == 0) {
        return NULL;
    }
    ti_slot *slot = probe(st->pending_slots, st->pending_capacity, ident);
    return slot->used ? slot : NULL;
}

/* Move the slots that hold a pending exception, and with `keep_empty` all
 * the others too, into a new table of `capacity` places (a power of two,
 * more than their number).  The slots not moved stay in the old array, put
 * in *old (NULL if there was none) for the caller to release
 * (ti_pending_release).  Returns 0, or -1 with MemoryError set (the table is
 * then unchanged). */
static int
rebuild(core_state *st, size_t capacity, int keep_empty, ti_slot **old, size_t *old_capacity)
{
    ti_slot *fresh = PyMem_Calloc(capacity, sizeof(ti_slot));
    if (fresh == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    *old = st->pending_slots;
    *old_capacity = st->pending_capacity;
    size_t used = 0;
    for (size_t i = 0; i < *old_capacity; i++) {
        ti_slot *slot = &(*old)[i];
        if (slot->used && (keep_empty || (slot->exc != NULL && !slot->withdrawn))) {
            *probe(fresh, capacity, slot->ident) = *slot;
            slot->used = 0;
            slot->exc = NULL;   /* moved */
            used++;
        }
    }
    st->pending_slots = fresh;
    st->pending_capacity = capacity;
    st->pending_used = used;
    return 0;
}

PyObject *
ti_pending_swap(core_state *st, unsigned long ident, PyObject *exc)
{
    ti_slot *slot = find(st, ident);
    if (slot == NULL) {
        if (exc == NULL) {
            return NULL;
        }
        if (4 * (st->pending_used + 1) > 3 * st->pending_capacity) {
            /* grow, keeping every slot: dropping a withdrawn exception here
             * would free it while the caller may not run Python code */
            size_t capacity = st->pending_capacity == 0 ? MIN_CAPACITY : 2 * st->pending_capacity;
            ti_slot *old;
            size_t old_capacity;
            if (rebuild(st, capacity, 1, &old, &old_capacity) < 0) {
                return NULL;
            }
            PyMem_Free(old);   /* everything was moved out of it */
        }
        slot = probe(st->pending_slots, st->pending_capacity, ident);
        slot->used = 1;
        slot->ident = ident;
        slot->exc = Py_NewRef(exc);
        slot->withdrawn = 0;
        st->pending_used++;
        return NULL;   /* nothing was replaced */
    }
    PyObject *previous = slot->exc;   /* handed to the caller */
    slot->exc = exc == NULL ? NULL : Py_NewRef(exc);
    slot->withdrawn = 0;
    return previous;
}

int
ti_pending_withdraw(core_state *st, unsigned long ident)
{
    ti_slot *slot = find(st, ident);
    if (slot == NULL || slot->exc == NULL || slot->withdrawn) {
        return 0;
    }
    slot->withdrawn = 1;
    return 1;
}

PyObject *
ti_pending_get(core_state *st, unsigned long ident)
{
    ti_slot *slot = find(st, ident);
    if (slot == NULL || slot->exc == NULL || slot->withdrawn) {
        return NULL;
    }
    return Py_NewRef(slot->exc);
}

int
ti_pending_sweep(core_state *st, ti_slot **old, size_t *old_capacity)
{
    size_t live = 0;
    for (size_t i = 0; i < st->pending_capacity; i++) {
        ti_slot *slot = &st->pending_slots[i];
        live += slot->used && slot->exc != NULL && !slot->withdrawn;
    }
    size_t capacity = MIN_CAPACITY;
    while (4 * (live + 1) > 3 * capacity) {
        capacity *= 2;
    }
    return rebuild(st, capacity, 0, old, old_capacity);
}

void
ti_pending_release(ti_slot *slots, size_t capacity)
{
    for (size_t i = 0; slots != NULL && i < capacity; i++) {
        Py_CLEAR(slots[i].exc);
    }
    PyMem_Free(slots);
}

int
ti_pending_traverse(core_state *st, visitproc visit, void *arg)
{
    for (size_t i = 0; i < st->pending_capacity; i++) {
        Py_VISIT(st->pending_slots[i].exc);
    }
    return 0;
}

void
ti_pending_clear(core_state *st)
{
    ti_slot *slots = st->pending_slots;
    size_t capacity = st->pending_capacity;
    st->pending_slots = NULL;
    st->pending_capacity = 0;
    st->pending_used = 0;
    ti_pending_release(slots, capacity);
}
