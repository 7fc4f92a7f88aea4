// See process_roles.h.
#include "gateway/stop/process_roles.h"

namespace gateway {
namespace {

std::string Basename(const std::string& path) {
  size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

}  // namespace

bool IsSystemdUserManager(const ProcessInfo& process) {
  if (process.comm != "systemd") return false;
  for (const std::string& arg : process.cmdline) {
    if (arg == "--user") return true;
  }
  return false;
}

std::optional<std::string> KnownSupervisor(const ProcessInfo& process) {
  for (const char* known : {"s6-supervise", "runsv", "supervisord"}) {
    if (process.comm == known) return std::string(known);
  }
  for (size_t i = 0; i < process.cmdline.size() && i < 2; ++i) {
    if (Basename(process.cmdline[i]) == "supervisord") return std::string("supervisord");
  }
  return std::nullopt;
}

std::string SupervisorRestartCommand(const std::string& supervisor) {
  if (supervisor == "s6-supervise") return "s6-svc -r SERVICEDIR";
  if (supervisor == "runsv") return "sv restart SERVICEDIR";
  if (supervisor == "supervisord") return "supervisorctl restart PROGRAM";
  return "the supervisor's restart command";
}

bool IsInitShim(const std::string& comm) {
  for (const char* shim : {"tini", "dumb-init", "catatonit", "docker-init", "podman-init"}) {
    if (comm == shim) return true;
  }
  return false;
}

}  // namespace gateway
