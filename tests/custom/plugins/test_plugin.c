/* A detector plugin that misbehaves in one chosen way (see BUILD.bazel),
 * for the tests of gateway/plugins/plugin_loader.cc. Apart from the defect it is a
 * well-formed plugin that has no opinion. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "gateway/plugins/plugin_abi.h"

#if defined(TEST_PLUGIN_CRASH_ON_PROBE) || defined(TEST_PLUGIN_CRASH_ON_STOP)
/* A wild pointer, not NULL: UBSan's null check would turn a NULL load
 * into its own report and exit 1, and the tests want a real SIGSEGV.
 * Only the crashing behaviours define it (warnings are errors). */
/* The pointer itself is volatile, so the compiler cannot see its value
 * and warn (-Warray-bounds at -O2) about the deliberate bad read. */
static volatile int32_t* volatile kWildPointer = (volatile int32_t*)(uintptr_t)16;
#endif

static int32_t Detect(const struct gateway_stop_context* ctx, char* evidence,
                      size_t evidence_size) {
  int real_stop = ctx->signo != 0; /* signo 0: the start-up probe */
  (void)real_stop;
#if defined(TEST_PLUGIN_GARBAGE_CLASS)
  return 42;
#elif defined(TEST_PLUGIN_UNTERMINATED_EVIDENCE)
  memset(evidence, 'x', evidence_size);
  return GATEWAY_STOP_PLANNED;
#elif defined(TEST_PLUGIN_CRASH_ON_PROBE)
  return *kWildPointer;
#elif defined(TEST_PLUGIN_CRASH_ON_STOP)
  if (real_stop) return *kWildPointer;
#elif defined(TEST_PLUGIN_HANG_ON_STOP)
  while (real_stop) pause();
#endif
  (void)evidence;
  (void)evidence_size;
  return GATEWAY_STOP_NONE;
}

#if defined(TEST_PLUGIN_WRONG_ABI)
#define ABI_VERSION 99
#else
#define ABI_VERSION GATEWAY_DETECTOR_PLUGIN_ABI_VERSION
#endif

#if defined(TEST_PLUGIN_EMPTY_NAME)
#define NAME ""
#elif defined(TEST_PLUGIN_BUILTIN_NAME)
#define NAME "systemd"
#else
#define NAME "misbehaving"
#endif

static const struct gateway_detector_plugin kPlugin = {ABI_VERSION, NAME, Detect};

#if defined(TEST_PLUGIN_NO_ENTRY)
const struct gateway_detector_plugin* some_other_symbol(void) { return &kPlugin; }
#else
const struct gateway_detector_plugin* gateway_detector_plugin_v1(void) { return &kPlugin; }
#endif
