/* Waking a thread blocked in a system call, Linux x86-64 and aarch64.
 *
 * CPython retries a system call interrupted by a signal (PEP 475), and before
 * 3.15 it does not raise a pending asynchronous exception on the way, so a
 * thread in time.sleep(), recv(), select()... never gets to run bytecode.
 * The injector reads, from /proc/self/task/<tid>/syscall, which call the
 * target is blocked in, where it returns (the instruction after `syscall`)
 * and its first argument; arms this thread's slot with them and with the
 * result to substitute; and sends a real-time signal to that thread.  Our
 * handler, installed without SA_RESTART so the kernel makes the call return
 * -EINTR, checks that the thread is returning -EINTR from exactly that call
 * and then changes the result (a completed sleep, a timeout, an end of file:
 * the choice is Python's, _syscalls.py), so CPython's retry loop ends and the
 * pending exception is raised at the next bytecode.  Anywhere else the
 * handler changes nothing: the interrupted call returns EINTR and is retried.
 */
#if defined(__linux__) && (defined(__x86_64__) || defined(__aarch64__))
#include "wake.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <limits.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

const int ti_wake_supported = 1;

/* The slot table is process-wide static state, the one exception to "module
 * state only": a signal handler has no module to look it up from, and may
 * only touch memory that is valid at any moment without locks. */
#define SLOTS 128

/* A slot's `word` is its arming's sequence number << 2 | one of these.  The
 * handler claims an ARMED slot before it reads the fields and sets it IDLE
 * when done; arming waits while the slot is CLAIMED; an injector giving up on
 * a signal that has not arrived disarms the slot only if it is still ARMED
 * with its own sequence number.  `outcome` is the sequence number << 1 |
 * whether the result was rewritten, of the last arming the handler acted on. */
enum { IDLE = 0, ARMED = 1, CLAIMED = 2, STATE_MASK = 3 };

typedef struct {
    atomic_long tid;          /* kernel thread id owning the slot, 0: free */
    atomic_uint word;         /* sequence << 2 | IDLE, ARMED or CLAIMED */
    atomic_uint outcome;      /* sequence << 1 | rewritten */
    unsigned long ip;         /* return address of the `syscall` instruction */
    unsigned long arg0;       /* the call's first argument */
    long number;              /* aarch64: the call's number and arguments 1-5 */
    unsigned long args[6];    /* (capture_call) */
    long result;              /* the value to return instead of -EINTR */
    int zero_fdsets;          /* select/pselect6: clear the three fd sets */
    int rewrite;              /* 0: only interrupt (CPython raises by itself) */
    unsigned long guard_addr; /* 0, or a word that must hold guard_value */
    unsigned long guard_value;
    int hold;                 /* hold the thread at the call until `gate` opens */
    atomic_uint gate;         /* holding: sequence << 2 | SHUT, KEPT, OPEN or GIVEN_UP */
} slot;

/* The states of a slot's `gate` (ti_hold_in_call): SHUT while the injector
 * has yet to decide, for up to WAIT_NS; KEPT once the injector has said it
 * is reading the thread's frames (ti_keep_held): the handler then waits for
 * as long as that takes; OPEN or GIVEN_UP once it has decided. */
enum { SHUT = 0, OPEN = 1, GIVEN_UP = 2, KEPT = 3 };

/* How long the handler holds a thread at its call for the injector to open
 * the gate, and how long the injector waits for the signal to arrive.  The
 * thread is blocked: the kernel runs the handler as soon as it gets a CPU, in
 * tens of microseconds on an idle machine.  The bound matters when it does
 * not come (the thread is stopped by a debugger, the machine overloaded):
 * then the caller (and, with a GIL, every other thread) waits that long, and
 * the caller backs off before trying again. */
#define WAIT_NS 20000000L

