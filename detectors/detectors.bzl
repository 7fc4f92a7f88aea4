"""Build macros for StopReasonDetector plugins, and the list of built-ins.

A detector is a cc_library whose .cc registers itself with
GATEWAY_REGISTER_DETECTOR. gateway_detector() sets alwayslink, so the static
registration survives into every binary that links the library; without it,
a statically linked cc_binary silently drops the detector.
"""

# The detectors compiled into //gateway by default. The default chain
# (DefaultDetectorOrder in gateway/stop/detector_registry.cc) is the start of this
# list, in this order; a detector appended after it is compiled in but runs
# only when named in --detectors. //tests/custom:compiled_in_detector_test
# checks both. Optional detectors such as //detectors/maintenance_window are
# not here: link them with gateway_binary(detectors = [...])
# (gateway/gateway_binary.bzl), or append them here to ship them in //gateway.
BUILTIN_DETECTORS = [
    Label("//detectors/takeover_marker"),
    Label("//detectors/planned_stop_file"),
    Label("//detectors/systemd"),
    Label("//detectors/container_pid1"),
    Label("//detectors/supervisor"),
    Label("//detectors/interactive"),
]

def gateway_detector(name, srcs, hdrs = [], deps = [], visibility = None, **kwargs):
    """A detector plugin library.

    Args:
      name: target name; by convention the package's last path component.
      srcs: sources, one of which uses GATEWAY_REGISTER_DETECTOR.
      hdrs: optional headers (for tests that construct the detector).
      deps: further dependencies; the detector API is added.
      visibility: defaults to public, so binaries anywhere can link it.
      **kwargs: passed to cc_library.
    """
    native.cc_library(
        name = name,
        srcs = srcs,
        hdrs = hdrs,
        deps = deps + [Label("//gateway/stop:detector_api")],
        alwayslink = True,
        visibility = visibility or ["//visibility:public"],
        **kwargs
    )

def gateway_detector_test(name, srcs, detector, deps = [], **kwargs):
    """A unit test of a detector on fabricated contexts."""
    native.cc_test(
        name = name,
        srcs = srcs,
        deps = deps + [
            detector,
            Label("//gateway/stop:detector_api"),
            Label("//gateway/stop:testing"),
            Label("@system//:gtest_main"),
        ],
        **kwargs
    )
