/*
 * hostile_host: a C host that does what a careless or hostile host does to
 * the runtime, one scenario per mode, through the public header only. The
 * Rust test tests/hostile_host.rs compiles it with the system C compiler and
 * runs each mode as a real process (real signals, real fork()).
 *
 *   blocking-callback   a phase callback blocks forever on Draining
 *   hung-hook           a stream never ends; one hook hangs, one returns at once
 *   begin-then-signals  gs_begin_shutdown(), then the test sends signals
 *   remove-self         2,000 callbacks that remove themselves on first delivery
 *   wait-in-callback    blocking waits from a callback and from a hook
 *   fork-in-callback    fork() from another thread while a callback runs
 *   full-stderr         stderr is a pipe nobody reads, full: the watchdog ends us
 *   no-reader-stderr    stderr is a pipe with no reader, SIGPIPE at its default:
 *                       a warning comes before the hook, which still runs
 *   emfile-probe        the probe listener started with one descriptor left
 *                       (its runtime cannot be built), then fork
 *   fork-while-publishing  600 forks while a thread publishes to the hub;
 *                       each child's first gs_hub_send must answer at once
 *   stopped-past-deadline  an instant hook; the test stops the process
 *                       (SIGSTOP) in Draining and resumes it past the deadline
 *
 * Timings come from the GS_* environment. Lines on stdout report progress;
 * exit status 0 means every check of the mode held (the watchdog and the
 * signal policies end some modes with other statuses, on purpose).
 */
#define _GNU_SOURCE

#include "last_call.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <math.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static struct timespec started_at;

static double elapsed(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - started_at.tv_sec) +
           (double)(now.tv_nsec - started_at.tv_nsec) / 1e9;
}

static void say(const char *format, double value) {
    printf(format, value);
    printf("\n");
    fflush(stdout);
}

static int ok(gs_status status, const char *what) {
    if (status == GS_OK) return 1;
    char message[256];
    gs_last_error_message(message, sizeof message, NULL);
    fprintf(stderr, "hostile_host: %s: %s (%s)\n", what, gs_status_message(status), message);
    return 0;
}

/* Waits on `sem` for at most `seconds`; 0 on timeout. */
static int wait_sem(sem_t *sem, double seconds) {
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += (time_t)seconds;
    while (sem_timedwait(sem, &until) != 0) {
        if (errno != EINTR) return 0;
    }
    return 1;
}

static void sleep_seconds(double seconds) {
    struct timespec t = {(time_t)seconds, (long)((seconds - floor(seconds)) * 1e9)};
    while (nanosleep(&t, &t) != 0 && errno == EINTR) {}
}

/* ---- blocking-callback ------------------------------------------------ */

static sem_t stopped_callback;

static void block_on_draining(gs_phase from, gs_phase to, void *user_data) {
    (void)from; (void)user_data;
    if (to == GS_PHASE_DRAINING) {
        say("callback: blocking forever on draining at %.3f", elapsed());
        for (;;) pause();
    }
    if (to == GS_PHASE_STOPPED) sem_post(&stopped_callback);
}

static int blocking_callback(void) {
    sem_init(&stopped_callback, 0, 0);
    if (!ok(gs_install_signal_handlers(NULL), "install")) return 1;
    if (!ok(gs_on_phase(block_on_draining, NULL, NULL), "on_phase")) return 1;
    say("ready %.0f", 0);
    if (!ok(gs_wait_for_phase(GS_PHASE_STOPPED, INFINITY), "wait_for_phase")) return 1;
    say("stopped reached at %.3f", elapsed());
    /* Like the C example host: exit once our own Stopped callback ran. It
     * never runs (delivery is blocked), so only the watchdog can end us. */
    wait_sem(&stopped_callback, 3600);
    say("unreachable: stopped callback ran at %.3f", elapsed());
    return 0;
}

/* ---- hung-hook -------------------------------------------------------- */

