/*
 * c_host: a C program that uses the last-call runtime through
 * include/last_call.h and the shared library.
 *
 *   c_host drain [threads] [stream_ms]
 *       Worker threads each begin a stream, work, and end it. The main
 *       thread takes the process out of rotation (gs_set_draining), waits for
 *       the streams without polling (gs_wait_for_streams), and reports.
 *
 *   c_host serve [threads] [stream_ms]
 *       Installs SIGTERM/SIGINT handling (timings from the GS_* environment
 *       variables), then runs the same workers. Send it SIGTERM: it drains,
 *       lets the streams finish (or asks them to close near the deadline),
 *       runs its shutdown hook and exits 0. It opts in to the shutdown log
 *       (gs_set_shutdown_log): a few lines on stderr say what the shutdown
 *       did (GS_SHUTDOWN_LOG=0 turns them off). With GS_PROBE_ADDR set it also
 *       starts the runtime's probe listener (/readyz consults a readiness
 *       check of this host's; /healthz follows the heartbeat its main loop
 *       sends once a second).
 *
 * Exit status: 0 when everything behaved as documented, 1 otherwise.
 */
#define _POSIX_C_SOURCE 200809L

#include "last_call.h"

#include <math.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static struct timespec started_at;
/* Workers and main meet here once every stream has begun. */
static pthread_barrier_t streams_begun;
/* Posted by the phase callback when it sees Stopped. */
static sem_t stopped_seen;

static double elapsed_seconds(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - started_at.tv_sec) +
           (double)(now.tv_nsec - started_at.tv_nsec) / 1e9;
}

static const char *phase_name(gs_phase phase) {
    switch (phase) {
    case GS_PHASE_SERVING: return "serving";
    case GS_PHASE_DRAINING: return "draining";
    case GS_PHASE_CLOSING_STREAMS: return "closing_streams";
    case GS_PHASE_STOPPING: return "stopping";
    case GS_PHASE_STOPPED: return "stopped";
    }
    return "?";
}

/* Prints a failed call with the runtime's own explanation. */
static int check(gs_status status, const char *what) {
    if (status == GS_OK) return 1;
    char message[256];
    gs_last_error_message(message, sizeof message, NULL);
    fprintf(stderr, "c_host: %s: %s (%s)\n", what, gs_status_message(status), message);
    return 0;
}

struct worker {
    pthread_t thread;
    int index;
    double stream_seconds;
    /* A stuck stream ignores its moment: it ends only at Stopping. */
    int stuck;
    int ok;
};

/* One stream: begin, work for stream_seconds, end. The "work" is a wait for
 * ClosingStreams with a timeout. Even workers hold resumable streams: asked
 * to close, each waits for its own moment of the reconnect spread
 * (gs_stream_end_in), then ends, as an SSE handler would after sending
 * `retry:`, its last id and `event: reconnect`. Odd workers hold pod-bound
 * streams: they run on until the streams' last moment (the end of the nudge
 * window), then end, as a handler would after its final event. */
static void *stream_worker(void *arg) {
    struct worker *worker = arg;
    uint32_t kind = worker->index % 2 == 0 ? GS_STREAM_RESUMABLE : GS_STREAM_POD_BOUND;
    worker->ok = check(gs_increment_active_streams(), "increment");
    pthread_barrier_wait(&streams_begun);
    gs_status waited = gs_wait_for_phase(GS_PHASE_CLOSING_STREAMS, worker->stream_seconds);
    const char *how = waited == GS_OK ? "asked to close" : "finished";
    worker->ok &= waited == GS_OK || waited == GS_TIMED_OUT;
    if (waited == GS_OK && worker->stuck) {
        worker->ok &= check(gs_wait_for_phase(GS_PHASE_STOPPING, INFINITY), "wait_for_phase(stopping)");
        how = "stuck until stopping";
    } else if (waited == GS_OK) {
        double end_in = 0.0;
        worker->ok &= check(gs_stream_end_in(kind, &end_in), "stream_end_in");
        worker->ok &= end_in >= 0.0 && end_in < 3600.0;
        if (end_in > 0.0) {
            struct timespec pause = {(time_t)end_in, (long)((end_in - (double)(time_t)end_in) * 1e9)};
            while (nanosleep(&pause, &pause) != 0) {
            }
        }
        /* Here an SSE handler sends its ending; the runtime counts it for
         * the shutdown log ("nudged to reconnect", "given their final
         * event"). */
        worker->ok &= check(gs_stream_ending_sent(kind), "stream_ending_sent");
        printf("[%7.3f s] stream %d (%s) ends after %.3f s\n", elapsed_seconds(), worker->index,
               kind == GS_STREAM_RESUMABLE ? "resumable: reconnect" : "pod-bound: final event", end_in);
    }
    worker->ok &= check(gs_decrement_active_streams(), "decrement");
    printf("[%7.3f s] stream %d %s\n", elapsed_seconds(), worker->index, how);
    fflush(stdout);
    return NULL;
}

