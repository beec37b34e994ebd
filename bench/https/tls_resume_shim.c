/*
 * LD_PRELOAD shim for wrk (bench/https): wrk reuses one OpenSSL SSL object per connection
 * slot and SSL_clear() keeps the last session, so with `Connection: close` every reconnect
 * would offer session resumption, and a server that accepts it skips the certificate
 * signature. With VIGIL_BENCH_RESUME=0 the shim drops that session after each SSL_clear(),
 * so every connection is a full handshake against any server; with VIGIL_BENCH_RESUME=1 it
 * leaves wrk alone. Either way it counts finished handshakes and resumed ones and prints
 * them to stderr at exit, so the bench can check what actually happened on the wire.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

typedef struct ssl_st SSL;
typedef struct ssl_session_st SSL_SESSION;
extern int SSL_set_session(SSL *s, SSL_SESSION *session);
extern SSL_SESSION *SSL_get_session(const SSL *s);
extern int SSL_session_reused(const SSL *s);
extern int SSL_is_init_finished(const SSL *s);

static atomic_long handshakes, resumed;

int SSL_clear(SSL *s) {
    static int (*real)(SSL *);
    if (!real) real = (int (*)(SSL *))dlsym(RTLD_NEXT, "SSL_clear");
    if (SSL_get_session(s) != NULL && SSL_is_init_finished(s)) {
        atomic_fetch_add(&handshakes, 1);
        if (SSL_session_reused(s)) atomic_fetch_add(&resumed, 1);
    }
    int r = real(s);
    const char *keep = getenv("VIGIL_BENCH_RESUME");
    if (!(keep && keep[0] == '1')) SSL_set_session(s, NULL);
    return r;
}

__attribute__((destructor)) static void report(void) {
    fprintf(stderr, "tls-shim: %ld handshakes completed, %ld resumed\n",
            atomic_load(&handshakes), atomic_load(&resumed));
}
