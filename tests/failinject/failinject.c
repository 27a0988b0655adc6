/* SPDX-License-Identifier: MIT */
/*
 * Allocation failure injection for tests. Interposes the allocator entry
 * points libtroupe calls (jemalloc's mallocx, and malloc, calloc, realloc,
 * aligned_alloc, posix_memalign) and fails some of the calls made from
 * inside libtroupe itself; calls from anywhere else (the tests, Check,
 * libc, jemalloc) always succeed. Two ways to use it:
 *
 *  - preloaded (LD_PRELOAD=.libs/libfailinject.so), configured by the
 *    environment: TROUPE_FI_EVERY=N fails every Nth allocation of the
 *    library (0 or unset: none), TROUPE_FI_AFTER=K lets the first K
 *    through, TROUPE_FI_SEED=S (nonzero) fails each one with probability
 *    1/N instead, from a generator seeded with S, and TROUPE_FI_LIMIT=L
 *    stops after L failures;
 *  - linked into a test program, which arms it around the code under test
 *    with failinject_set() and reads failinject_failed().
 *
 * The library keeps small blocks it frees on per-thread free lists, which
 * are only used when jemalloc's size classes answer as expected (its load
 * time probe, nallocx): this file answers that probe with 0, so every
 * allocation reaches an entry point above and can fail.
 *
 * A crash (SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT) is reported on
 * stderr with a backtrace and whether the innermost frame outside libc
 * lies in libtroupe ("failinject: crash in libtroupe") or elsewhere
 * ("failinject: crash outside libtroupe"), then the signal is raised again
 * (tests/failinject/run.sh counts the first kind).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <execinfo.h>
#include <link.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "failinject.h"

/* Under a sanitizer, whose runtime owns the allocator and calls it before
 * this file's code could run, only the control calls are built and
 * report the injector inactive. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define FI_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define FI_SANITIZED 1
#endif
#endif

#ifdef FI_SANITIZED
void failinject_set(uint64_t every, uint64_t after, uint64_t limit) {
  (void)every;
  (void)after;
  (void)limit;
}
uint64_t failinject_failed(void) { return 0; }
int failinject_active(void) { return 0; }
#else

/* The build hides symbols by default; these must interpose. */
#define FI_EXPORT __attribute__((visibility("default")))

/* ---- configuration --------------------------------------------------- */

static _Atomic uint64_t fi_every;   /* 0: off */
static _Atomic uint64_t fi_after;
static _Atomic uint64_t fi_seed;
static _Atomic uint64_t fi_count;   /* library allocations seen */
static _Atomic uint64_t fi_failed;  /* and failed */
static _Atomic uint64_t fi_limit;   /* fail no more than this (0: no limit) */
static _Atomic int fi_configured;

static uint64_t env_u64(const char *name) {
  const char *v = getenv(name); /* getenv allocates nothing */
  return v ? strtoull(v, NULL, 0) : 0;
}

static void configure(void) {
  if (atomic_load_explicit(&fi_configured, memory_order_acquire)) return;
  atomic_store(&fi_every, env_u64("TROUPE_FI_EVERY"));
  atomic_store(&fi_after, env_u64("TROUPE_FI_AFTER"));
  atomic_store(&fi_seed, env_u64("TROUPE_FI_SEED"));
  atomic_store(&fi_limit, env_u64("TROUPE_FI_LIMIT"));
  atomic_store_explicit(&fi_configured, 1, memory_order_release);
}

FI_EXPORT void failinject_set(uint64_t every, uint64_t after, uint64_t limit) {
  configure();
  atomic_store(&fi_every, 0);
  atomic_store(&fi_seed, 0);
  atomic_store(&fi_after, after);
  atomic_store(&fi_limit, limit);
  atomic_store(&fi_count, 0);
  atomic_store(&fi_failed, 0);
  atomic_store(&fi_every, every);
}

FI_EXPORT uint64_t failinject_failed(void) { return atomic_load(&fi_failed); }

FI_EXPORT int failinject_active(void) { return 1; }

/* ---- where the library is ---------------------------------------------- */

static _Atomic uintptr_t lib_lo, lib_hi;
static _Atomic int lib_found; /* 0 not looked, 1 found, 2 not loaded */

