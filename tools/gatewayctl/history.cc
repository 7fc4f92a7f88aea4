// gatewayctl history: every stop on this state directory, oldest first, as
// a table or --json: stop records, unclean exits and stops whose record
// could not be written (as the next start found them), and, when nothing
// runs, the last run if it left no record yet. "Why did it restart five
// times last night?" in one command.
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "gateway/base/flags.h"
#include "gateway/stop/instance.h"
#include "gateway/base/json_util.h"
#include "gateway/stop/stop_record.h"
#include "gflags/gflags.h"
#include "tools/gatewayctl/commands.h"

DEFINE_string(since, "",
              "history: only entries from this long ago on (\"12h\", \"30m\") or since this time "
              "(RFC 3339, \"2026-12-06T22:00:00Z\")");

namespace gateway::ctl {
namespace {

// When the entry happened: a stop's exit, or when a start found a run
// that had left no record.
std::string EntryTime(const nlohmann::json& entry) {
  std::string exited = JsonString(entry, "exited_at");
  return exited.empty() ? JsonString(entry, "reported_at") : exited;
}

std::string Number(const nlohmann::json& entry, const char* name) {
  auto it = entry.find(name);
  return it != entry.end() && it->is_number_integer() ? absl::StrCat(it->get<int64_t>()) : "-";
}

std::string Drain(const nlohmann::json& entry) {
  auto drain = entry.find("drain");
  if (drain == entry.end() || !drain->is_object()) return "-";
  return absl::StrCat(Number(*drain, "connections_at_signal"), " open, ",
                      Number(*drain, "closed_at_deadline"), " cut, ",
                      Number(*drain, "duration_ms"), "ms");
}

std::string ClassColumn(const nlohmann::json& entry) {
  std::string kind = JsonString(entry, "kind");
  if (kind == "unclean_exit") return "unclean";
  std::string stop_class = JsonString(entry, "class");
  if (stop_class.empty()) stop_class = "?";
  return kind == "unrecorded_stop" ? stop_class + "*" : stop_class;
}

std::string Row(const nlohmann::json& entry) {
  std::string detector = JsonString(entry, "detector");
  std::string evidence = JsonString(entry, "evidence");
  if (JsonString(entry, "kind") == "unrecorded_stop") evidence = "* no record: " + evidence;
  if (JsonString(entry, "kind").size() > 0 && entry.contains("reported_by") &&
      entry["reported_by"].is_null()) {
    evidence += " (not yet reported by a start)";
  }
  return absl::StrFormat("%-24s %7s %-11s %-18s %4s %-22s %s\n", EntryTime(entry),
                         Number(entry, "pid"), ClassColumn(entry),
                         detector.empty() ? "-" : detector, Number(entry, "exit_code"),
                         Drain(entry), evidence);
}

}  // namespace

int HistoryCommand(const Invocation& inv) {
  std::optional<absl::Time> since;
  if (!FLAGS_since.empty()) {
    if (absl::StatusOr<absl::Duration> ago = ParseDurationFlag("since", FLAGS_since); ago.ok()) {
      since = absl::Now() - *ago;
    } else if (absl::StatusOr<absl::Time> at = ParseTime(FLAGS_since); at.ok()) {
      since = *at;
    } else {
      return Fail(inv, CommandError{kExitUsage,
                                    absl::StrCat("--since=", FLAGS_since,
                                                 ": want a duration (12h) or an RFC 3339 time")});
    }
  }
  absl::StatusOr<Located> located = Locate(inv.state_dir);
  if (!located.ok()) return Fail(inv, located.status());
  std::vector<nlohmann::json> entries = ReadStopHistory(*located->dir);
  // A last run that left no record and that no start has reported yet.
  PreviousRun last = InspectPreviousRun(*located->dir);
  if (last.exit == "unclean" || last.exit == "unrecorded") {
    entries.push_back(PreviousRunHistoryEntry(last, absl::Now(), std::nullopt));
  }
  nlohmann::json listed = nlohmann::json::array();
  std::string text = absl::StrFormat("%-24s %7s %-11s %-18s %4s %-22s %s\n", "TIME", "PID",
                                     "CLASS", "DETECTOR", "EXIT", "DRAIN", "EVIDENCE");
  for (const nlohmann::json& entry : entries) {
    if (since) {
      absl::StatusOr<absl::Time> at = ParseTime(EntryTime(entry));
      if (!at.ok() || *at < *since) continue;
    }
    listed.push_back(entry);
    text += Row(entry);
  }
  PrintResult(inv, {{"state_dir", located->dir->path()}, {"entries", listed}}, text);
  return kExitOk;
}

}  // namespace gateway::ctl