static void on_phase(gs_phase from, gs_phase to, void *user_data) {
    (void)user_data;
    printf("[%7.3f s] phase %s -> %s (active streams: %llu)\n", elapsed_seconds(),
           phase_name(from), phase_name(to), (unsigned long long)gs_active_streams());
    fflush(stdout);
    if (to == GS_PHASE_STOPPED) sem_post(&stopped_seen);
}

static uint8_t stop_workers_hook(double remaining_seconds, void *user_data) {
    int *hook_runs = user_data;
    ++*hook_runs;
    printf("[%7.3f s] shutdown hook: %.3f s left before the deadline\n", elapsed_seconds(),
           remaining_seconds);
    fflush(stdout);
    return true;
}

/* Starts the workers and returns once each has begun its stream. */
static int start_workers(struct worker *workers, int count, double stream_seconds, int stuck) {
    pthread_barrier_init(&streams_begun, NULL, (unsigned)count + 1);
    for (int i = 0; i < count; ++i) {
        workers[i].index = i;
        workers[i].stream_seconds = stream_seconds;
        workers[i].stuck = stuck;
        workers[i].ok = 0;
        if (pthread_create(&workers[i].thread, NULL, stream_worker, &workers[i]) != 0) {
            fprintf(stderr, "c_host: pthread_create failed\n");
            exit(1);
        }
    }
    pthread_barrier_wait(&streams_begun);
    return 1;
}

static int join_workers(struct worker *workers, int count) {
    int ok = 1;
    for (int i = 0; i < count; ++i) {
        pthread_join(workers[i].thread, NULL);
        ok &= workers[i].ok;
    }
    return ok;
}

static int drain(struct worker *workers, int count, double stream_seconds) {
    int ok = start_workers(workers, count, stream_seconds, 0);
    /* Every stream has begun: leave rotation. */
    ok &= check(gs_set_draining(1), "set_draining(true)");
    printf("[%7.3f s] draining: is_draining=%d, phase=%s, active streams=%llu\n",
           elapsed_seconds(), gs_is_draining(), phase_name(gs_current_phase()),
           (unsigned long long)gs_active_streams());
    gs_status waited = gs_wait_for_streams(30.0);
    ok &= check(waited, "wait_for_streams");
    printf("[%7.3f s] all streams ended: active=%llu started=%llu finished=%llu\n",
           elapsed_seconds(), (unsigned long long)gs_active_streams(),
           (unsigned long long)gs_streams_started_total(),
           (unsigned long long)gs_streams_finished_total());
    ok &= join_workers(workers, count);
    ok &= gs_streams_started_total() == (uint64_t)count;
    ok &= gs_streams_finished_total() == (uint64_t)count;

    /* Bad input is reported, never wraps. */
    ok &= gs_decrement_active_streams() == GS_ERR_NO_ACTIVE_STREAM;
    ok &= gs_active_streams() == 0;
    ok &= gs_wait_for_streams(NAN) == GS_ERR_INVALID_ARGUMENT;
    ok &= gs_wait_for_streams(-1.0) == GS_ERR_INVALID_ARGUMENT;
    ok &= gs_wait_for_streams(INFINITY) == GS_OK;

    /* Back into rotation: allowed, the shutdown sequence never started. */
    ok &= check(gs_set_draining(0), "set_draining(false)");
    ok &= gs_current_phase() == GS_PHASE_SERVING;

    size_t needed = 0;
    gs_render_metrics(GS_METRICS_PROMETHEUS, NULL, 0, &needed);
    char *metrics = malloc(needed + 1);
    ok &= metrics != NULL && check(gs_render_metrics(GS_METRICS_PROMETHEUS, metrics, needed + 1, NULL), "render_metrics");
    if (metrics != NULL) {
        printf("metrics:\n%s", metrics);
        free(metrics);
    }
    return ok;
}

/* Readiness: every worker thread has started. */
static int workers_started = 0;

static uint8_t workers_ready(void *user_data) {
    (void)user_data;
    return __atomic_load_n(&workers_started, __ATOMIC_ACQUIRE) != 0;
}