static int find_lib(struct dl_phdr_info *info, size_t size, void *arg) {
  (void)size;
  int *first = arg;
  const char *name = info->dlpi_name;
  /* the library, or the program itself when it was linked in statically
   * (the first object; taken unless the shared library turns up) */
  int is_lib = name && strstr(name, "libtroupe") != NULL;
  if (!is_lib && !*first) return 0;
  *first = 0;
  uintptr_t lo = UINTPTR_MAX, hi = 0;
  for (int i = 0; i < info->dlpi_phnum; i++) {
    const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
    if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_X)) continue;
    uintptr_t s = info->dlpi_addr + ph->p_vaddr;
    if (s < lo) lo = s;
    if (s + ph->p_memsz > hi) hi = s + ph->p_memsz;
  }
  atomic_store(&lib_lo, lo);
  atomic_store(&lib_hi, hi);
  return is_lib;
}

static int in_lib(uintptr_t pc) {
  static _Thread_local int looking;
  if (!atomic_load_explicit(&lib_found, memory_order_acquire)) {
    /* the loader may allocate while we look: those calls pass */
    if (looking) return 0;
    looking = 1;
    int first = 1;
    int r = dl_iterate_phdr(find_lib, &first);
    /* no shared libtroupe: the program is the library only if it holds
     * it (a shell running a test's wrapper script does not) */
    if (!r && !dlsym(RTLD_DEFAULT, "tr_version")) {
      atomic_store(&lib_lo, 0);
      atomic_store(&lib_hi, 0);
    }
    atomic_store_explicit(&lib_found, r ? 1 : 2, memory_order_release);
    looking = 0;
  }
  return pc >= atomic_load_explicit(&lib_lo, memory_order_relaxed) &&
         pc < atomic_load_explicit(&lib_hi, memory_order_relaxed);
}

/* ---- the decision ---------------------------------------------------------- */

static int should_fail(void *caller) {
  configure();
  uint64_t every = atomic_load_explicit(&fi_every, memory_order_relaxed);
  if (!every || !in_lib((uintptr_t)caller)) return 0;
  uint64_t n = atomic_fetch_add(&fi_count, 1) + 1;
  uint64_t after = atomic_load_explicit(&fi_after, memory_order_relaxed);
  if (n <= after) return 0;
  int fail;
  uint64_t seed = atomic_load_explicit(&fi_seed, memory_order_relaxed);
  if (seed) {
    /* splitmix64 of (seed, n): the same run fails the same calls */
    uint64_t z = seed + n * 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    fail = z % every == 0;
  } else {
    fail = (n - after) % every == 0;
  }
  if (!fail) return 0;
  uint64_t limit = atomic_load_explicit(&fi_limit, memory_order_relaxed);
  uint64_t f = atomic_load(&fi_failed);
  do {
    if (limit && f >= limit) return 0;
  } while (!atomic_compare_exchange_weak(&fi_failed, &f, f + 1));
  return 1;
}

/* ---- the entry points ------------------------------------------------------ */