static uint8_t hang_hook(double seconds, void *user_data) {
    (void)user_data;
    say("hook hangs: given %.3f", seconds);
    for (;;) pause();
    return true;
}

static uint8_t instant_hook(double seconds, void *user_data) {
    (void)user_data;
    say("hook instant: given %.3f", seconds);
    return true;
}

static int hung_hook(void) {
    if (!ok(gs_install_signal_handlers(NULL), "install")) return 1;
    if (!ok(gs_increment_active_streams(), "increment")) return 1; /* never ends */
    if (!ok(gs_register_shutdown_hook("hangs", hang_hook, NULL, NULL), "hook")) return 1;
    if (!ok(gs_register_shutdown_hook("instant", instant_hook, NULL, NULL), "hook")) return 1;
    say("ready %.0f", 0);
    if (!ok(gs_wait_for_phase(GS_PHASE_STOPPED, INFINITY), "wait_for_phase")) return 1;
    say("stopped reached at %.3f", elapsed());
    return 0;
}

/* ---- stopped-past-deadline -------------------------------------------- */

static void say_draining(gs_phase from, gs_phase to, void *user_data) {
    (void)from; (void)user_data;
    if (to == GS_PHASE_DRAINING) say("draining at %.3f", elapsed());
}

static int stopped_past_deadline(void) {
    if (!ok(gs_install_signal_handlers(NULL), "install")) return 1;
    if (!ok(gs_on_phase(say_draining, NULL, NULL), "on_phase")) return 1;
    if (!ok(gs_register_shutdown_hook("instant", instant_hook, NULL, NULL), "hook")) return 1;
    say("ready %.0f", 0);
    if (!ok(gs_wait_for_phase(GS_PHASE_STOPPED, INFINITY), "wait_for_phase")) return 1;
    say("stopped reached at %.3f", elapsed());
    return 0;
}

/* ---- begin-then-signals ----------------------------------------------- */

static int begin_then_signals(void) {
    if (!ok(gs_install_signal_handlers(NULL), "install")) return 1;
    if (!ok(gs_increment_active_streams(), "increment")) return 1; /* holds the sequence */
    if (!ok(gs_begin_shutdown(), "begin_shutdown")) return 1;
    say("ready %.0f", 0);
    if (!ok(gs_wait_for_phase(GS_PHASE_STOPPED, INFINITY), "wait_for_phase")) return 1;
    say("stopped reached at %.3f", elapsed());
    return 0;
}

/* ---- remove-self ------------------------------------------------------ */

static sem_t removed;
static uint64_t current_id;
static int remove_failures;

static void remove_myself(gs_phase from, gs_phase to, void *user_data) {
    (void)from; (void)to; (void)user_data;
    if (gs_remove_phase_callback(__atomic_load_n(&current_id, __ATOMIC_ACQUIRE)) != GS_OK)
        __atomic_add_fetch(&remove_failures, 1, __ATOMIC_RELAXED);
    sem_post(&removed);
}

static int remove_self(void) {
    sem_init(&removed, 0, 0);
    for (int round = 0; round < 2000; round++) {
        uint64_t id = 0;
        if (!ok(gs_on_phase(remove_myself, NULL, &id), "on_phase")) return 1;
        __atomic_store_n(&current_id, id, __ATOMIC_RELEASE);
        if (!ok(gs_set_draining(round % 2 == 0), "set_draining")) return 1;
        if (!wait_sem(&removed, 10)) {
            say("deadlock: no delivery within 10 s in round %.0f", round);
            return 1;
        }
        if (gs_remove_phase_callback(id) != GS_ERR_NOT_FOUND) {
            say("round %.0f: the callback was still registered", round);
            return 1;
        }
    }
    /* Removed callbacks are never called again: flip a few more times. */
    for (int i = 0; i < 10; i++) gs_set_draining(i % 2 == 0);
    sleep_seconds(0.2);
    int extra = 0;
    while (sem_trywait(&removed) == 0) extra++;
    say("rounds 2000, removal failures %.0f", remove_failures);
    say("calls after removal %.0f", extra);
    return remove_failures == 0 && extra == 0 ? 0 : 1;
}

