"""Repository rule exposing Debian's system libraries as cc_library targets.

The build is offline: every C++ dependency comes from a Debian -dev package
and is found with pkg-config. Each generated target carries the package
version in `defines`, so upgrading a library rebuilds its dependents after
`bazel sync --only=system` (or `bazel shutdown`).
"""

# Bazel target name -> (pkg-config modules, extra linkopts, Debian package).
_LIBS = {
    "gflags": (["gflags"], [], "libgflags-dev"),
    "glog": (["libglog"], [], "libgoogle-glog-dev"),
    "gtest": (["gtest"], [], "libgtest-dev"),
    "gtest_main": (["gtest_main"], [], "libgtest-dev"),
    "gmock": (["gmock"], [], "libgmock-dev"),
    "benchmark": (["benchmark"], [], "libbenchmark-dev"),
    # There is no benchmark_main.pc.
    "benchmark_main": (["benchmark"], ["-lbenchmark_main"], "libbenchmark-dev"),
    "json": (["nlohmann_json"], [], "nlohmann-json3-dev"),
    "microhttpd": (["libmicrohttpd"], [], "libmicrohttpd-dev"),
}

def _run(ctx, args):
    result = ctx.execute(args)
    if result.return_code != 0:
        fail("command failed: %s\n%s" % (" ".join(args), result.stderr))
    return result.stdout.strip()

def _pkg_version(ctx, package):
    result = ctx.execute(["dpkg-query", "-W", "-f=${Version}", package])
    if result.return_code != 0:
        fail("Debian package %s is missing; run ./bazelw, which installs it" % package)
    return result.stdout.strip()

def _define_name(name):
    return "GATEWAY_SYSTEM_" + name.upper() + "_VERSION"

def _target(name, linkopts, version, deps = []):
    return """
cc_library(
    name = "{name}",
    linkopts = {linkopts},
    defines = ["{define}=\\"{version}\\""],
    deps = {deps},
)
""".format(
        name = name,
        linkopts = repr(linkopts),
        define = _define_name(name),
        version = version.replace("~", "_").replace(":", "_"),
        deps = repr(deps),
    )

def _system_libs_impl(ctx):
    pkg_config = ctx.which("pkg-config")
    if not pkg_config:
        fail("pkg-config is missing; run ./bazelw, which installs it")
    build = ['package(default_visibility = ["//visibility:public"])\n']

    absl_modules = [
        line.split(" ")[0]
        for line in _run(ctx, [pkg_config, "--list-all"]).splitlines()
        if line.startswith("absl_")
    ]
    absl_libs = _run(ctx, [pkg_config, "--libs"] + sorted(absl_modules)).split(" ")
    build.append(_target(
        "absl",
        [l for l in absl_libs if l] + ["-latomic", "-lrt"],
        _pkg_version(ctx, "libabsl-dev"),
    ))

    for name, (modules, extra, package) in _LIBS.items():
        libs = _run(ctx, [pkg_config, "--libs"] + modules).split(" ")
        build.append(_target(
            name,
            [l for l in libs if l] + extra + ["-lpthread"],
            _pkg_version(ctx, package),
        ))

    ctx.file("BUILD.bazel", "\n".join(build))
    ctx.file("WORKSPACE", 'workspace(name = "%s")\n' % ctx.name)

system_libs = repository_rule(
    implementation = _system_libs_impl,
    local = True,
    environ = ["PKG_CONFIG_PATH"],
)
