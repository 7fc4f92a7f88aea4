// What a process is, judged from /proc evidence: a systemd user manager, a
// process supervisor, a container init shim. Shared by the detectors that
// decide stops and by the replacement logic that refuses to run where a
// supervisor cannot follow a new main pid.
#ifndef GATEWAY_STOP_PROCESS_ROLES_H_
#define GATEWAY_STOP_PROCESS_ROLES_H_

#include <optional>
#include <string>

#include "gateway/base/proc.h"

namespace gateway {

// comm "systemd" started with --user.
bool IsSystemdUserManager(const ProcessInfo& process);

// "s6-supervise", "runsv" or "supervisord" (supervisord also when run by an
// interpreter, `python3 /usr/bin/supervisord`); nullopt otherwise.
std::optional<std::string> KnownSupervisor(const ProcessInfo& process);

// How to restart a service under that supervisor instead of replacing it.
std::string SupervisorRestartCommand(const std::string& supervisor);

// tini, dumb-init, catatonit and their renamed forms docker-init and
// podman-init.
bool IsInitShim(const std::string& comm);

}  // namespace gateway

#endif  // GATEWAY_STOP_PROCESS_ROLES_H_
