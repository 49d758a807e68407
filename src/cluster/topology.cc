#include "cluster/topology.h"

#include <algorithm>
#include <random>

namespace needlefs {

void Topology::UpdateNode(const NodeInfo& node, const std::vector<VolumeReport>& volumes,
                          int64_t now_ms) {
  std::lock_guard<std::mutex> l(mu_);
  Node& n = nodes_[node.id];
  for (const auto& [vid, v] : n.volumes) {
    auto it = volume_nodes_.find(vid);
    if (it != volume_nodes_.end()) {
      it->second.erase(node.id);
      if (it->second.empty()) volume_nodes_.erase(it);
    }
  }
  n.info = node;
  if (n.info.public_url.empty()) n.info.public_url = node.id;
  n.volumes.clear();
  for (const auto& v : volumes) {
    n.volumes[v.id] = v;
    volume_nodes_[v.id].insert(node.id);
    max_file_key_ = std::max(max_file_key_, v.max_file_key);
  }
  n.last_seen_ms = now_ms;
}

bool Topology::ApplyDelta(const NodeInfo& node, const std::vector<VolumeReport>& changed,
                          const std::vector<VolumeId>& deleted, int64_t now_ms) {
  std::lock_guard<std::mutex> l(mu_);
  auto it = nodes_.find(node.id);
  if (it == nodes_.end()) return false;
  Node& n = it->second;
  n.info = node;
  if (n.info.public_url.empty()) n.info.public_url = node.id;
  for (VolumeId vid : deleted) {
    n.volumes.erase(vid);
    auto vn = volume_nodes_.find(vid);
    if (vn != volume_nodes_.end()) {
      vn->second.erase(node.id);
      if (vn->second.empty()) volume_nodes_.erase(vn);
    }
  }
  for (const auto& v : changed) {
    n.volumes[v.id] = v;
    volume_nodes_[v.id].insert(node.id);
    max_file_key_ = std::max(max_file_key_, v.max_file_key);
  }
  n.last_seen_ms = now_ms;
  return true;
}

bool Topology::RemoveNode(const std::string& node_id) {
  std::lock_guard<std::mutex> l(mu_);
  auto it = nodes_.find(node_id);
  if (it == nodes_.end()) return false;
  for (const auto& [vid, v] : it->second.volumes) {
    auto vn = volume_nodes_.find(vid);
    if (vn != volume_nodes_.end()) {
      vn->second.erase(node_id);
      if (vn->second.empty()) volume_nodes_.erase(vn);
    }
  }
  nodes_.erase(it);
  return true;
}

std::vector<std::string> Topology::RemoveDeadNodes(int64_t now_ms, int64_t timeout_ms) {
  std::vector<std::string> dead;
  {
    std::lock_guard<std::mutex> l(mu_);
    for (const auto& [id, n] : nodes_) {
      if (now_ms - n.last_seen_ms > timeout_ms) dead.push_back(id);
    }
  }
  for (const auto& id : dead) RemoveNode(id);
  return dead;
}

std::vector<const Topology::Node*> Topology::HoldersLocked(VolumeId id) const {
  std::vector<const Node*> out;
  auto it = volume_nodes_.find(id);
  if (it == volume_nodes_.end()) return out;
  for (const auto& node_id : it->second) {
    auto n = nodes_.find(node_id);
    if (n != nodes_.end()) out.push_back(&n->second);
  }
  return out;
}

std::vector<VolumeLocation> Topology::Lookup(VolumeId id) const {
  std::lock_guard<std::mutex> l(mu_);
  std::vector<VolumeLocation> out;
  for (const Node* n : HoldersLocked(id)) {
    out.push_back(
        {n->info.id, n->info.public_url, n->info.grpc_port, n->info.data_center, n->info.rack});
  }
  return out;
}

bool Topology::WritableLocked(const VolumeReport& v, size_t copies) const {
  return !v.read_only && v.size_bytes < volume_size_limit_bytes_ &&
         copies >= static_cast<size_t>(v.replica_placement.CopyCount());
}

std::vector<VolumeId> Topology::WritableVolumesLocked(const LayoutKey& layout) const {
  std::vector<VolumeId> out;
  for (const auto& [vid, holders] : volume_nodes_) {
    auto holder_list = HoldersLocked(vid);
    bool writable = !holder_list.empty();
    for (const Node* h : holder_list) {
      const VolumeReport& v = h->volumes.at(vid);
      writable = writable && WritableLocked(v, holder_list.size()) &&
                 v.collection == layout.collection &&
                 v.replica_placement.ToByte() == layout.replica_placement && v.ttl == layout.ttl;
    }
    if (writable) out.push_back(vid);
  }
  return out;
}

std::optional<VolumeId> Topology::PickWritable(const LayoutKey& layout,
                                               const std::string& data_center,
                                               const std::string& rack) const {
  std::lock_guard<std::mutex> l(mu_);
  std::vector<VolumeId> candidates = WritableVolumesLocked(layout);
  if (!data_center.empty() || !rack.empty()) {
    std::erase_if(candidates, [&](VolumeId vid) {
      for (const Node* n : HoldersLocked(vid)) {
        if ((data_center.empty() || n->info.data_center == data_center) &&
            (rack.empty() || n->info.rack == rack)) {
          return false;
        }
      }
      return true;
    });
  }
  if (candidates.empty()) return std::nullopt;
  static thread_local std::minstd_rand rng(std::random_device{}());
  return candidates[rng() % candidates.size()];
}

size_t Topology::WritableCount(const LayoutKey& layout) const {
  std::lock_guard<std::mutex> l(mu_);
  return WritableVolumesLocked(layout).size();
}

StatusOr<std::vector<std::string>> Topology::PlaceVolume(const ReplicaPlacement& rp,
                                                         const std::string& data_center,
                                                         const std::string& rack) const {
  std::lock_guard<std::mutex> l(mu_);
  // Free nodes by data center and rack, emptiest first.
  std::map<std::string, std::map<std::string, std::vector<const Node*>>> free;
  for (const auto& [id, n] : nodes_) {
    if (n.free() > 0) free[n.info.data_center][n.info.rack].push_back(&n);
  }
  auto emptiest_first = [](const Node* a, const Node* b) {
    return a->free() != b->free() ? a->free() > b->free() : a->info.id < b->info.id;
  };
  auto slots = [](const std::vector<const Node*>& v) {
    int s = 0;
    for (const Node* n : v) s += n->free();
    return s;
  };
  for (auto& [dc, racks] : free) {
    for (auto& [r, nodes] : racks) std::sort(nodes.begin(), nodes.end(), emptiest_first);
  }
  const std::string code = rp.ToString();
  if (static_cast<int>(free.size()) < 1 + rp.diff_dc) {
    return Status::FailedPrecondition(
        "replication " + code + " needs " + std::to_string(1 + rp.diff_dc) +
        " data centers with free volume slots; the cluster has " + std::to_string(free.size()));
  }
  // The main data center: enough racks, one of them with enough nodes.
  struct Choice {
    std::string dc, rack;
    int score = -1;
  } best;
  std::string why;
  for (const auto& [dc, racks] : free) {
    if (!data_center.empty() && dc != data_center) continue;
    if (static_cast<int>(racks.size()) < 1 + rp.diff_rack) {
      why = "data center " + dc + " has " + std::to_string(racks.size()) +
            " racks with free slots, replication " + code + " needs " +
            std::to_string(1 + rp.diff_rack);
      continue;
    }
    for (const auto& [r, nodes] : racks) {
      if (!rack.empty() && r != rack) continue;
      if (static_cast<int>(nodes.size()) < 1 + rp.same_rack) {
        why = "rack " + dc + "/" + r + " has " + std::to_string(nodes.size()) +
              " servers with free slots, replication " + code + " needs " +
              std::to_string(1 + rp.same_rack);
        continue;
      }
      int score = 0;
      for (const auto& [r2, n2] : racks) score += slots(n2);
      score = score * 1000 + slots(nodes);
      if (score > best.score) best = {dc, r, score};
    }
  }
  if (best.score < 0) {
    if (why.empty()) {
      why = "no server with a free slot matches data center '" + data_center + "' rack '" + rack +
            "'";
    }
    return Status::FailedPrecondition("cannot place a volume with replication " + code + ": " +
                                      why);
  }
  std::vector<std::string> out;
  const auto& main_rack_nodes = free[best.dc][best.rack];
  for (int i = 0; i <= rp.same_rack; ++i)
    out.push_back(main_rack_nodes[static_cast<size_t>(i)]->info.id);
  // Other racks of the main data center: the emptiest, one node each.
  std::vector<std::pair<int, std::string>> other_racks;
  for (const auto& [r, nodes] : free[best.dc]) {
    if (r != best.rack) other_racks.emplace_back(-slots(nodes), r);
  }
  std::sort(other_racks.begin(), other_racks.end());
  for (int i = 0; i < rp.diff_rack; ++i) {
    out.push_back(free[best.dc][other_racks[static_cast<size_t>(i)].second].front()->info.id);
  }
  // Other data centers: the emptiest, their emptiest node.
  std::vector<std::pair<int, std::string>> other_dcs;
  for (const auto& [dc, racks] : free) {
    if (dc == best.dc) continue;
    int s = 0;
    for (const auto& [r, nodes] : racks) s += slots(nodes);
    other_dcs.emplace_back(-s, dc);
  }
  std::sort(other_dcs.begin(), other_dcs.end());
  for (int i = 0; i < rp.diff_dc; ++i) {
    const Node* pick = nullptr;
    for (const auto& [r, nodes] : free[other_dcs[static_cast<size_t>(i)].second]) {
      if (!pick || emptiest_first(nodes.front(), pick)) pick = nodes.front();
    }
    out.push_back(pick->info.id);
  }
  return out;
}

void Topology::AddVolume(const VolumeReport& v, const std::vector<std::string>& node_ids) {
  std::lock_guard<std::mutex> l(mu_);
  for (const auto& id : node_ids) {
    auto n = nodes_.find(id);
    if (n == nodes_.end()) continue;
    n->second.volumes[v.id] = v;
    volume_nodes_[v.id].insert(id);
  }
}

bool PlacementFits(const ReplicaPlacement& rp, const std::vector<ReplicaSite>& sites, bool exact) {
  if (sites.empty()) return !exact;
  for (const ReplicaSite& main : sites) {
    int same_rack = -1;  // the main copy itself is counted here
    std::set<std::string> other_racks, other_dcs;
    int in_other_racks = 0, in_other_dcs = 0;
    for (const ReplicaSite& s : sites) {
      if (s.data_center != main.data_center) {
        ++in_other_dcs;
        other_dcs.insert(s.data_center);
      } else if (s.rack != main.rack) {
        ++in_other_racks;
        other_racks.insert(s.rack);
      } else {
        ++same_rack;
      }
    }
    // Each extra copy in another data center (rack) is in a different one.
    if (static_cast<int>(other_dcs.size()) != in_other_dcs) continue;
    if (static_cast<int>(other_racks.size()) != in_other_racks) continue;
    const bool fits = exact ? (in_other_dcs == rp.diff_dc && in_other_racks == rp.diff_rack &&
                               same_rack == rp.same_rack)
                            : (in_other_dcs <= rp.diff_dc && in_other_racks <= rp.diff_rack &&
                               same_rack <= rp.same_rack);
    if (fits) return true;
  }
  return false;
}

std::optional<VolumeReport> Topology::GetVolume(VolumeId id) const {
  std::lock_guard<std::mutex> l(mu_);
  auto holders = HoldersLocked(id);
  if (holders.empty()) return std::nullopt;
  return holders.front()->volumes.at(id);
}

StatusOr<std::string> Topology::PlaceReplica(VolumeId id) const {
  std::lock_guard<std::mutex> l(mu_);
  auto holders = HoldersLocked(id);
  if (holders.empty()) return Status::NotFound("volume " + std::to_string(id.value));
  const ReplicaPlacement rp = holders.front()->volumes.at(id).replica_placement;
  std::vector<ReplicaSite> sites;
  for (const Node* n : holders) sites.push_back({n->info.data_center, n->info.rack});
  const Node* best = nullptr;
  for (const auto& [node_id, n] : nodes_) {
    if (n.free() <= 0 || n.volumes.count(id)) continue;
    sites.push_back({n.info.data_center, n.info.rack});
    const bool fits = PlacementFits(rp, sites, false);
    sites.pop_back();
    if (fits && (!best || n.free() > best->free())) best = &n;
  }
  if (!best) {
    return Status::FailedPrecondition(
        "no volume server with a free slot fits one more replica of volume " +
        std::to_string(id.value) + " (replication " + rp.ToString() + ", " +
        std::to_string(holders.size()) + " of " + std::to_string(rp.CopyCount()) +
        " replicas left)");
  }
  return best->info.id;
}

void Topology::RemoveVolumeFrom(const std::string& node_id, VolumeId id) {
  std::lock_guard<std::mutex> l(mu_);
  auto it = nodes_.find(node_id);
  if (it != nodes_.end()) it->second.volumes.erase(id);
  auto vn = volume_nodes_.find(id);
  if (vn != volume_nodes_.end()) {
    vn->second.erase(node_id);
    if (vn->second.empty()) volume_nodes_.erase(vn);
  }
}

std::vector<ReplicaMove> Topology::PlanBalance(size_t max_moves) const {
  std::lock_guard<std::mutex> l(mu_);
  // A scratch copy: node -> volumes held, updated as moves are planned.
  std::map<std::string, std::set<VolumeId>> held;
  std::map<std::string, const Node*> node_of;
  for (const auto& [id, n] : nodes_) {
    node_of[id] = &n;
    for (const auto& [vid, v] : n.volumes) held[id].insert(vid);
    held[id];  // nodes without volumes take part too
  }
  std::map<VolumeId, ReplicaPlacement> rps;
  for (const auto& [id, n] : nodes_) {
    for (const auto& [vid, v] : n.volumes) rps[vid] = v.replica_placement;
  }
  std::vector<ReplicaMove> moves;
  // A volume on `from` that may move to `to` (nullopt when none).
  auto movable = [&](const std::string& from, const std::string& to) -> std::optional<VolumeId> {
    for (VolumeId vid : held[from]) {
      if (held[to].count(vid)) continue;
      std::vector<ReplicaSite> sites;
      for (const auto& [id, vols] : held) {
        if (id == from || !vols.count(vid)) continue;
        sites.push_back({node_of[id]->info.data_center, node_of[id]->info.rack});
      }
      sites.push_back({node_of[to]->info.data_center, node_of[to]->info.rack});
      const ReplicaPlacement& rp = rps[vid];
      if (static_cast<int>(sites.size()) == rp.CopyCount() && PlacementFits(rp, sites, true)) {
        return vid;
      }
    }
    return std::nullopt;
  };
  while (moves.size() < max_moves) {
    // The fullest node that can give a volume to a node with at least two
    // fewer (and a free slot), emptiest receiver first. Counts, not bytes,
    // as SeaweedFS balances.
    std::vector<std::string> order;
    for (const auto& [id, vols] : held) order.push_back(id);
    std::stable_sort(order.begin(), order.end(), [&](const std::string& x, const std::string& y) {
      return held[x].size() > held[y].size();
    });
    bool moved = false;
    for (size_t i = 0; i < order.size() && !moved; ++i) {
      for (size_t j = order.size(); j-- > i + 1 && !moved;) {
        const std::string& from = order[i];
        const std::string& to = order[j];
        if (held[from].size() <= held[to].size() + 1) continue;
        if (node_of[to]->info.max_volumes <= static_cast<int>(held[to].size())) continue;
        if (auto vid = movable(from, to)) {
          moves.push_back({*vid, from, to});
          held[from].erase(*vid);
          held[to].insert(*vid);
          moved = true;
        }
      }
    }
    if (!moved) break;
  }
  return moves;
}

std::map<VolumeId, std::vector<std::string>> Topology::UnderReplicated() const {
  std::lock_guard<std::mutex> l(mu_);
  std::map<VolumeId, std::vector<std::string>> out;
  for (const auto& [vid, holders] : volume_nodes_) {
    auto holder_list = HoldersLocked(vid);
    if (holder_list.empty()) continue;
    const VolumeReport& v = holder_list.front()->volumes.at(vid);
    if (static_cast<int>(holder_list.size()) < v.replica_placement.CopyCount()) {
      out[vid] = std::vector<std::string>(holders.begin(), holders.end());
    }
  }
  return out;
}

size_t Topology::VolumeCount() const {
  std::lock_guard<std::mutex> l(mu_);
  return volume_nodes_.size();
}

uint64_t Topology::MaxFileKey() const {
  std::lock_guard<std::mutex> l(mu_);
  return max_file_key_;
}

VolumeId Topology::MaxVolumeId() const {
  std::lock_guard<std::mutex> l(mu_);
  return volume_nodes_.empty() ? VolumeId(0) : volume_nodes_.rbegin()->first;
}

std::map<std::string, std::map<std::string, std::vector<std::string>>> Topology::Tree() const {
  std::lock_guard<std::mutex> l(mu_);
  std::map<std::string, std::map<std::string, std::vector<std::string>>> out;
  for (const auto& [id, n] : nodes_) out[n.info.data_center][n.info.rack].push_back(id);
  return out;
}

size_t Topology::NodeCount() const {
  std::lock_guard<std::mutex> l(mu_);
  return nodes_.size();
}

std::vector<NodeSnapshot> Topology::Snapshot() const {
  std::lock_guard<std::mutex> l(mu_);
  std::vector<NodeSnapshot> out;
  for (const auto& [id, n] : nodes_) {
    NodeSnapshot s{n.info, {}, n.last_seen_ms};
    for (const auto& [vid, v] : n.volumes) s.volumes.push_back(v);
    out.push_back(std::move(s));
  }
  std::sort(out.begin(), out.end(), [](const NodeSnapshot& a, const NodeSnapshot& b) {
    return std::tie(a.info.data_center, a.info.rack, a.info.id) <
           std::tie(b.info.data_center, b.info.rack, b.info.id);
  });
  return out;
}

std::optional<NodeInfo> Topology::GetNode(const std::string& node_id) const {
  std::lock_guard<std::mutex> l(mu_);
  auto it = nodes_.find(node_id);
  if (it == nodes_.end()) return std::nullopt;
  return it->second.info;
}

int Topology::FreeSlots(const std::string& node_id) const {
  std::lock_guard<std::mutex> l(mu_);
  auto it = nodes_.find(node_id);
  return it == nodes_.end() ? -1 : it->second.free();
}

}  // namespace needlefs
