#include "cluster/replica_ops.h"

#include "common/logging.h"
#include "volume_rpc/volume_admin_client.h"

namespace needlefs {

StatusOr<std::string> ReplicaOps::GrpcAddress(const std::string& node_id) const {
  auto info = topology_->GetNode(node_id);
  if (!info) return Status::NotFound("volume server " + node_id + " is not known");
  return node_id.substr(0, node_id.rfind(':')) + ":" + std::to_string(info->grpc_port);
}

StatusOr<ReplicaCopy> ReplicaOps::AddReplicaLocked(VolumeId id, const std::string& target,
                                                   const std::string& drop_from) {
  auto vol = topology_->GetVolume(id);
  if (!vol) return Status::NotFound("volume " + std::to_string(id.value) + " is not known");
  std::vector<std::string> holders;
  for (const auto& loc : topology_->Lookup(id)) holders.push_back(loc.node_id);
  if (holders.empty())
    return Status::NotFound("volume " + std::to_string(id.value) + " has no replica");
  // The source: the node being moved away from, else any holder.
  const std::string source = drop_from.empty() ? holders.front() : drop_from;
  ReplicaCopy result{id, source, target, "", 0};
  NEEDLEFS_ASSIGN_OR_RETURN(std::string source_grpc, GrpcAddress(source));
  NEEDLEFS_ASSIGN_OR_RETURN(std::string target_grpc, GrpcAddress(target));
  NEEDLEFS_ASSIGN_OR_RETURN(auto target_client, VolumeAdminClient::Create(target_grpc));

  // 1. Bulk copy while writes go on.
  NEEDLEFS_ASSIGN_OR_RETURN(auto bulk,
                            target_client->CopyVolume(id, vol->collection, source_grpc, false));
  result.bytes += bulk.bytes;

  // 2. Stop writes on every holder that takes them.
  std::vector<std::unique_ptr<VolumeAdminClient>> frozen;
  auto thaw = [&] {
    for (auto& c : frozen) {
      Status s = c->MarkReadonly(id, false);
      if (!s.ok() && s.code() != StatusCode::kNotFound) {
        spdlog::error("master.replica volume={} could not make a replica writable again: {}",
                      id.value, s.ToString());
      }
    }
  };
  for (const auto& h : holders) {
    auto addr = GrpcAddress(h);
    if (!addr.ok()) continue;
    auto c = VolumeAdminClient::Create(*addr);
    if (!c.ok()) continue;
    auto st = (*c)->VolumeStatus(id);
    if (!st.ok() || st->empty() || (*st)[0].read_only) continue;  // not ours to thaw
    Status s = (*c)->MarkReadonly(id, true);
    if (!s.ok()) {
      thaw();
      return s.WithContext("stop writes on " + h);
    }
    frozen.push_back(std::move(*c));
  }

  // 3. The rest, then the target serves it.
  auto fin = target_client->CopyVolume(id, vol->collection, source_grpc, true);
  if (!fin.ok()) {
    thaw();
    return fin.status();
  }
  result.bytes += fin->bytes;
  // Read-only on the target too when it was read-only everywhere.
  if (frozen.empty()) {
    Status s = target_client->MarkReadonly(id, true);
    if (!s.ok()) {
      spdlog::warn("master.replica volume={} target {}: {}", id.value, target, s.ToString());
    }
  }
  topology_->AddVolume(*vol, {target});

  // 4. A move drops the old replica before writes resume, so no writer can
  // reach a replica set without the new copy.
  if (!drop_from.empty()) {
    auto c = VolumeAdminClient::Create(source_grpc);
    Status s = c.ok() ? (*c)->DeleteVolume(id) : c.status();
    if (!s.ok()) {
      spdlog::error("master.replica volume={} copied to {} but not deleted on {}: {}", id.value,
                    target, drop_from, s.ToString());
    } else {
      topology_->RemoveVolumeFrom(drop_from, id);
      result.removed = drop_from;
    }
  }
  // 5. Writes resume.
  thaw();
  spdlog::info("master.replica volume={} source={} target={} removed={} bytes={}", id.value, source,
               target, result.removed, result.bytes);
  return result;
}

StatusOr<std::vector<ReplicaCopy>> ReplicaOps::Repair(VolumeId id) {
  std::lock_guard<std::mutex> l(mu_);
  std::vector<ReplicaCopy> done;
  for (;;) {
    auto vol = topology_->GetVolume(id);
    if (!vol) return Status::NotFound("volume " + std::to_string(id.value) + " is not known");
    if (static_cast<int>(topology_->Lookup(id).size()) >= vol->replica_placement.CopyCount()) {
      return done;
    }
    NEEDLEFS_ASSIGN_OR_RETURN(std::string target, topology_->PlaceReplica(id));
    NEEDLEFS_ASSIGN_OR_RETURN(ReplicaCopy c, AddReplicaLocked(id, target, ""));
    done.push_back(std::move(c));
  }
}

StatusOr<ReplicaCopy> ReplicaOps::Move(VolumeId id, const std::string& from,
                                       const std::string& to) {
  std::lock_guard<std::mutex> l(mu_);
  auto vol = topology_->GetVolume(id);
  if (!vol) return Status::NotFound("volume " + std::to_string(id.value) + " is not known");
  std::vector<ReplicaSite> sites;
  bool has_from = false;
  for (const auto& loc : topology_->Lookup(id)) {
    if (loc.node_id == to) {
      return Status::FailedPrecondition(to + " holds volume " + std::to_string(id.value) +
                                        " already");
    }
    if (loc.node_id == from) {
      has_from = true;
      continue;
    }
    sites.push_back({loc.data_center, loc.rack});
  }
  if (!has_from) {
    return Status::NotFound(from + " does not hold volume " + std::to_string(id.value));
  }
  auto to_info = topology_->GetNode(to);
  if (!to_info) return Status::NotFound("volume server " + to + " is not known");
  if (topology_->FreeSlots(to) <= 0) {
    return Status::FailedPrecondition(to + " has no free volume slot");
  }
  sites.push_back({to_info->data_center, to_info->rack});
  if (!PlacementFits(vol->replica_placement, sites, false)) {
    return Status::FailedPrecondition("moving volume " + std::to_string(id.value) + " to " + to +
                                      " breaks its placement " + vol->replica_placement.ToString());
  }
  return AddReplicaLocked(id, to, from);
}

}  // namespace needlefs
