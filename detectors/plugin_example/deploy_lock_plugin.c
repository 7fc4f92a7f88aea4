/* deploy_lock: a runtime detector plugin (C ABI, gateway/plugins/plugin_abi.h).
 *
 * Deploy tools often hold a lock file while they restart services. A stop
 * signal that arrives while the file named by GATEWAY_DEPLOY_LOCK (in the
 * environment captured at start-up) exists is planned: the deploy is
 * restarting us. Without the variable, or without the file, it has no
 * opinion. One stat() of a local path: cheap and non-blocking.
 *
 * Build: cc -shared -fPIC -I<gateway repo> deploy_lock_plugin.c -o libdeploy_lock_plugin.so
 */
#include <signal.h>
#include <stdio.h>
#include <sys/stat.h>

#include "gateway/plugins/plugin_abi.h"

static int32_t DetectDeployLock(const struct gateway_stop_context* ctx, char* evidence,
                                size_t evidence_size) {
  const char* lock = ctx->getenv(ctx, "GATEWAY_DEPLOY_LOCK");
  struct stat st;
  if (lock == NULL || lock[0] == '\0' || stat(lock, &st) != 0) return GATEWAY_STOP_NONE;
  if (ctx->signo == 0) return GATEWAY_STOP_NONE; /* the start-up probe: no signal */
  snprintf(evidence, evidence_size, "signal %d from pid %d (%s) while the deploy lock %s exists",
           ctx->signo, ctx->sender_pid, ctx->sender_comm[0] ? ctx->sender_comm : "?", lock);
  return GATEWAY_STOP_PLANNED;
}

static const struct gateway_detector_plugin kDeployLock = {
    GATEWAY_DETECTOR_PLUGIN_ABI_VERSION,
    "deploy_lock",
    DetectDeployLock,
};

const struct gateway_detector_plugin* gateway_detector_plugin_v1(void) { return &kDeployLock; }
