"""gateway_repositories(): the repositories a build of the gateway needs.

Used by this repository's WORKSPACE and by other workspaces that build
their own gateway with gateway_binary() (docs/custom-detectors.md):

    local_repository(name = "gateway", path = "/src/gateway")
    load("@gateway//gateway:repositories.bzl", "gateway_repositories")
    gateway_repositories(gateway_path = "/src/gateway")

Everything is local (offline build with Debian's Bazel 4): shims for
@rules_cc, @rules_java and @remote_coverage_tools from third_party/, and
@system, Debian's C++ libraries found with pkg-config.
"""

load("//third_party:system_libs.bzl", "system_libs")

def gateway_repositories(gateway_path = ""):
    """Declares @rules_cc, @rules_java, @remote_coverage_tools and @system.

    Args:
      gateway_path: where this repository is, as given to its
        local_repository(); empty in the gateway's own WORKSPACE.
    """
    prefix = gateway_path.rstrip("/") + "/" if gateway_path else ""
    for name in ["rules_cc", "rules_java", "remote_coverage_tools"]:
        native.local_repository(
            name = name,
            path = prefix + "third_party/" + name,
        )
    system_libs(name = "system")
