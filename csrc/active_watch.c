/* The watch on threading._active: see active_watch.h. */
#include "active_watch.h"

#if TI_ACTIVE_WATCHER

uint64_t ti_active_changes;

/* Called by CPython before each change of a watched dict (and when it is
 * deallocated), in the thread that makes it, holding its interpreter's GIL:
 * no inject() of that interpreter can run between this count and the change.
 * Runs no Python code and cannot fail. */
static int
count_change(PyDict_WatchEvent event, PyObject *dict, PyObject *key, PyObject *new_value)
{
    (void)event, (void)dict, (void)key, (void)new_value;
    TI_ACTIVE_COUNT_CHANGE();
    return 0;
}

static int
watch(core_state *st)
{
    int id = PyDict_AddWatcher(count_change);
    if (id < 0) {
        /* No watcher id left in this interpreter (RuntimeError, the only
         * failure: nothing is allocated).  Not an error: inject() then looks
         * _active up each time, as the abi3 build does. */
        PyErr_Clear();
        return 0;
    }
    if (PyDict_Watch(id, st->active) < 0) {
        if (PyDict_ClearWatcher(id) < 0) {
            PyErr_WriteUnraisable(NULL);
        }
        return -1;
    }
    st->active_watcher = id;
    st->active_watched = 1;
    return 0;
}

void
ti_active_watch_stop(core_state *st)
{
    if (!st->active_watched) {
        return;
    }
    st->active_watched = 0;
    /* Neither can fail: st->active is the dict this id watches (a reference
     * the module holds) and the id is registered. */
    if (PyDict_Unwatch(st->active_watcher, st->active) < 0
        || PyDict_ClearWatcher(st->active_watcher) < 0) {
        PyErr_WriteUnraisable(NULL);
    }
}

#else  /* no watcher needed, or none available */

static int
watch(core_state *st)
{
    (void)st;
    return 0;
}

void
ti_active_watch_stop(core_state *st)
{
    (void)st;
}

#endif

int
ti_active_watch_start(PyObject *module, core_state *st)
{
    if (watch(st) < 0) {
        return -1;
    }
    const char *check = TI_ACTIVE_WATCHER ? (st->active_watched ? "watcher" : "look-up")
                        : TI_ACTIVE_STAMPS ? "version" : "look-up";
    return PyModule_AddStringConstant(module, "_ACTIVE_CHECK", check);
}