/* A duration of the configuration, or "default" for GS_DEFAULT_SECONDS (the
 * runtime scales it to the timeout). */
static void print_seconds(const char *name, double seconds) {
    if (seconds == GS_DEFAULT_SECONDS) {
        printf(", %s default", name);
    } else {
        printf(", %s %.1f s", name, seconds);
    }
}

/* `options`: "nohook" registers no shutdown hook (the streams may then use
 * the whole timeout); "stuck" makes every stream ignore its moment. */
static int serve(struct worker *workers, int count, double stream_seconds, const char *options) {
    int with_hook = strstr(options, "nohook") == NULL;
    int stuck = strstr(options, "stuck") != NULL;
    gs_config config = {.size = sizeof config}; /* the struct can grow: say how big it is here */
    if (!check(gs_config_from_env(&config), "config_from_env")) return 0;
    /* Opt in to the shutdown log on stderr (off by default for a C host). */
    if (!check(gs_set_shutdown_log(1), "set_shutdown_log")) return 0;
    int ok = check(gs_install_signal_handlers(&config), "install_signal_handlers");
    ok &= gs_install_signal_handlers(&config) == GS_ERR_ALREADY_INSTALLED;
    ok &= check(gs_on_phase(on_phase, NULL, NULL), "on_phase");
    static int hook_runs = 0;
    if (with_hook) {
        ok &= check(gs_register_shutdown_hook("stop-workers", stop_workers_hook, &hook_runs, NULL),
                    "register_shutdown_hook");
    }
    if (!ok) return 0;
    if (getenv("GS_PROBE_ADDR") != NULL) {
        char bound[64];
        ok &= check(gs_add_readiness_check("workers", workers_ready, NULL, 1.0, NULL), "add_readiness_check");
        ok &= check(gs_start_probe_listener(NULL, bound, sizeof bound, NULL), "start_probe_listener");
    }
    ok &= start_workers(workers, count, stream_seconds, stuck);
    __atomic_store_n(&workers_started, 1, __ATOMIC_RELEASE);
    printf("[%7.3f s] serving: pid %ld, timeout %.1f s", elapsed_seconds(), (long)getpid(),
           config.shutdown_timeout_seconds);
    print_seconds("drain delay", config.drain_delay_seconds);
    print_seconds("close notice", config.close_notice_seconds);
    printf(", %s\n", with_hook ? "one hook" : "no hook");
    fflush(stdout);
    /* The main thread sleeps until the sequence is over, then until the
     * phase callback has been told (it runs on the runtime's thread and may
     * finish a moment after the phase is entered). */
    /* This loop is the host's: it sends the liveness heartbeat each time
     * round, so a wedged main loop shows as a stale /healthz. */
    gs_status waited;
    do {
        gs_heartbeat();
        waited = gs_wait_for_phase(GS_PHASE_STOPPED, 1.0);
    } while (waited == GS_TIMED_OUT);
    ok &= check(waited, "wait_for_phase");
    while (sem_wait(&stopped_seen) != 0) {
    }
    ok &= join_workers(workers, count);
    ok &= hook_runs == (with_hook ? 1 : 0);
    printf("[%7.3f s] stopped: exiting %d\n", elapsed_seconds(), ok ? 0 : 1);
    return ok;
}

int main(int argc, char **argv) {
    clock_gettime(CLOCK_MONOTONIC, &started_at);
    const char *mode = argc > 1 ? argv[1] : "drain";
    int threads = argc > 2 ? atoi(argv[2]) : 4;
    double stream_seconds = (argc > 3 ? atof(argv[3]) : 300.0) / 1000.0;
    if (threads < 1 || threads > 1000 || !(stream_seconds >= 0.0)) {
        fprintf(stderr, "usage: c_host drain|serve [threads 1..1000] [stream_ms] [nohook,stuck]\n");
        return 2;
    }
    printf("c_host: last-call %s, %d stream threads of %.3f s\n", gs_version(), threads,
           stream_seconds);
    sem_init(&stopped_seen, 0, 0);
    struct worker *workers = calloc((size_t)threads, sizeof *workers);
    if (workers == NULL) return 1;
    int ok;
    if (strcmp(mode, "drain") == 0) {
        ok = drain(workers, threads, stream_seconds);
    } else if (strcmp(mode, "serve") == 0) {
        ok = serve(workers, threads, stream_seconds, argc > 4 ? argv[4] : "");
    } else {
        fprintf(stderr, "c_host: unknown mode %s\n", mode);
        ok = 0;
    }
    free(workers);
    return ok ? 0 : 1;
}
