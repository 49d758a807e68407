#include "volume_rpc/volume_locator.h"

#include <nlohmann/json.hpp>

namespace needlefs {

StatusOr<std::vector<std::string>> VolumeLocator::Lookup(const std::string& vid, bool refresh) {
  NEEDLEFS_ASSIGN_OR_RETURN(auto replicas, LookupReplicas(vid, refresh));
  std::vector<std::string> urls;
  for (auto& r : replicas) urls.push_back(std::move(r.url));
  return urls;
}

StatusOr<std::vector<VolumeLocator::Replica>> VolumeLocator::LookupReplicas(const std::string& vid,
                                                                            bool refresh) {
  {
    std::lock_guard<std::mutex> l(mu_);
    auto it = cache_.find(vid);
    if (!refresh && it != cache_.end() && std::chrono::steady_clock::now() - it->second.at < ttl_) {
      return it->second.servers;
    }
  }
  auto r = pool_->Request(master_, "GET", "/dir/lookup?volumeId=" + vid);
  if (!r.ok()) return r.status().WithContext("master lookup");
  if (r->status == 404) return Status::NotFound("volume " + vid + " not found");
  auto j = nlohmann::json::parse(r->body, nullptr, false);
  if (r->status != 200 || !j.is_object() || !j["locations"].is_array()) {
    return Status::Unavailable("master lookup of volume " + vid + " answered " +
                               std::to_string(r->status) + ": " + r->body);
  }
  std::vector<Replica> servers;
  for (const auto& loc : j["locations"]) {
    if (loc.is_object()) servers.push_back({loc.value("url", ""), loc.value("grpcUrl", "")});
  }
  std::lock_guard<std::mutex> l(mu_);
  cache_[vid] = Cached{servers, std::chrono::steady_clock::now()};
  return servers;
}

}  // namespace needlefs