static slot slots[SLOTS];
static atomic_int installed_signo;
static struct sigaction previous;
/* Serialises injectors arming slots (held for a few stores; a spin lock keeps
 * the module free of pthread symbols, whose glibc 2.34 versions would raise
 * the wheel's manylinux floor). */
static atomic_flag arm_lock = ATOMIC_FLAG_INIT;

/* ---------------------------------------------------------------------
 * The signal handler.  It performs only these operations, all
 * async-signal-safe: getpid(), syscall(SYS_gettid), and, while it holds the
 * thread at its call (hold_until_open), clock_gettime(CLOCK_MONOTONIC) and a
 * futex wait on the slot's gate (syscall(SYS_futex)); atomic loads, stores
 * and compare-exchanges on `slots`; reads of the interrupted context
 * (ucontext_t), of the instruction before its instruction pointer and of
 * the guard word (a word of the wait the thread is verified to be returning
 * from, on its own stack: the parking-lot entry of a lock wait); writes to
 * the context's result register and to the fd sets the interrupted select()
 * was given (plain byte stores); a call of the previously installed handler for
 * signals that are not ours.  No allocation, no locks, no libc buffers, no
 * Python API.
 * --------------------------------------------------------------------- */

static void
chain(int signo, siginfo_t *info, void *context)
{
    if (previous.sa_flags & SA_SIGINFO) {
        if (previous.sa_sigaction != NULL) {
            previous.sa_sigaction(signo, info, context);
        }
    }
    else if (previous.sa_handler != SIG_DFL && previous.sa_handler != SIG_IGN) {
        previous.sa_handler(signo);
    }
    /* SIG_DFL of a real-time signal would end the process; we chose a signal
     * nobody had a handler for, so a stray one is dropped instead. */
}

/* The interrupted call, as the handler finds it in the thread's context.
 * x86-64: the result in RAX, which held the number; arguments in RDI, RSI,
 * RDX, R10, R8, R9, kept; `syscall` (0f 05) before the IP.
 * aarch64: the result in x0, which held the first argument; the number in
 * x8 and arguments 1-5 in x1-x5, kept; `svc #0` (d4000001) before the PC.
 * So on aarch64 the handler compares the number and arguments 1-5 instead of
 * the first argument, which capture_call() checked when arming. */
#if defined(__x86_64__)
#  define SET_RESULT(uc, value) ((uc)->uc_mcontext.gregs[REG_RAX] = (greg_t)(value))
#  define CALL_ARG(uc, n) ((unsigned long)(uc)->uc_mcontext.gregs[                          \
        (n) == 1 ? REG_RSI : (n) == 2 ? REG_RDX : REG_R10])

static int
returning_from(const ucontext_t *uc, const slot *s)
{
    const greg_t *regs = uc->uc_mcontext.gregs;
    const unsigned char *ip = (const unsigned char *)regs[REG_RIP];
    return regs[REG_RAX] == -EINTR
        && (unsigned long)regs[REG_RIP] == s->ip
        && (unsigned long)regs[REG_RDI] == s->arg0
        && ip[-2] == 0x0f && ip[-1] == 0x05;    /* `syscall` */
}
#else
#  define SET_RESULT(uc, value) ((uc)->uc_mcontext.regs[0] = (unsigned long long)(value))
#  define CALL_ARG(uc, n) ((unsigned long)(uc)->uc_mcontext.regs[(n)])

static int
returning_from(const ucontext_t *uc, const slot *s)
{
    const unsigned long long *x = uc->uc_mcontext.regs;
    if ((long)x[0] != -EINTR || uc->uc_mcontext.pc != s->ip || (long)x[8] != s->number
        || *(const uint32_t *)(uintptr_t)(uc->uc_mcontext.pc - 4) != 0xd4000001) {   /* `svc #0` */
        return 0;
    }
    for (int n = 1; n <= 5; n++) {
        if (x[n] != s->args[n]) {
            return 0;
        }
    }
    return 1;
}
#endif