#define REAL(ret, name, params)                                              \
  static ret(*real_##name) params;                                           \
  static ret(*get_##name(void)) params {                                     \
    if (!real_##name) real_##name = (ret(*) params)dlsym(RTLD_NEXT, #name);  \
    return real_##name;                                                      \
  }

REAL(void *, malloc, (size_t))
REAL(void *, calloc, (size_t, size_t))
REAL(void *, realloc, (void *, size_t))
REAL(void *, aligned_alloc, (size_t, size_t))
REAL(int, posix_memalign, (void **, size_t, size_t))
REAL(void *, mallocx, (size_t, int))

/* dlsym may allocate while it resolves the first of them: those calls are
 * served from here and never freed (a few bytes, once). */
static _Thread_local int resolving;
static char boot[4096] __attribute__((aligned(16)));
static _Atomic size_t boot_used;

static void *boot_alloc(size_t n) {
  n = (n + 15) & ~(size_t)15;
  size_t at = atomic_fetch_add(&boot_used, n);
  if (at + n > sizeof(boot)) return NULL;
  return boot + at; /* static storage: already zero */
}

#define RESOLVE(name)                                                        \
  do {                                                                       \
    if (!real_##name) {                                                      \
      if (resolving) return boot_alloc(BOOT_SIZE);                           \
      resolving = 1;                                                         \
      (void)get_##name();                                                    \
      resolving = 0;                                                         \
    }                                                                        \
  } while (0)

FI_EXPORT void *malloc(size_t n) {
#define BOOT_SIZE n
  RESOLVE(malloc);
  if (should_fail(__builtin_return_address(0))) return NULL;
  return real_malloc(n);
}

FI_EXPORT void *calloc(size_t k, size_t n) {
#undef BOOT_SIZE
#define BOOT_SIZE (k * n)
  RESOLVE(calloc);
  if (should_fail(__builtin_return_address(0))) return NULL;
  return real_calloc(k, n);
}

FI_EXPORT void *realloc(void *p, size_t n) {
  if (!real_realloc) {
    if (resolving) return NULL;
    resolving = 1;
    (void)get_realloc();
    resolving = 0;
  }
  if (n && should_fail(__builtin_return_address(0))) return NULL;
  return real_realloc(p, n);
}

FI_EXPORT void *aligned_alloc(size_t al, size_t n) {
#undef BOOT_SIZE
#define BOOT_SIZE n
  RESOLVE(aligned_alloc);
  if (should_fail(__builtin_return_address(0))) return NULL;
  return real_aligned_alloc(al, n);
}

FI_EXPORT int posix_memalign(void **out, size_t al, size_t n) {
  if (!real_posix_memalign) {
    if (resolving) return 12; /* ENOMEM */
    resolving = 1;
    (void)get_posix_memalign();
    resolving = 0;
  }
  if (should_fail(__builtin_return_address(0))) return 12; /* ENOMEM */
  return real_posix_memalign(out, al, n);
}

/* jemalloc's non-standard entry points: only when the process has them. */
FI_EXPORT void *mallocx(size_t n, int flags);
FI_EXPORT size_t nallocx(size_t n, int flags);
FI_EXPORT void *mallocx(size_t n, int flags) {
#undef BOOT_SIZE
#define BOOT_SIZE n
  RESOLVE(mallocx);
  if (!real_mallocx) return NULL;
  if (should_fail(__builtin_return_address(0))) return NULL;
  return real_mallocx(n, flags);
}

/* The library's free lists stay off (see the top). */
FI_EXPORT size_t nallocx(size_t n, int flags) {
  (void)n;
  (void)flags;
  return 0;
}

/* ---- crash reports ------------------------------------------------------------ */

static int in_libc(uintptr_t pc) {
  Dl_info di;
  if (!dladdr((void *)pc, &di) || !di.dli_fname) return 0;
  return strstr(di.dli_fname, "libc.so") || strstr(di.dli_fname, "libpthread") ||
         strstr(di.dli_fname, "failinject");
}

static void on_crash(int sig, siginfo_t *si, void *uc) {
  (void)si;
  (void)uc;
  void *pcs[64];
  int n = backtrace(pcs, 64);
  /* frame 0 is this handler, 1 the signal trampoline in libc */
  int where = 0; /* 1: the library, 2: elsewhere */
  for (int i = 1; i < n && !where; i++) {
    uintptr_t pc = (uintptr_t)pcs[i];
    if (in_libc(pc)) continue;
    where = in_lib(pc) ? 1 : 2;
  }
  char line[128];
  int len = snprintf(line, sizeof(line), "failinject: crash %s libtroupe: signal %d\n",
                     where == 1 ? "in" : "outside", sig);
  if (len > 0) (void)!write(2, line, (size_t)len);
  backtrace_symbols_fd(pcs, n, 2);
  signal(sig, SIG_DFL);
  raise(sig);
}

__attribute__((constructor)) static void failinject_init(void) {
  configure();
  if (getenv("TROUPE_FI_NO_HANDLER")) return;
  void *warm[2];
  (void)backtrace(warm, 2); /* loads the unwinder now, not in a handler */
  static const int sigs[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT};
  for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = on_crash;
    sa.sa_flags = SA_SIGINFO | SA_RESETHAND;
    sigaction(sigs[i], &sa, NULL);
  }
}
#endif