/* ---- wait-in-callback ------------------------------------------------- */

static sem_t callback_done;
static gs_status callback_phase_wait, callback_streams_wait, hook_phase_wait;
static double callback_wait_took;

static void wait_from_callback(gs_phase from, gs_phase to, void *user_data) {
    (void)from; (void)user_data;
    if (to != GS_PHASE_DRAINING) return;
    double begun = elapsed();
    callback_phase_wait = gs_wait_for_phase(GS_PHASE_STOPPED, INFINITY);
    callback_streams_wait = gs_wait_for_streams(INFINITY);
    callback_wait_took = elapsed() - begun;
    sem_post(&callback_done);
}

static uint8_t wait_from_hook(double seconds, void *user_data) {
    (void)seconds; (void)user_data;
    hook_phase_wait = gs_wait_for_phase(GS_PHASE_STOPPED, INFINITY);
    return true;
}

static int wait_in_callback(void) {
    sem_init(&callback_done, 0, 0);
    if (!ok(gs_on_phase(wait_from_callback, NULL, NULL), "on_phase")) return 1;
    if (!ok(gs_register_shutdown_hook("waits", wait_from_hook, NULL, NULL), "hook")) return 1;
    if (!ok(gs_begin_shutdown(), "begin_shutdown")) return 1;
    if (!wait_sem(&callback_done, 10)) {
        say("the callback's waits did not return within %.0f s", 10);
        return 1;
    }
    if (!ok(gs_wait_for_phase(GS_PHASE_STOPPED, 30), "wait_for_phase")) return 1;
    say("callback wait_for_phase status %.0f", callback_phase_wait);
    say("callback wait_for_streams status %.0f", callback_streams_wait);
    say("hook wait_for_phase status %.0f", hook_phase_wait);
    say("callback waits took %.6f", callback_wait_took);
    return callback_phase_wait == GS_ERR_REENTRANT && callback_streams_wait == GS_ERR_REENTRANT &&
                   hook_phase_wait == GS_ERR_REENTRANT
               ? 0
               : 1;
}

/* ---- fork-in-callback ------------------------------------------------- */

static sem_t in_callback;

static void slow_callback(gs_phase from, gs_phase to, void *user_data) {
    (void)from; (void)user_data;
    if (to != GS_PHASE_DRAINING) return;
    sem_post(&in_callback);
    sleep_seconds(1.0); /* still running when the main thread forks */
}

static void child_callback(gs_phase from, gs_phase to, void *user_data) {
    (void)from; (void)to; (void)user_data;
}

static int child_main(void) {
    alarm(20); /* a hung child ends by SIGALRM, which the test sees */
    uint64_t id = 0;
    if (!ok(gs_on_phase(child_callback, NULL, &id), "child on_phase")) return 3;
    if (!ok(gs_increment_active_streams(), "child increment")) return 3;
    if (!ok(gs_decrement_active_streams(), "child decrement")) return 3;
    if (!ok(gs_begin_shutdown(), "child begin_shutdown")) return 3;
    if (!ok(gs_wait_for_phase(GS_PHASE_STOPPED, 15), "child wait_for_phase")) return 3;
    if (!ok(gs_remove_phase_callback(id), "child remove")) return 3;
    return 0;
}

static int fork_in_callback(void) {
    sem_init(&in_callback, 0, 0);
    if (!ok(gs_on_phase(slow_callback, NULL, NULL), "on_phase")) return 1;
    if (!ok(gs_set_draining(1), "set_draining")) return 1;
    if (!wait_sem(&in_callback, 10)) return 1;
    pid_t child = fork();
    if (child < 0) return 1;
    if (child == 0) _exit(child_main());
    int status = 0;
    if (waitpid(child, &status, 0) != child) return 1;
    if (WIFEXITED(status)) {
        say("child exited with %.0f", WEXITSTATUS(status));
        return WEXITSTATUS(status) == 0 ? 0 : 1;
    }
    say("child killed by signal %.0f", WTERMSIG(status));
    return 1;
}

