#include "cluster/master_state.h"

#include <nlohmann/json.hpp>
#include <random>

#include "common/file.h"

namespace needlefs {
namespace {

class FileStateStorage final : public StateStorage {
 public:
  explicit FileStateStorage(std::string path) : path_(std::move(path)) {}
  StatusOr<std::string> Load() override {
    auto s = ReadFileToString(path_);
    if (!s.ok() && s.status().IsNotFound()) return std::string();
    return s;
  }
  Status Save(const std::string& blob) override { return WriteFileAtomic(path_, blob); }

 private:
  std::string path_;
};

}  // namespace

std::unique_ptr<StateStorage> NewFileStateStorage(const std::string& path) {
  return std::make_unique<FileStateStorage>(path);
}

StatusOr<std::unique_ptr<MasterState>> MasterState::Open(std::unique_ptr<StateStorage> storage,
                                                         uint64_t key_batch) {
  if (key_batch == 0) return Status::InvalidArgument("key batch must be positive");
  NEEDLEFS_ASSIGN_OR_RETURN(std::string blob, storage->Load());
  std::unique_ptr<MasterState> st(new MasterState(std::move(storage), key_batch));
  if (!blob.empty()) {
    auto j = nlohmann::json::parse(blob, nullptr, /*allow_exceptions=*/false);
    if (!j.is_object() || !j["key_ceiling"].is_number_unsigned() ||
        !j["max_volume_id"].is_number_unsigned()) {
      return Status::Corruption("master state is not the expected JSON: " + blob.substr(0, 200));
    }
    st->key_ceiling_ = j["key_ceiling"].get<uint64_t>();
    st->next_key_ = st->key_ceiling_;  // keys below may have been handed out
    st->max_volume_id_ = j["max_volume_id"].get<uint32_t>();
    if (j["cluster_id"].is_number_unsigned()) st->cluster_id_ = j["cluster_id"].get<uint64_t>();
  }
  if (st->cluster_id_ == 0) {  // first start (or a state from before cluster ids)
    std::random_device rd;
    while (st->cluster_id_ == 0) st->cluster_id_ = (uint64_t{rd()} << 32) | rd();
    // Saved now when possible; otherwise with the next state change (a
    // master that cannot save hands nothing out anyway).
    std::lock_guard<std::mutex> l(st->mu_);
    st->SaveLocked().IgnoreError();
  }
  return st;
}

Status MasterState::SaveLocked() {
  nlohmann::json j{{"key_ceiling", key_ceiling_},
                   {"max_volume_id", max_volume_id_},
                   {"cluster_id", cluster_id_}};
  return storage_->Save(j.dump());
}

StatusOr<uint64_t> MasterState::NextFileKeys(uint64_t count, uint64_t seen_max) {
  if (count == 0) return Status::InvalidArgument("count must be positive");
  std::lock_guard<std::mutex> l(mu_);
  // A client may PUT any key straight to a volume server: a key this high
  // did not come from a master and would wrap the sequence. Ignore it.
  if (seen_max >= next_key_ && seen_max < kMaxTrustedFileKey) {
    next_key_ = seen_max + 1;
    if (key_ceiling_ < next_key_) key_ceiling_ = next_key_;  // saved below, before use
  }
  if (next_key_ + count > key_ceiling_) {
    const uint64_t old = key_ceiling_;
    key_ceiling_ = next_key_ + std::max(count, key_batch_);
    Status s = SaveLocked();
    if (!s.ok()) {
      key_ceiling_ = old;
      return s;
    }
  }
  uint64_t first = next_key_;
  next_key_ += count;
  return first;
}

StatusOr<VolumeId> MasterState::NextVolumeId(VolumeId seen_max) {
  std::lock_guard<std::mutex> l(mu_);
  const uint32_t old = max_volume_id_;
  max_volume_id_ = std::max(max_volume_id_, seen_max.value) + 1;
  Status s = SaveLocked();
  if (!s.ok()) {
    max_volume_id_ = old;
    return s;
  }
  return VolumeId(max_volume_id_);
}

VolumeId MasterState::max_volume_id() const {
  std::lock_guard<std::mutex> l(mu_);
  return VolumeId(max_volume_id_);
}

}  // namespace needlefs