static void
clear_fdset(unsigned long address, unsigned long nfds)
{
    volatile unsigned char *bytes = (volatile unsigned char *)address;
    if (bytes == NULL) {
        return;
    }
    for (unsigned long i = 0; i < (nfds + 7) / 8; i++) {
        bytes[i] = 0;
    }
}

static long
elapsed_ns(const struct timespec *since)
{
    struct timespec now;
    (void)clock_gettime(CLOCK_MONOTONIC, &now);
    return (now.tv_sec - since->tv_sec) * 1000000000L + (now.tv_nsec - since->tv_nsec);
}

/* Hold this thread, at the call of arming `seq` of `s`, until the injector
 * opens the gate (1) or for WAIT_NS, then give up (0; the injector finds the
 * gate GIVEN_UP and withdraws what it scheduled).  It sleeps in a futex wait
 * on the gate, which ti_let_go() wakes: no spinning, and under valgrind,
 * which runs one thread at a time, the injector gets to run. */
static int
hold_until_open(slot *s, unsigned int seq)
{
    struct timespec start;
    (void)clock_gettime(CLOCK_MONOTONIC, &start);
    for (;;) {
        unsigned int gate = atomic_load_explicit(&s->gate, memory_order_acquire);
        if (gate == (seq << 2 | KEPT)) {
            /* no bound: the injector reads this thread's frames, which
             * must not change until it is done */
            (void)syscall(SYS_futex, (unsigned int *)&s->gate, FUTEX_WAIT_PRIVATE, gate, NULL, NULL, 0);
            continue;
        }
        if (gate != (seq << 2 | SHUT)) {
            return gate == (seq << 2 | OPEN);
        }
        long left = WAIT_NS - elapsed_ns(&start);
        if (left <= 0) {
            if (atomic_compare_exchange_strong_explicit(&s->gate, &gate, seq << 2 | GIVEN_UP,
                                                        memory_order_acq_rel, memory_order_acquire)) {
                return 0;
            }
            continue;   /* opened meanwhile */
        }
        struct timespec wait = {left / 1000000000L, left % 1000000000L};
        /* returns at once if the gate has changed; EINTR, ETIMEDOUT: look again */
        (void)syscall(SYS_futex, (unsigned int *)&s->gate, FUTEX_WAIT_PRIVATE, gate, &wait, NULL, 0);
    }
}

static void
handler(int signo, siginfo_t *info, void *context)
{
    int saved_errno = errno;
    if (info == NULL || info->si_code != SI_QUEUE || info->si_pid != getpid()
        || info->si_value.sival_ptr != (void *)slots) {
        chain(signo, info, context);
        errno = saved_errno;
        return;
    }
    long tid = (long)syscall(SYS_gettid);
    for (int i = 0; i < SLOTS; i++) {
        slot *s = &slots[i];
        if (atomic_load_explicit(&s->tid, memory_order_acquire) != tid) {
            continue;
        }
        unsigned int word = atomic_load_explicit(&s->word, memory_order_acquire);
        if ((word & STATE_MASK) != ARMED
            || !atomic_compare_exchange_strong_explicit(&s->word, &word, (word & ~STATE_MASK) | CLAIMED,
                                                        memory_order_acq_rel, memory_order_acquire)) {
            break;
        }
        if (atomic_load_explicit(&s->tid, memory_order_acquire) != tid) {
            /* given to another thread and armed for it since the check
             * above: not ours to act on */
            atomic_store_explicit(&s->word, word, memory_order_release);
            continue;
        }
        unsigned int rewritten = 0;
        ucontext_t *uc = (ucontext_t *)context;
        int at_call = returning_from(uc, s)
            && (s->guard_addr == 0
                || *(volatile unsigned long *)s->guard_addr == s->guard_value);
        if (s->hold) {
            /* tell the injector whether the thread is held at the call */
            atomic_store_explicit(&s->outcome, (word >> 2) << 1 | (unsigned int)at_call,
                                  memory_order_release);
            at_call = at_call && hold_until_open(s, word >> 2);
        }
        if (s->rewrite && at_call) {
            if (s->zero_fdsets) {
                /* select(nfds, readfds, writefds, exceptfds, ...) */
                for (int arg = 1; arg <= 3; arg++) {
                    clear_fdset(CALL_ARG(uc, arg), s->arg0);
                }
            }
            SET_RESULT(uc, s->result);
            rewritten = 1;
        }
        if (!s->hold) {
            atomic_store_explicit(&s->outcome, (word >> 2) << 1 | rewritten, memory_order_release);
        }
        atomic_store_explicit(&s->word, (word & ~STATE_MASK) | IDLE, memory_order_release);
        break;
    }
    errno = saved_errno;
}

