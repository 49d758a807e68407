// The duplicate request cache: a client that gets no reply resends the
// same call (same xid); a non-idempotent one (CREATE, REMOVE, RENAME, ...)
// must then get the first reply, not run again and fail (EXIST, NOENT).
// Keyed by the client's address, the xid and a checksum of the whole call
// (so a reused xid with other arguments is a new call), as knfsd's and
// Ganesha's DRC. Bounded in entries and age.
#pragma once

#include <cstdint>
#include <list>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

namespace needlefs::nfsd {

class ReplyCache {
 public:
  /// Keeps at most `max_entries` replies, each at most `max_age_ns`.
  explicit ReplyCache(size_t max_entries = 4096, int64_t max_age_ns = 120'000'000'000);

  enum class Lookup {
    kNew,         ///< run the call, then Done() with its reply
    kInProgress,  ///< the first one still runs: drop this one (no reply)
    kReplay,      ///< *reply is the first reply: send it again
  };
  /// Looks up the call `record` from `client`; a new one is marked in
  /// progress.
  Lookup Begin(const std::string& client, uint32_t xid, std::string_view record,
               std::string* reply);
  /// The reply of a call Begin answered kNew for.
  void Done(const std::string& client, uint32_t xid, std::string_view record, std::string reply);

  /// Replays sent so far (for metrics and tests).
  uint64_t hits() const;

 private:
  struct Entry {
    bool done = false;
    std::string reply;
    int64_t at_ns = 0;
    std::list<std::string>::iterator lru;
  };
  static std::string Key(const std::string& client, uint32_t xid, std::string_view record);
  void EvictLocked(int64_t now);

  const size_t max_entries_;
  const int64_t max_age_ns_;
  mutable std::mutex mu_;
  std::unordered_map<std::string, Entry> entries_;  // GUARDED_BY(mu_)
  std::list<std::string> order_;                    // GUARDED_BY(mu_): oldest first
  uint64_t hits_ = 0;                               // GUARDED_BY(mu_)
};

}  // namespace needlefs::nfsd
