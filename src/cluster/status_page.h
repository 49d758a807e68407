// The master's HTML status page (GET / on the master): servers by data
// center and rack with their slots and free disk space, every volume with
// its replicas and health, and a summary an operator reads at a glance.
// Plain HTML with inline CSS: no JavaScript.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "cluster/topology.h"

namespace needlefs {

/// What the page shows besides the topology.
struct StatusPageInfo {
  std::string leader;  ///< the master's "host:port"
  uint32_t max_volume_id = 0;
  std::string default_replication;
  uint64_t volume_size_limit_bytes = 0;
  int64_t now_ms = 0;  ///< master clock, to show each heartbeat's age
};

/// Renders the page. `under` is Topology::UnderReplicated(). Every string
/// from the topology is HTML-escaped.
std::string RenderStatusPage(const std::vector<NodeSnapshot>& nodes,
                             const std::map<VolumeId, std::vector<std::string>>& under,
                             const StatusPageInfo& info);

/// `s` with & < > " ' replaced by entities.
std::string HtmlEscape(const std::string& s);

}  // namespace needlefs
