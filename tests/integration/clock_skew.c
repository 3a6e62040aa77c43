/* A node whose wall clock is off: LD_PRELOAD this and set IVR_TEST_CLOCK_OFFSET (seconds, may be
   negative). Only the wall clock moves (CLOCK_REALTIME and its coarse variant, gettimeofday,
   time); CLOCK_MONOTONIC and every sleep stay true, as on a real machine whose NTP is off.
   libfaketime 0.9.10 cannot do this for Python 3.11: with FAKETIME_DONT_FAKE_MONOTONIC it
   shifts the absolute monotonic deadlines of clock_nanosleep, and time.sleep fails (EINVAL). */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <sys/time.h>
#include <time.h>

typedef int (*clock_gettime_fn)(clockid_t, struct timespec *);

static long long offset_ns(void) {
    static int read = 0;
    static long long ns = 0;
    if (!read) {
        const char *text = getenv("IVR_TEST_CLOCK_OFFSET");
        ns = text ? (long long)(strtod(text, NULL) * 1e9) : 0;
        read = 1;
    }
    return ns;
}

static int real_clock_gettime(clockid_t clock, struct timespec *ts) {
    static clock_gettime_fn real = NULL;
    if (!real)
        real = (clock_gettime_fn)dlsym(RTLD_NEXT, "clock_gettime");
    return real(clock, ts);
}

static void shift(struct timespec *ts) {
    long long ns = (long long)ts->tv_sec * 1000000000LL + ts->tv_nsec + offset_ns();
    ts->tv_sec = (time_t)(ns / 1000000000LL);
    ts->tv_nsec = (long)(ns % 1000000000LL);
}

int clock_gettime(clockid_t clock, struct timespec *ts) {
    int rc = real_clock_gettime(clock, ts);
    if (rc == 0 && (clock == CLOCK_REALTIME || clock == CLOCK_REALTIME_COARSE))
        shift(ts);
    return rc;
}

int gettimeofday(struct timeval *restrict tv, void *restrict tz) {
    struct timespec ts;
    (void)tz;
    clock_gettime(CLOCK_REALTIME, &ts);
    tv->tv_sec = ts.tv_sec;
    tv->tv_usec = ts.tv_nsec / 1000;
    return 0;
}

time_t time(time_t *out) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    if (out)
        *out = ts.tv_sec;
    return ts.tv_sec;
}