/* ---- full-stderr ------------------------------------------------------ */

/* Fills stderr (a pipe nobody reads, given by the test) until it takes no
 * more, then puts it back in blocking mode: every later write to it blocks. */
static int fill_stderr(void) {
    int flags = fcntl(STDERR_FILENO, F_GETFL);
    if (flags < 0 || fcntl(STDERR_FILENO, F_SETFL, flags | O_NONBLOCK) != 0) return 0;
    char block[4096];
    memset(block, 'x', sizeof block);
    size_t filled = 0;
    for (int i = 0; i < 1 << 16; i++) { /* bounded: a pipe holds 1 MiB at most by default */
        ssize_t n = write(STDERR_FILENO, block, sizeof block);
        if (n < 0) break;
        filled += (size_t)n;
    }
    int full = errno == EAGAIN;
    if (fcntl(STDERR_FILENO, F_SETFL, flags) != 0) return 0;
    say("stderr filled with %.0f bytes", (double)filled);
    return full;
}

static int full_stderr(void) {
    if (!fill_stderr()) { say("could not fill stderr %.0f", 0); return 1; }
    if (!ok(gs_install_signal_handlers(NULL), "install")) return 1;
    if (!ok(gs_increment_active_streams(), "increment")) return 1; /* never ends: warnings */
    if (!ok(gs_begin_shutdown(), "begin_shutdown")) return 1;
    say("ready %.0f", 0);
    if (!ok(gs_wait_for_phase(GS_PHASE_STOPPED, 60), "wait_for_phase")) return 1;
    say("stopped reached at %.3f", elapsed());
    /* The warnings that did not fit are counted. */
    static char metrics[16384];
    if (!ok(gs_render_metrics(GS_METRICS_PROMETHEUS, metrics, sizeof metrics, NULL), "metrics")) return 1;
    const char *dropped = strstr(metrics, "\ngs_log_lines_dropped_total ");
    say("log lines dropped %.0f", dropped ? atof(dropped + strlen("\ngs_log_lines_dropped_total ")) : -1.0);
    for (;;) pause(); /* only the watchdog ends us */
}

/* ---- no-reader-stderr ------------------------------------------------- */

static uint8_t marking_hook(double seconds, void *user_data) {
    (void)seconds; (void)user_data;
    say("hook ran at %.3f", elapsed());
    return true;
}

static int no_reader_stderr(void) {
    signal(SIGPIPE, SIG_DFL); /* a C host's default: death on a write with no reader */
    if (!ok(gs_increment_active_streams(), "increment")) return 1; /* never ends: warnings */
    if (!ok(gs_register_shutdown_hook("marks", marking_hook, NULL, NULL), "hook")) return 1;
    if (!ok(gs_begin_shutdown(), "begin_shutdown")) return 1;
    if (!ok(gs_wait_for_phase(GS_PHASE_STOPPED, 60), "wait_for_phase")) return 1;
    say("stopped reached at %.3f", elapsed());
    return 0;
}

/* ---- emfile-probe ----------------------------------------------------- */

