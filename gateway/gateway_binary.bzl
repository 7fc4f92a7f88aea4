"""gateway_binary(): a gateway executable with extra detectors.

For deployments that add their own StopReasonDetector without editing this
repository. From another Bazel workspace that declares this one as
`local_repository(name = "gateway", ...)`:

    load("@gateway//detectors:detectors.bzl", "gateway_detector")
    load("@gateway//gateway:gateway_binary.bzl", "gateway_binary")

    gateway_detector(name = "my_detector", srcs = ["my_detector.cc"])
    gateway_binary(name = "my_gateway", detectors = [":my_detector"])

The binary is the real main() (//gateway:main) plus every built-in detector
(BUILTIN_DETECTORS) plus `detectors`. Labels are wrapped in Label() so they
resolve to this repository wherever the macro is used. Walkthrough:
docs/custom-detectors.md.
"""

load("//detectors:detectors.bzl", "BUILTIN_DETECTORS")

def gateway_binary(name, detectors = [], **kwargs):
    """A cc_binary of the gateway with the built-ins and `detectors`.

    Args:
      name: the binary's name.
      detectors: gateway_detector() targets to link in (alwayslink, so each
        registers itself); name them in --detectors= to use them.
      **kwargs: passed to cc_binary (visibility, tags, ...).
    """
    native.cc_binary(
        name = name,
        deps = [Label("//gateway:main")] + BUILTIN_DETECTORS + detectors,
        **kwargs
    )
