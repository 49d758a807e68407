#include "client/disk_cache.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <system_error>
#include <tuple>
#include <vector>

#include "common/crc32c.h"
#include "common/endian.h"
#include "common/file.h"
#include "common/logging.h"

namespace needlefs {
namespace {

constexpr std::string_view kTmpPrefix = ".tmp-";

/// Disk space a cached blob of `data` bytes takes: its file (data and
/// checksum) in whole 4 KiB blocks, so a cap full of tiny blobs is still a
/// cap on the disk.
uint64_t Footprint(uint64_t data) { return (data + 4 + 4095) / 4096 * 4096; }

/// True when `name` is a temporary file of a process that is gone (another
/// mount sharing the directory may be writing its own).
bool StaleTmp(const std::string& name) {
  const size_t dash = name.find('-', kTmpPrefix.size());
  if (dash == std::string::npos) return true;
  const std::string pid = name.substr(kTmpPrefix.size(), dash - kTmpPrefix.size());
  if (pid.empty() || pid.size() > 9 || pid.find_first_not_of("0123456789") != std::string::npos) {
    return true;
  }
  return ::kill(static_cast<pid_t>(std::stol(pid)), 0) != 0 && errno == ESRCH;
}

bool CacheableId(const std::string& fid) {
  if (fid.empty() || fid.size() > 128) return false;
  return std::all_of(fid.begin(), fid.end(), [](char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == ',' ||
           c == '_' || c == '-';
  });
}

}  // namespace

DiskCache::DiskCache(std::string dir, uint64_t cap_bytes) : dir_(std::move(dir)), cap_(cap_bytes) {}

StatusOr<std::unique_ptr<DiskCache>> DiskCache::Open(const std::string& dir, uint64_t cap_bytes) {
  if (cap_bytes == 0) return Status::InvalidArgument("disk cache: the size cap must be > 0");
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return Status::IOError("disk cache " + dir, ec.value());
  std::unique_ptr<DiskCache> c(new DiskCache(dir, cap_bytes));
  // (mtime, file id, data bytes) of what is there, oldest first.
  std::vector<std::tuple<int64_t, std::string, uint64_t>> found;
  for (std::filesystem::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.rfind(kTmpPrefix, 0) == 0) {
      if (StaleTmp(name)) ::unlink(it->path().c_str());  // an interrupted Put
      continue;
    }
    struct stat st;
    if (!CacheableId(name) || ::stat(it->path().c_str(), &st) != 0 || !S_ISREG(st.st_mode) ||
        st.st_size < 4) {
      continue;
    }
    const int64_t mtime_ns = int64_t{st.st_mtim.tv_sec} * 1'000'000'000 + st.st_mtim.tv_nsec;
    found.emplace_back(mtime_ns, name, static_cast<uint64_t>(st.st_size) - 4);
  }
  if (ec) return Status::IOError("disk cache " + dir, ec.value());
  std::sort(found.begin(), found.end());
  std::lock_guard<std::mutex> g(c->mu_);
  for (auto& [mtime, fid, size] : found) {
    c->lru_.emplace_front(fid, size);
    c->index_[fid] = c->lru_.begin();
    c->bytes_ += Footprint(size);
  }
  c->EvictLocked();
  return c;
}

std::string DiskCache::PathOf(const std::string& file_id) const { return dir_ + "/" + file_id; }

std::optional<std::string> DiskCache::Get(const std::string& file_id) {
  uint64_t size = 0;
  {
    std::lock_guard<std::mutex> g(mu_);
    auto it = index_.find(file_id);
    if (it == index_.end()) return std::nullopt;
    lru_.splice(lru_.begin(), lru_, it->second);
    size = it->second->second;
  }
  const std::string path = PathOf(file_id);
  auto file = ReadFileToString(path);
  const bool good = file.ok() && file->size() == size + 4 &&
                    DecodeFixed32(file->data() + size) == Crc32c(file->data(), size);
  if (!good) {
    spdlog::warn("client.disk_cache_bad file_id={} path={}: removed", file_id, path);
    std::lock_guard<std::mutex> g(mu_);
    EraseLocked(file_id);
    return std::nullopt;
  }
  ::utimensat(AT_FDCWD, path.c_str(), nullptr, 0);  // use order, for the next Open
  file->resize(size);
  return std::move(file).value();
}

bool DiskCache::Contains(const std::string& file_id) {
  std::lock_guard<std::mutex> g(mu_);
  return index_.count(file_id) > 0;
}

void DiskCache::Put(const std::string& file_id, std::string_view data) {
  if (!CacheableId(file_id) || data.empty() || Footprint(data.size()) > cap_ / 4) return;
  std::string tmp;
  {
    std::lock_guard<std::mutex> g(mu_);
    if (index_.count(file_id)) return;
    tmp = dir_ + "/" + std::string(kTmpPrefix) + std::to_string(::getpid()) + "-" +
          std::to_string(++tmp_seq_);
  }
  char crc[4];
  EncodeFixed32(crc, Crc32c(data));
  Status st;
  {
    auto f = File::Open(tmp, O_WRONLY | O_CREAT | O_TRUNC);
    st = f.status();
    if (st.ok()) st = f->WriteAt(0, data.data(), data.size());
    if (st.ok()) st = f->WriteAt(data.size(), crc, sizeof(crc));
  }
  if (st.ok() && ::rename(tmp.c_str(), PathOf(file_id).c_str()) != 0) {
    st = Status::IOError("rename " + tmp, errno);
  }
  if (!st.ok()) {
    ::unlink(tmp.c_str());
    spdlog::warn("client.disk_cache_put file_id={}: {}", file_id, st.ToString());
    return;
  }
  std::lock_guard<std::mutex> g(mu_);
  if (index_.count(file_id)) return;  // another Put of the same blob renamed first
  lru_.emplace_front(file_id, data.size());
  index_[file_id] = lru_.begin();
  bytes_ += Footprint(data.size());
  EvictLocked();
}

void DiskCache::EraseLocked(const std::string& file_id) {
  auto it = index_.find(file_id);
  if (it == index_.end()) return;
  // `file_id` may be the string inside the list node (EvictLocked passes
  // it): take what is needed before the node goes.
  const std::string path = PathOf(file_id);
  const Lru::iterator node = it->second;
  bytes_ -= Footprint(node->second);
  index_.erase(it);
  lru_.erase(node);
  ::unlink(path.c_str());
}

void DiskCache::EvictLocked() {
  while (bytes_ > cap_ && !lru_.empty()) EraseLocked(lru_.back().first);
}

uint64_t DiskCache::bytes() const {
  std::lock_guard<std::mutex> g(mu_);
  return bytes_;
}

uint64_t DiskCache::blobs() const {
  std::lock_guard<std::mutex> g(mu_);
  return index_.size();
}

}  // namespace needlefs
