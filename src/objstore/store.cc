#include "objstore/store.h"

#include <filesystem>

#include "common/file.h"
#include "common/logging.h"

namespace needlefs {

namespace fs = std::filesystem;

namespace {
/// Subdirectory of the staging copies of volumes being copied in.
constexpr const char* kIncomingDir = ".incoming";
}  // namespace

VolumeOptions Store::MakeVolumeOptions(VolumeId id, const std::string& collection) const {
  VolumeOptions o;
  o.dir = options_.dir;
  o.id = id;
  o.collection = collection;
  o.index_mode = options_.index_mode;
  o.durability = options_.durability;
  o.size_limit_bytes = options_.volume_size_limit_bytes;
  return o;
}

StatusOr<std::unique_ptr<Store>> Store::Open(const StoreOptions& options) {
  if (options.dir.empty()) return Status::InvalidArgument("store dir is empty");
  if (options.max_volumes < 0) return Status::InvalidArgument("max volumes is negative");
  std::error_code ec;
  fs::create_directories(options.dir, ec);
  if (ec) return Status::IOError("create " + options.dir, ec.value());
  std::unique_ptr<Store> store(new Store(options));
  fs::remove_all(fs::path(options.dir) / kIncomingDir, ec);  // copies cut short by a crash
  for (const auto& entry : fs::directory_iterator(options.dir, ec)) {
    if (entry.path().extension() != ".dat") continue;
    std::string stem = entry.path().stem().string();
    std::string collection;
    size_t us = stem.rfind('_');
    std::string id_str = stem;
    if (us != std::string::npos) {
      collection = stem.substr(0, us);
      id_str = stem.substr(us + 1);
    }
    if (id_str.empty() || id_str.find_first_not_of("0123456789") != std::string::npos ||
        id_str.size() > 10) {
      continue;
    }
    uint64_t id = std::stoull(id_str);
    if (id == 0 || id > 0xFFFFFFFFull) continue;
    VolumeId vid(static_cast<uint32_t>(id));
    auto v = Volume::Open(store->MakeVolumeOptions(vid, collection), /*create=*/false);
    if (!v.ok()) {
      spdlog::error("store.load_failed file={} error=\"{}\"", entry.path().string(),
                    v.status().ToString());
      store->failed_.push_back(entry.path().string() + ": " + v.status().ToString());
      continue;
    }
    store->volumes_[vid] = std::shared_ptr<Volume>(std::move(v).value());
  }
  if (ec) return Status::IOError("list " + options.dir, ec.value());
  spdlog::info("store.open dir={} volumes={} max={}", options.dir, store->volumes_.size(),
               options.max_volumes);
  return store;
}

Store::~Store() { SyncAll().IgnoreError(); }

Status Store::AllocateVolume(VolumeId id, const std::string& collection, ReplicaPlacement placement,
                             uint16_t ttl) {
  if (id.value == 0) return Status::InvalidArgument("volume id 0 is reserved");
  if (collection.find_first_of("/_ \\") != std::string::npos) {
    return Status::InvalidArgument("collection names may not contain '/', '_', '\\' or spaces");
  }
  std::lock_guard<std::mutex> l(mu_);
  auto it = volumes_.find(id);
  if (it != volumes_.end()) {
    if (it->second->collection() == collection) return Status::OK();
    return Status::AlreadyExists("volume " + std::to_string(id.value) + " exists in collection '" +
                                 it->second->collection() + "'");
  }
  if (static_cast<int>(volumes_.size()) >= options_.max_volumes) {
    return Status::ResourceExhausted("no free volume slot (max " +
                                     std::to_string(options_.max_volumes) + ")");
  }
  VolumeOptions o = MakeVolumeOptions(id, collection);
  o.replica_placement = placement;
  o.ttl = ttl;
  NEEDLEFS_ASSIGN_OR_RETURN(auto v, Volume::Open(o, /*create=*/true));
  volumes_[id] = std::shared_ptr<Volume>(std::move(v));
  return Status::OK();
}

StatusOr<std::unique_ptr<Volume>> Store::OpenIncoming(VolumeId id, const std::string& collection,
                                                      ReplicaPlacement placement, uint16_t ttl) {
  {
    std::lock_guard<std::mutex> l(mu_);
    if (volumes_.count(id)) {
      return Status::AlreadyExists("volume " + std::to_string(id.value) + " is already here");
    }
    if (static_cast<int>(volumes_.size()) >= options_.max_volumes) {
      return Status::ResourceExhausted("no free volume slot (max " +
                                       std::to_string(options_.max_volumes) + ")");
    }
  }
  VolumeOptions o = MakeVolumeOptions(id, collection);
  o.dir = (fs::path(options_.dir) / kIncomingDir).string();
  o.replica_placement = placement;
  o.ttl = ttl;
  std::error_code ec;
  fs::create_directories(o.dir, ec);
  if (ec) return Status::IOError("create " + o.dir, ec.value());
  return Volume::Open(o, /*create=*/true);
}

Status Store::ImportIncoming(VolumeId id, const std::string& collection) {
  const fs::path incoming = fs::path(options_.dir) / kIncomingDir;
  // The file names of a volume: "<prefix>.dat", ".idx", ".vif", ".ldb".
  const std::string prefix =
      (collection.empty() ? "" : collection + "_") + std::to_string(id.value) + ".";
  std::lock_guard<std::mutex> l(mu_);
  if (volumes_.count(id)) {
    return Status::AlreadyExists("volume " + std::to_string(id.value) + " is already here");
  }
  if (static_cast<int>(volumes_.size()) >= options_.max_volumes) {
    return Status::ResourceExhausted("no free volume slot (max " +
                                     std::to_string(options_.max_volumes) + ")");
  }
  std::error_code ec;
  if (!fs::exists(incoming / (prefix + "dat"), ec)) {
    return Status::NotFound("no staging copy of volume " + std::to_string(id.value));
  }
  // The data file last: until it is in place, a crash leaves nothing the
  // store would load (the staging directory is cleared at open).
  for (const char* ext : {"idx", "vif", "ldb", "dat"}) {
    const fs::path from = incoming / (prefix + ext);
    if (!fs::exists(from, ec)) continue;
    fs::rename(from, fs::path(options_.dir) / (prefix + ext), ec);
    if (ec) return Status::IOError("move " + from.string(), ec.value());
  }
  NEEDLEFS_RETURN_IF_ERROR(SyncDir(options_.dir));
  NEEDLEFS_ASSIGN_OR_RETURN(auto v, Volume::Open(MakeVolumeOptions(id, collection), false));
  volumes_[id] = std::shared_ptr<Volume>(std::move(v));
  spdlog::info("store.import volume={} collection={}", id.value, collection);
  return Status::OK();
}

void Store::DropIncoming(VolumeId id, const std::string& collection) {
  const fs::path incoming = fs::path(options_.dir) / kIncomingDir;
  const std::string prefix =
      (collection.empty() ? "" : collection + "_") + std::to_string(id.value) + ".";
  std::error_code ec;
  for (const char* ext : {"dat", "idx", "vif", "ldb"})
    fs::remove_all(incoming / (prefix + ext), ec);
}

std::shared_ptr<Volume> Store::GetVolume(VolumeId id) const {
  std::lock_guard<std::mutex> l(mu_);
  auto it = volumes_.find(id);
  return it == volumes_.end() ? nullptr : it->second;
}

Status Store::DeleteVolume(VolumeId id) {
  std::shared_ptr<Volume> v;
  {
    std::lock_guard<std::mutex> l(mu_);
    auto it = volumes_.find(id);
    if (it == volumes_.end()) return Status::NotFound("volume " + std::to_string(id.value));
    v = it->second;
    volumes_.erase(it);
  }
  return v->Destroy();
}

std::vector<std::shared_ptr<Volume>> Store::Volumes() const {
  std::vector<std::shared_ptr<Volume>> vols;
  {
    std::lock_guard<std::mutex> l(mu_);
    for (const auto& [id, v] : volumes_) vols.push_back(v);
  }
  return vols;
}

std::vector<VolumeStats> Store::Stats() const {
  std::vector<VolumeStats> out;
  for (const auto& v : Volumes()) out.push_back(v->Stats());
  return out;
}

int Store::FreeSlots() const {
  std::lock_guard<std::mutex> l(mu_);
  return options_.max_volumes - static_cast<int>(volumes_.size());
}

std::vector<std::string> Store::FailedVolumes() const {
  std::lock_guard<std::mutex> l(mu_);
  return failed_;
}

Status Store::SyncUnstable() {
  Status first;
  for (const auto& v : Volumes()) {
    if (!v->HasUnstableAppends()) continue;
    Status s = v->SyncAppends();
    if (!s.ok() && first.ok()) first = s;
  }
  return first;
}

Status Store::SyncAll() {
  Status first;
  for (const auto& v : Volumes()) {
    Status s = v->Sync();
    if (!s.ok() && first.ok()) first = s;
  }
  return first;
}

}  // namespace needlefs