static int emfile_probe(void) {
    /* Every runtime thread first, so that only the listener needs more. */
    if (!ok(gs_increment_active_streams(), "increment")) return 1;
    if (!ok(gs_decrement_active_streams(), "decrement")) return 1;
    struct rlimit saved;
    if (getrlimit(RLIMIT_NOFILE, &saved) != 0) return 1;
    int next = dup(0); /* the lowest free descriptor */
    if (next < 0) return 1;
    close(next);
    /* Room for the listening socket, not for its runtime's epoll. */
    struct rlimit tight = {(rlim_t)next + 1, saved.rlim_max};
    if (setrlimit(RLIMIT_NOFILE, &tight) != 0) return 1;
    char bound[GS_ADDRESS_LENGTH_MAX];
    gs_status status = gs_start_probe_listener("127.0.0.1:0", bound, sizeof bound, NULL);
    setrlimit(RLIMIT_NOFILE, &saved);
    say("start status %.0f", (double)status);
    /* The host's own file, on whatever number is free now (the listener's,
     * if it was closed). A forked child must still have it. */
    int mine = open("/dev/null", O_RDONLY);
    if (mine < 0) return 1;
    say("host file on %.0f", (double)mine);
    pid_t child = fork();
    if (child < 0) return 1;
    if (child == 0) _exit(fcntl(mine, F_GETFD) == -1 ? 4 : 0);
    int child_status = 0;
    if (waitpid(child, &child_status, 0) != child) return 1;
    say("child kept the host's file %.0f", WIFEXITED(child_status) && WEXITSTATUS(child_status) == 0);
    /* A start that failed left nothing started: a second start may run. */
    if (status != GS_OK) {
        gs_status again = gs_start_probe_listener("127.0.0.1:0", NULL, 0, NULL);
        say("second start status %.0f", (double)again);
    }
    return 0;
}

/* ---- fork-while-publishing ------------------------------------------- */

static int stop_publishing;

static void *publish_loop(void *unused) {
    (void)unused;
    while (!__atomic_load_n(&stop_publishing, __ATOMIC_ACQUIRE)) {
        gs_hub_send("c", GS_STREAM_RESUMABLE, NULL, "x", NULL);
    }
    return NULL;
}

static int fork_while_publishing(void) {
    if (!ok(gs_hub_start("127.0.0.1:0", NULL, 0, NULL), "hub_start")) return 1;
    pthread_t publisher;
    if (pthread_create(&publisher, NULL, publish_loop, NULL) != 0) return 1;
    int hung = 0, wrong = 0;
    for (int i = 0; i < 600; i++) {
        pid_t child = fork();
        if (child < 0) return 1;
        if (child == 0) {
            alarm(10); /* a child stuck on a lock inherited held dies of SIGALRM */
            /* Not this process's hub: refused at once. */
            int64_t sent = gs_hub_send("c", GS_STREAM_RESUMABLE, NULL, "x", NULL);
            _exit(sent == -(int64_t)GS_ERR_HUB_NOT_STARTED ? 0 : 3);
        }
        int status = 0;
        if (waitpid(child, &status, 0) != child) return 1;
        if (WIFSIGNALED(status)) hung++;
        else if (WEXITSTATUS(status) != 0) wrong++;
    }
    __atomic_store_n(&stop_publishing, 1, __ATOMIC_RELEASE);
    pthread_join(publisher, NULL);
    say("forks 600, hung %.0f", hung);
    say("wrong answers %.0f", wrong);
    return hung == 0 && wrong == 0 ? 0 : 1;
}

int main(int argc, char **argv) {
    clock_gettime(CLOCK_MONOTONIC, &started_at);
    const char *mode = argc > 1 ? argv[1] : "";
    if (strcmp(mode, "blocking-callback") == 0) return blocking_callback();
    if (strcmp(mode, "hung-hook") == 0) return hung_hook();
    if (strcmp(mode, "begin-then-signals") == 0) return begin_then_signals();
    if (strcmp(mode, "remove-self") == 0) return remove_self();
    if (strcmp(mode, "wait-in-callback") == 0) return wait_in_callback();
    if (strcmp(mode, "fork-in-callback") == 0) return fork_in_callback();
    if (strcmp(mode, "full-stderr") == 0) return full_stderr();
    if (strcmp(mode, "no-reader-stderr") == 0) return no_reader_stderr();
    if (strcmp(mode, "emfile-probe") == 0) return emfile_probe();
    if (strcmp(mode, "fork-while-publishing") == 0) return fork_while_publishing();
    if (strcmp(mode, "stopped-past-deadline") == 0) return stopped_past_deadline();
    fprintf(stderr, "usage: hostile_host MODE (see the source)\n");
    return 2;
}