/* --------------------------------------------------------------------- */

PyObject *
ti_wake_install(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 1) {
        PyErr_SetString(PyExc_TypeError, "_wake_install(signo, /)");
        return NULL;
    }
    long signo = PyLong_AsLong(args[0]);
    if (signo == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (signo < SIGRTMIN || signo > SIGRTMAX) {
        PyErr_Format(PyExc_ValueError, "_wake_install() argument 'signo' must be a "
                     "real-time signal (%d..%d), not %ld", SIGRTMIN, SIGRTMAX, signo);
        return NULL;
    }
    int current = atomic_load(&installed_signo);
    if (current == signo) {
        Py_RETURN_NONE;
    }
    if (current != 0) {
        PyErr_Format(PyExc_RuntimeError, "threadinject already uses signal %d", current);
        return NULL;
    }
    struct sigaction action;
    memset(&action, 0, sizeof(action));
    action.sa_sigaction = handler;
    action.sa_flags = SA_SIGINFO;   /* no SA_RESTART: interrupted calls return EINTR */
    if (sigemptyset(&action.sa_mask) < 0 || sigaction((int)signo, &action, &previous) < 0) {
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    atomic_store(&installed_signo, (int)signo);
    Py_RETURN_NONE;
}

/* An unsigned long argument; 0 on success, -1 with an exception. */
static int
as_ulong(PyObject *arg, unsigned long *out)
{
    *out = PyLong_AsUnsignedLong(arg);
    return (*out == (unsigned long)-1 && PyErr_Occurred()) ? -1 : 0;
}

/* Parse the arguments of _wake_send; 0 on success, -1 with an exception. */
static int
parse_send(PyObject *const *args, Py_ssize_t nargs, long *tid, slot *wanted)
{
    if (nargs != 8) {
        PyErr_SetString(PyExc_TypeError, "_wake_send(tid, ip, arg0, result, zero_fdsets, "
                        "rewrite, guard_addr, guard_value, /)");
        return -1;
    }
    *tid = PyLong_AsLong(args[0]);
    if (*tid == -1 && PyErr_Occurred()) {
        return -1;
    }
    wanted->result = PyLong_AsLong(args[3]);
    if (wanted->result == -1 && PyErr_Occurred()) {
        return -1;
    }
    if (as_ulong(args[1], &wanted->ip) < 0 || as_ulong(args[2], &wanted->arg0) < 0
        || as_ulong(args[6], &wanted->guard_addr) < 0 || as_ulong(args[7], &wanted->guard_value) < 0) {
        return -1;
    }
    wanted->zero_fdsets = PyObject_IsTrue(args[4]);
    wanted->rewrite = PyObject_IsTrue(args[5]);
    return (wanted->zero_fdsets < 0 || wanted->rewrite < 0) ? -1 : 0;
}

/* Set the slot IDLE, waiting while the handler has it CLAIMED (it runs a few
 * dozen instructions); returns the word it had. */
static unsigned int
make_idle(slot *s)
{
    unsigned int word = atomic_load(&s->word);
    for (;;) {
        if ((word & STATE_MASK) == CLAIMED) {
            word = atomic_load(&s->word);
            continue;
        }
        if (atomic_compare_exchange_weak(&s->word, &word, (word & ~STATE_MASK) | IDLE)) {
            return word;
        }
    }
}

/* The slot of `tid`, claiming a free or idle one if it has none. */
static slot *
slot_for(long tid)
{
    slot *idle = NULL;
    for (int i = 0; i < SLOTS; i++) {
        long owner = atomic_load(&slots[i].tid);
        if (owner == tid) {
            return &slots[i];
        }
        if (idle == NULL && (owner == 0 || (atomic_load(&slots[i].word) & STATE_MASK) == IDLE)) {
            idle = &slots[i];
        }
    }
    if (idle != NULL) {
        make_idle(idle);
        atomic_store(&idle->tid, tid);
    }
    return idle;
}

/* aarch64: read from /proc what the handler will compare (the call's number
 * and arguments 1-5) into `wanted`, if /proc still shows the thread in the
 * call `wanted` names (ip, first argument); else (it has moved on, or /proc
 * cannot be read) a number no call has, so that the handler only interrupts,
 * as it does on x86-64 when the thread is not at the call.  x86-64 compares
 * the first argument itself: nothing to do. */
static void
capture_call(long tid, slot *wanted)
{
    wanted->number = -1;
#if defined(__aarch64__)
    char path[64], text[256];
    snprintf(path, sizeof path, "/proc/self/task/%ld/syscall", tid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return;
    }
    ssize_t n = read(fd, text, sizeof text - 1);
    close(fd);
    if (n <= 0) {
        return;
    }
    text[n] = '\0';
    /* "nr arg0 ... arg5 sp pc"; "running", or nr -1 outside a call */
    char *end;
    long number = strtol(text, &end, 10);
    unsigned long field[8];
    for (int i = 0; i < 8 && end != text; i++) {
        char *next;
        field[i] = strtoul(end, &next, 16);
        end = next == end ? text : next;   /* text: not a call's line */
    }
    if (end != text && number >= 0 && field[7] == wanted->ip && field[0] == wanted->arg0) {
        wanted->number = number;
        memcpy(wanted->args, field, sizeof wanted->args);
    }
#else
    (void)tid;
#endif
}

/* Arm the slot of `tid`: returns it, with its new sequence number in *seq;
 * NULL if every slot is busy. */
static slot *
arm(long tid, const slot *wanted, unsigned int *seq)
{
    while (atomic_flag_test_and_set_explicit(&arm_lock, memory_order_acquire)) {
        /* another injector is storing a few words */
    }
    slot *s = slot_for(tid);
    if (s != NULL) {
        unsigned int word = make_idle(s);   /* no handler reads the fields meanwhile */
        s->ip = wanted->ip;
        s->arg0 = wanted->arg0;
        s->number = wanted->number;
        memcpy(s->args, wanted->args, sizeof s->args);
        s->result = wanted->result;
        s->zero_fdsets = wanted->zero_fdsets;
        s->rewrite = wanted->rewrite;
        s->guard_addr = wanted->guard_addr;
        s->guard_value = wanted->guard_value;
        s->hold = wanted->hold;
        *seq = ((word >> 2) + 1) & (UINT_MAX >> 2);
        *seq += *seq == 0;   /* 0 is the `outcome` of no arming */
        atomic_store_explicit(&s->gate, *seq << 2 | SHUT, memory_order_relaxed);
        atomic_store_explicit(&s->word, *seq << 2 | ARMED, memory_order_release);
    }
    atomic_flag_clear_explicit(&arm_lock, memory_order_release);
    return s;
}

/* Send our signal to thread `tid`: 1 if sent, 0 if it has just ended, -1
 * with errno set.  A failed send disarms its slot. */
static int
send_signal(long tid, int signo)
{
    /* rt_tgsigqueueinfo: to that one thread, with si_code SI_QUEUE and our
     * cookie, which is how the handler tells our signals from others. */
    siginfo_t info;
    memset(&info, 0, sizeof(info));
    info.si_signo = signo;
    info.si_code = SI_QUEUE;
    info.si_pid = getpid();
    info.si_uid = getuid();
    info.si_value.sival_ptr = (void *)slots;
    if (syscall(SYS_rt_tgsigqueueinfo, getpid(), (pid_t)tid, signo, &info) == 0) {
        return 1;
    }
    int err = errno;
    for (int i = 0; i < SLOTS; i++) {
        if (atomic_load(&slots[i].tid) == tid) {
            unsigned int word = atomic_load(&slots[i].word);
            if ((word & STATE_MASK) == ARMED) {
                atomic_compare_exchange_strong(&slots[i].word, &word, (word & ~STATE_MASK) | IDLE);
            }
        }
    }
    errno = err;
    return err == ESRCH ? 0 : -1;
}

int
ti_call_parse(const char *fname, PyObject *const *args, ti_call *out)
{
    out->result = PyLong_AsLong(args[2]);
    if ((out->result == -1 && PyErr_Occurred()) || as_ulong(args[0], &out->ip) < 0
        || as_ulong(args[1], &out->arg0) < 0) {
        return -1;
    }
    out->zero_fdsets = PyObject_IsTrue(args[3]);
    out->rewrite = PyObject_IsTrue(args[4]);
    if (out->zero_fdsets < 0 || out->rewrite < 0) {
        return -1;
    }
    if (atomic_load(&installed_signo) == 0) {
        PyErr_Format(PyExc_RuntimeError, "%s(): _wake_install() was not called", fname);
        return -1;
    }
    return 0;
}

PyObject *
ti_wake_send(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    long tid;
    slot wanted;
    memset(&wanted, 0, sizeof(wanted));
    if (parse_send(args, nargs, &tid, &wanted) < 0) {
        return NULL;
    }
    int signo = atomic_load(&installed_signo);
    if (signo == 0) {
        PyErr_SetString(PyExc_RuntimeError, "_wake_install() was not called");
        return NULL;
    }
    capture_call(tid, &wanted);
    unsigned int seq;
    if (arm(tid, &wanted, &seq) == NULL) {
        Py_RETURN_FALSE;   /* every slot is armed: the caller tries again later */
    }
    int sent = send_signal(tid, signo);
    if (sent < 0) {
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    return PyBool_FromLong(sent);
}


/* Whether the handler acted on arming `seq` of slot `s` and rewrote the
 * result (1, else 0): waits up to `timeout_ns` for it to run, then disarms
 * the slot if it has not (a signal arriving later leaves the call alone) and
 * returns -ETIMEDOUT. */
static int
await_handler(slot *s, unsigned int seq, long timeout_ns)
{
    /* CLOCK_MONOTONIC cannot fail on Linux; an interrupted nanosleep() only
     * makes the loop look again sooner */
    struct timespec start, pause = {0, 20000};
    (void)clock_gettime(CLOCK_MONOTONIC, &start);
    for (;;) {
        unsigned int outcome = atomic_load_explicit(&s->outcome, memory_order_acquire);
        if (outcome >> 1 == seq) {
            return (int)(outcome & 1);
        }
        unsigned int word = atomic_load_explicit(&s->word, memory_order_acquire);
        if (word >> 2 != seq) {
            return 0;   /* armed again by another injector: ours is unknown */
        }
        if ((word & STATE_MASK) == ARMED && elapsed_ns(&start) >= timeout_ns
            && atomic_compare_exchange_strong(&s->word, &word, (word & ~STATE_MASK) | IDLE)) {
            return -ETIMEDOUT;
        }
        (void)nanosleep(&pause, NULL);
    }
}

int
ti_lock_wake_parse(PyObject *wake, unsigned long arg0, ti_lock_wake *out)
{
    if (!PyTuple_Check(wake) || PyTuple_Size(wake) != 4) {
        PyErr_Format(PyExc_TypeError, "_inject_if_at() argument 'wake' must be a tuple "
                     "(ip, result, guard_addr, guard_value), not %R", wake);
        return -1;
    }
    PyObject *item[4];   /* borrowed */
    for (Py_ssize_t i = 0; i < 4; i++) {
        if ((item[i] = PyTuple_GetItem(wake, i)) == NULL) {
            return -1;
        }
    }
    out->arg0 = arg0;
    out->result = PyLong_AsLong(item[1]);
    if ((out->result == -1 && PyErr_Occurred()) || as_ulong(item[0], &out->ip) < 0
        || as_ulong(item[2], &out->guard_addr) < 0 || as_ulong(item[3], &out->guard_value) < 0) {
        return -1;
    }
    if (atomic_load(&installed_signo) == 0) {
        PyErr_SetString(PyExc_RuntimeError, "_wake_install() was not called");
        return -1;
    }
    return 0;
}

/* Arm the slot of `tid` as `wanted`, send the signal and wait for the
 * handler (await_handler's result; *s and *seq say which arming).  0 if every
 * slot is armed or the thread has ended, -errno if the signal could not be
 * sent. */
static int
arm_signal_await(long tid, slot *wanted, slot **s, unsigned int *seq)
{
    capture_call(tid, wanted);
    *s = arm(tid, wanted, seq);
    if (*s == NULL) {
        return 0;   /* every slot is armed */
    }
    int sent = send_signal(tid, atomic_load(&installed_signo));
    if (sent <= 0) {
        return sent < 0 ? -errno : 0;
    }
    return await_handler(*s, *seq, WAIT_NS);
}

int
ti_wake_and_wait(long tid, const ti_lock_wake *wait)
{
    slot wanted;
    memset(&wanted, 0, sizeof(wanted));
    wanted.ip = wait->ip;
    wanted.arg0 = wait->arg0;
    wanted.result = wait->result;
    wanted.rewrite = 1;
    wanted.guard_addr = wait->guard_addr;
    wanted.guard_value = wait->guard_value;
    slot *s;
    unsigned int seq;
    return arm_signal_await(tid, &wanted, &s, &seq);
}

int
ti_hold_in_call(long tid, const ti_call *call, ti_hold *hold)
{
    slot wanted;
    memset(&wanted, 0, sizeof(wanted));
    wanted.ip = call->ip;
    wanted.arg0 = call->arg0;
    wanted.result = call->result;
    wanted.zero_fdsets = call->zero_fdsets;
    wanted.rewrite = call->rewrite;
    wanted.hold = 1;
    slot *s;
    unsigned int seq;
    int rc = arm_signal_await(tid, &wanted, &s, &seq);
    if (rc == 1) {
        hold->slot = s;
        hold->seq = seq;
    }
    return rc;
}

int
ti_keep_held(const ti_hold *hold)
{
    slot *s = (slot *)hold->slot;
    unsigned int shut = hold->seq << 2 | SHUT;
    return atomic_compare_exchange_strong(&s->gate, &shut, hold->seq << 2 | KEPT);
}

int
ti_let_go(const ti_hold *hold, int open)
{
    slot *s = (slot *)hold->slot;
    unsigned int now = hold->seq << 2 | SHUT;
    unsigned int decided = hold->seq << 2 | (open ? OPEN : GIVEN_UP);
    /* from SHUT, unless the handler has given up; from KEPT, which only
     * this side leaves */
    if (!atomic_compare_exchange_strong(&s->gate, &now, decided)
        && (now != (hold->seq << 2 | KEPT) || !atomic_compare_exchange_strong(&s->gate, &now, decided))) {
        return 0;
    }
    (void)syscall(SYS_futex, (unsigned int *)&s->gate, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
    return 1;
}

#endif /* __linux__ && (__x86_64__ || __aarch64__) */
