#include "objstore/replication.h"

#include <prometheus/counter.h>

#include <algorithm>
#include <future>

#include "common/logging.h"
#include "common/metrics.h"

namespace needlefs {

std::string AddQueryParam(const std::string& target, const std::string& key,
                          const std::string& value) {
  return target + (target.find('?') == std::string::npos ? "?" : "&") + key + "=" + value;
}

StatusOr<std::vector<std::string>> ReplicaForwarder::Locations(VolumeId volume, bool refresh) {
  auto servers = locator_.Lookup(std::to_string(volume.value), refresh);
  if (!servers.ok()) return Status::Unavailable(servers.status().message());
  return servers;
}

Status ReplicaForwarder::Forward(VolumeId volume, int copies, const std::string& method,
                                 const std::string& target, const std::string& body,
                                 const HttpHeaders& headers, const std::vector<int>& ok_statuses) {
  static auto& failures = Metrics::Global().Counter("needlefs_volume_replication_failures_total",
                                                    "Replicated writes a replica did not take");
  for (int attempt = 0; attempt < 2; ++attempt) {
    NEEDLEFS_ASSIGN_OR_RETURN(auto urls, Locations(volume, attempt > 0));
    std::vector<std::string> others;
    for (const auto& u : urls) {
      if (u != self_) others.push_back(u);
    }
    if (static_cast<int>(others.size()) + 1 < copies) {
      if (attempt == 0) continue;  // maybe stale: ask the master again
      failures.Increment();
      return Status::FailedPrecondition("volume " + std::to_string(volume.value) + " has " +
                                        std::to_string(others.size() + 1) + " of " +
                                        std::to_string(copies) + " replicas; written here only");
    }
    const std::string fwd_target = AddQueryParam(target, "type", "replicate");
    auto send = [&](const std::string& url) -> std::string {
      auto r = pool_.Request(url, method, fwd_target, body, headers);
      if (!r.ok()) return url + ": " + r.status().ToString();
      if (std::find(ok_statuses.begin(), ok_statuses.end(), r->status) == ok_statuses.end()) {
        return url + ": HTTP " + std::to_string(r->status) + " " + r->body;
      }
      return "";
    };
    std::string errors;
    auto add = [&errors](const std::string& e) {
      if (!e.empty()) errors += (errors.empty() ? "" : "; ") + e;
    };
    if (others.size() == 1) {
      add(send(others[0]));  // the common case (001, 010, 100): no extra thread
    } else {
      std::vector<std::future<std::string>> results;
      for (const auto& url : others) results.push_back(std::async(std::launch::async, send, url));
      for (auto& f : results) add(f.get());
    }
    if (errors.empty()) return Status::OK();
    if (attempt == 0) continue;  // the replica set may have changed: refresh once
    failures.Increment();
    spdlog::error("volume.replication_failed volume={} method={} errors=\"{}\"", volume.value,
                  method, errors);
    return Status::Unavailable("replica write failed (volume " + std::to_string(volume.value) +
                               " needs repair): " + errors);
  }
  return Status::Internal("unreachable");
}

StatusOr<HttpClientResponse> ReplicaForwarder::FetchFromReplica(VolumeId volume,
                                                                const std::string& target,
                                                                const HttpHeaders& headers) {
  NEEDLEFS_ASSIGN_OR_RETURN(auto urls, Locations(volume, /*refresh=*/true));
  const std::string fwd_target = AddQueryParam(target, "type", "replicate");
  Status last = Status::NotFound("no other replica of volume " + std::to_string(volume.value));
  for (const auto& url : urls) {
    if (url == self_) continue;
    auto r = pool_.Request(url, "GET", fwd_target, {}, headers);
    if (r.ok() && r->status == 200) return r;
    last = r.ok() ? Status::NotFound(url + " answered " + std::to_string(r->status))
                  : r.status().WithContext(url);
  }
  return last;
}

}  // namespace needlefs
