// Serialising stop records; see stop_record.h.
#include "gateway/stop_record.h"

#include "gateway/json_util.h"

namespace gateway {

nlohmann::ordered_json StopRecordToJson(const StopRecord& r) {
  nlohmann::ordered_json sender = {{"pid", r.signal.sender_pid}, {"uid", r.signal.sender_uid}};
  sender["comm"] = r.sender_comm.empty() ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(r.sender_comm);
  nlohmann::ordered_json previous = {{"exit", r.previous.exit}};
  previous["pid"] = r.previous.pid ? nlohmann::ordered_json(*r.previous.pid) : nlohmann::ordered_json(nullptr);
  previous["class"] = r.previous.stop_class.empty() ? nlohmann::ordered_json(nullptr)
                                                    : nlohmann::ordered_json(r.previous.stop_class);
  nlohmann::ordered_json j = {
      {"version", 1},
      {"class", std::string(StopClassName(r.verdict.stop_class))},
      {"detector", r.verdict.detector.empty() ? nlohmann::ordered_json(nullptr)
                                              : nlohmann::ordered_json(r.verdict.detector)},
      {"evidence", r.verdict.evidence},
      {"signal", SignalName(r.signal.signo)},
      {"si_code", r.signal.code},
      {"sender", sender},
      {"exit_code", r.exit_code},
      {"pid", r.self.pid},
      {"start_time", r.self.start_time_ticks},
      {"boot_id", r.self.boot_id},
      {"phase", std::string(PhaseName(r.phase))},
      {"started_at", FormatRfc3339(r.started_at)},
      {"signal_at", FormatRfc3339(r.signal_at)},
      {"exited_at", FormatRfc3339(r.exited_at)},
      {"drain",
       {{"connections_at_signal", r.drain.connections_at_signal},
        {"closed_at_deadline", r.drain.closed_at_deadline},
        {"skipped", r.drain.skipped.empty() ? nlohmann::ordered_json(nullptr)
                                            : nlohmann::ordered_json(r.drain.skipped)},
        {"duration_ms", absl::ToInt64Milliseconds(r.drain.duration)}}},
      {"signals_received", r.signals_received},
      {"previous_exit", r.previous.exit},
      {"previous_run", previous},
      {"detectors", r.chain},
      {"ignored_markers", r.ignored_markers},
  };
  return j;
}

}  // namespace gateway
