/* The C ABI of runtime detector plugins (--detector_plugin=/path/libx.so).
 *
 * For deployments that cannot rebuild the gateway. A plugin is a shared
 * library, written in any language that can export a C function, that
 * needs nothing from the gateway at link time: it includes only this header.
 * It exports
 *
 *     const struct gateway_detector_plugin* gateway_detector_plugin_v1(void);
 *
 * returning a descriptor that lives as long as the library. The gateway
 * checks it at start-up (abi_version, name, a probe call of detect) and
 * refuses a plugin that fails any check with one line and exit 78.
 *
 * detect() is called in a forked child of the gateway, with a timeout
 * (--detector_plugin_timeout): a plugin that crashes or hangs costs its own
 * opinion, never the stop record. So detect() cannot keep state across
 * calls, and must not rely on threads or locks of the gateway process.
 * It must only read the context: everything a detector may use is in it.
 *
 * Versioning: a change to these structs gets a new entry symbol
 * (gateway_detector_plugin_v2) and GATEWAY_DETECTOR_PLUGIN_ABI_VERSION; the
 * gateway refuses descriptors whose abi_version it does not know.
 * Walkthrough and example: docs/custom-detectors.md.
 */
#ifndef GATEWAY_PLUGINS_PLUGIN_ABI_H_
#define GATEWAY_PLUGINS_PLUGIN_ABI_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define GATEWAY_DETECTOR_PLUGIN_ABI_VERSION 1
#define GATEWAY_DETECTOR_PLUGIN_ENTRY "gateway_detector_plugin_v1"

/* What detect() returns: no opinion, or the class of the stop. */
enum gateway_stop_class {
  GATEWAY_STOP_NONE = 0,
  GATEWAY_STOP_TAKEOVER = 1,
  GATEWAY_STOP_PLANNED = 2,
  GATEWAY_STOP_UNEXPECTED = 3
};

/* Where the gateway was in its life when the signal was read. */
enum gateway_phase {
  GATEWAY_PHASE_STARTING = 0,
  GATEWAY_PHASE_SERVING = 1,
  GATEWAY_PHASE_DRAINING = 2
};

/* A C view of the StopContext (gateway/stop/stop_context.h). Strings are
 * NUL-terminated and never NULL ("" when unknown); all of it is valid only
 * during the detect() call. */
struct gateway_stop_context {
  uint32_t abi_version; /* GATEWAY_DETECTOR_PLUGIN_ABI_VERSION */

  /* The signal as siginfo_t reported it. signo is 0 for the start-up probe. */
  int32_t signo;
  int32_t si_code;  /* SI_USER for kill(2), SI_KERNEL for a terminal */
  int32_t sender_pid; /* 0: from outside our PID namespace */
  uint32_t sender_uid;
  int32_t sender_readable; /* 1 when /proc showed the sender */
  const char* sender_comm; /* "kill", "systemd" */

  /* This process: pid + start time (clock ticks after boot) + boot id. */
  int32_t self_pid;
  int32_t self_ppid;
  uint64_t self_start_time_ticks;
  const char* self_boot_id;
  uint32_t self_uid;

  /* Our parent (self_ppid) as /proc showed it when the signal was read. */
  const char* parent_comm;

  int32_t phase; /* enum gateway_phase */
  int64_t now_unix_ms; /* the clock when the signal was read */
  /* 1 for the start-up probe and for `gatewayctl explain`: decide, but
   * change nothing outside the process. */
  int32_t dry_run;

  /* The value of an environment variable as captured at start-up, or NULL
   * when it was not set. Call as ctx->getenv(ctx, "INVOCATION_ID"). */
  const char* (*getenv)(const struct gateway_stop_context* ctx, const char* name);
  const void* gateway_private; /* for getenv; do not touch */
};

/* Writes at most evidence_size bytes, NUL-terminated, of human-readable
 * evidence ("deploy lock /run/deploy.lock held by pid 42") when it returns
 * a class other than GATEWAY_STOP_NONE. Returns an enum gateway_stop_class;
 * any other value, or evidence without a terminating NUL, is refused. */
typedef int32_t (*gateway_detect_fn)(const struct gateway_stop_context* ctx,
                                     char* evidence, size_t evidence_size);

struct gateway_detector_plugin {
  uint32_t abi_version; /* GATEWAY_DETECTOR_PLUGIN_ABI_VERSION */
  /* The detector's name in --detectors and in records: 1-64 characters
   * from a-z, 0-9, '_' and '-', unique among all detectors. */
  const char* name;
  gateway_detect_fn detect;
};

typedef const struct gateway_detector_plugin* (*gateway_detector_plugin_entry_fn)(void);

/* The entry symbol a plugin exports. */
const struct gateway_detector_plugin* gateway_detector_plugin_v1(void);

#ifdef __cplusplus
}
#endif

#endif /* GATEWAY_PLUGINS_PLUGIN_ABI_H_ */
