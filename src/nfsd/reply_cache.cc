#include "nfsd/reply_cache.h"

#include <chrono>

#include "common/crc32c.h"

namespace needlefs::nfsd {
namespace {

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

ReplyCache::ReplyCache(size_t max_entries, int64_t max_age_ns)
    : max_entries_(max_entries), max_age_ns_(max_age_ns) {}

std::string ReplyCache::Key(const std::string& client, uint32_t xid, std::string_view record) {
  // The xid is the record's first word; the checksum covers the rest.
  const uint32_t crc = Crc32c(record);
  std::string k = client;
  k.push_back('/');
  k.append(reinterpret_cast<const char*>(&xid), 4);
  k.append(reinterpret_cast<const char*>(&crc), 4);
  k.append(std::to_string(record.size()));
  return k;
}

void ReplyCache::EvictLocked(int64_t now) {
  while (!order_.empty()) {
    auto it = entries_.find(order_.front());
    const bool old =
        it != entries_.end() && it->second.done && now - it->second.at_ns > max_age_ns_;
    if (entries_.size() <= max_entries_ && !old) break;
    if (it != entries_.end()) entries_.erase(it);
    order_.pop_front();
  }
}

ReplyCache::Lookup ReplyCache::Begin(const std::string& client, uint32_t xid,
                                     std::string_view record, std::string* reply) {
  const std::string key = Key(client, xid, record);
  const int64_t now = NowNs();
  std::lock_guard<std::mutex> g(mu_);
  EvictLocked(now);
  auto it = entries_.find(key);
  if (it != entries_.end()) {
    ++hits_;
    if (!it->second.done) return Lookup::kInProgress;
    *reply = it->second.reply;
    return Lookup::kReplay;
  }
  order_.push_back(key);
  Entry& e = entries_[key];
  e.at_ns = now;
  e.lru = std::prev(order_.end());
  return Lookup::kNew;
}

void ReplyCache::Done(const std::string& client, uint32_t xid, std::string_view record,
                      std::string reply) {
  const std::string key = Key(client, xid, record);
  std::lock_guard<std::mutex> g(mu_);
  auto it = entries_.find(key);
  if (it == entries_.end()) return;  // evicted meanwhile
  it->second.done = true;
  it->second.reply = std::move(reply);
  it->second.at_ns = NowNs();
}

uint64_t ReplyCache::hits() const {
  std::lock_guard<std::mutex> g(mu_);
  return hits_;
}

}  // namespace needlefs::nfsd
