// Defaults for the sanitizer runtimes, compiled into every binary of the
// project (gateway, gatewayctl, tests, benchmarks) through //gateway:base.
// They live in the binary rather than in TSAN_OPTIONS so that a gateway
// started by a real supervisor (systemd in a container, podman, s6, ...)
// under --config=tsan gets them too: those supervisors do not pass the
// test's environment on. Plain builds compile this file to nothing.
//
// Every suppression names one report that was analysed and found to be
// outside this project's code; docs/reliability.md has the list and why.

#if defined(__SANITIZE_THREAD__)

extern "C" const char* __tsan_default_suppressions() {
  return
      // glibc's tzset_internal() frees and re-allocates its copy of TZ
      // under glibc's private tzset_lock, which TSan cannot see. glog calls
      // it from every thread that logs (LogMessageTime::CalcGmtOffset ->
      // localtime_r), so the main and signal threads appear to race.
      "race:tzset_internal\n";
}

#endif
