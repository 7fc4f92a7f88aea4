// See podman_testing.h.
#include "tests/supervisors/podman_testing.h"

#include <unistd.h>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace gateway::testing {

std::optional<std::string> PodmanSkipReason() {
  if (getuid() != 0) return "needs root for rootful podman";
  if (auto missing = MissingProgram({"podman", "runc", "conmon"})) {
    return *missing + " is not installed (./bazelw installs it)";
  }
  RunResult probe =
      Sh(absl::StrCat(kPodman, " run --rm --network=none ", kPodmanUlimits, " --rootfs /:O /bin/true"),
         absl::Seconds(60));
  if (probe.status.code != 0) {
    return "podman cannot run a container here: " +
           std::string(absl::StripAsciiWhitespace(probe.err));
  }
  return std::nullopt;
}

std::optional<std::string> BuildGatewayImage(const ScratchDir& dir, const std::string& tag) {
  std::string tree = dir.path() + "/image";
  // The binary and what the dynamic linker needs, at the same paths.
  RunResult built = Sh(absl::StrCat(
      "set -e; T=", ShellQuote(tree), "; mkdir -p $T/bin $T/tmp $T/proc $T/dev $T/etc; cp ",
      ShellQuote(dir.gateway()), " $T/bin/gateway; ",
      "for lib in $(ldd $T/bin/gateway | grep -o '/[^ ]*'); do mkdir -p $T$(dirname $lib); ",
      "cp -L $lib $T$lib; done; tar -C $T -cf ", ShellQuote(dir.path() + "/rootfs.tar"), " .; ",
      kPodman, " import --change 'ENTRYPOINT [\"/bin/gateway\"]' ",
      ShellQuote(dir.path() + "/rootfs.tar"), " ", ShellQuote(tag), " >/dev/null"),
      absl::Seconds(120));
  if (built.status.code != 0) {
    return absl::StrCat("building the image ", tag, " failed: ",
                        absl::StripAsciiWhitespace(built.err));
  }
  return std::nullopt;
}

std::string WritePodContainersConf(const ScratchDir& dir) {
  dir.WriteFile("containers.conf",
                "[containers]\ndefault_ulimits = [\"nofile=4096:4096\", \"nproc=2000:2000\"]\n");
  return dir.path() + "/containers.conf";
}

}  // namespace gateway::testing
