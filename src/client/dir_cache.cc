#include "client/dir_cache.h"

#include <cerrno>
#include <chrono>
#include <optional>
#include <utility>
#include <vector>

namespace needlefs {
namespace {

/// Entries asked for per ReadDir call while listing.
constexpr size_t kListPage = 1024;
/// Misses in one directory within the TTL before it is listed.
constexpr int kMissesBeforeListing = 2;
/// Directories whose miss counters are kept (the map is cleared past it).
constexpr size_t kMaxTrackedDirs = 65536;

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

class DirCache::Impl {
 public:
  Impl(MetaClient* meta, DirCacheOptions o) : meta_(meta), options_(o) {}

  StatusOr<InodeAttr> Lookup(const RequestContext& ctx, InodeId parent, const std::string& name) {
    if (options_.ttl_ns <= 0 || name == "." || name == "..") {
      return meta_->Lookup(ctx, parent, name);
    }
    bool list = false;
    for (int pass = 0; pass < 2; ++pass) {
      std::optional<StatusOr<InodeAttr>> hit;
      {
        std::lock_guard<std::mutex> g(mu_);
        hit = FromListing(ctx, parent, name, NowNs(), pass == 0, &list);
      }
      if (hit) return *std::move(hit);
      if (!list || pass == 1) break;
      if (!List(ctx, parent)) break;
    }
    uint64_t start;
    {
      std::lock_guard<std::mutex> g(mu_);
      start = clock_;
    }
    auto r = meta_->Lookup(ctx, parent, name);
    if (r.ok()) {
      std::lock_guard<std::mutex> g(mu_);
      // Attributes changed meanwhile may be newer than these: keep nothing.
      if (attrs_changed_at_ > start || cleared_at_ > start) return r;
      auto it = listings_.find(parent.value);
      if (it != listings_.end()) {
        auto e = it->second.entries.find(name);
        if (e != it->second.entries.end() && e->second == r->ino.value) PutAttr(*r);
      }
    }
    return r;
  }

  void Added(InodeId parent, const std::string& name, const InodeAttr& attr) {
    if (options_.ttl_ns <= 0) return;
    std::lock_guard<std::mutex> g(mu_);
    const int64_t now = NowNs();
    Touch(parent.value);  // a listing in flight may predate this
    auto it = listings_.find(parent.value);
    if (it != listings_.end() && Fresh(it->second, now)) {
      Assign(it->second, name, attr.ino.value);
      PutAttr(attr);
      if (it->second.entries.size() > options_.max_dir_entries) DropListing(parent.value);
    }
    if (attr.type == FileType::kDirectory && state_.count(attr.ino.value) == 0 &&
        listings_.count(attr.ino.value) == 0) {
      // A directory this client just made is empty (unless the change
      // stream already told of entries in it): list it as such.
      Listing l;
      l.dir_attr = attr;
      l.fetched_ns = now;
      Install(attr.ino.value, std::move(l));
    }
    EvictLocked();
  }

  void Removed(InodeId parent, const std::string& name) {
    std::lock_guard<std::mutex> g(mu_);
    Touch(parent.value);
    attrs_changed_at_ = ++clock_;  // nlink and ctime of the removed inode
    auto it = listings_.find(parent.value);
    if (it == listings_.end()) return;
    auto e = it->second.entries.find(name);
    if (e == it->second.entries.end()) return;
    const uint64_t ino = e->second;
    attrs_.erase(ino);
    if (ino != parent.value) DropListing(ino);  // a removed directory's listing goes too
    it = listings_.find(parent.value);
    if (it == listings_.end()) return;
    it->second.entries.erase(name);
    --total_entries_;
  }

  void Renamed(InodeId parent, const std::string& name, InodeId new_parent,
               const std::string& new_name, bool exchange) {
    std::lock_guard<std::mutex> g(mu_);
    Touch(parent.value);
    Touch(new_parent.value);
    attrs_changed_at_ = ++clock_;
    auto src = listings_.find(parent.value);
    auto dst = listings_.find(new_parent.value);
    std::optional<uint64_t> moved, other;
    if (src != listings_.end()) {
      auto e = src->second.entries.find(name);
      if (e != src->second.entries.end()) moved = e->second;
    }
    if (dst != listings_.end()) {
      auto e = dst->second.entries.find(new_name);
      if (e != dst->second.entries.end()) other = e->second;
    }
    // Two names of one inode: rename(2) does nothing.
    if (moved && other && *moved == *other) return;
    // Attributes of both inodes changed (ctime; nlink of a replaced file).
    if (moved) attrs_.erase(*moved);
    if (other) attrs_.erase(*other);
    const bool known_src = src != listings_.end() && moved.has_value();
    const bool known_dst = dst != listings_.end() && (!exchange || other.has_value());
    if (!known_src || !known_dst) {
      // Not enough known to apply it: forget both listings.
      DropListing(parent.value);
      DropListing(new_parent.value);
      return;
    }
    Assign(src->second, name, exchange ? other : std::nullopt);
    Assign(dst->second, new_name, moved);
  }

  void InvalidateDir(InodeId dir) {
    std::lock_guard<std::mutex> g(mu_);
    DropListing(dir.value);
    Touch(dir.value);
    State(dir.value).no_list_until_ns = NowNs() + options_.ttl_ns;
  }

  void InvalidateInode(InodeId ino) {
    std::lock_guard<std::mutex> g(mu_);
    // A listing or lookup in flight may carry the old attributes.
    attrs_changed_at_ = ++clock_;
    if (state_.count(ino.value)) Touch(ino.value);  // a directory: its mode may have changed
    attrs_.erase(ino.value);
    auto it = listings_.find(ino.value);
    if (it != listings_.end()) it->second.dir_attr_valid = false;
  }

  void Clear() {
    std::lock_guard<std::mutex> g(mu_);
    listings_.clear();
    lru_.clear();
    attrs_.clear();
    total_entries_ = 0;
    cleared_at_ = ++clock_;
  }

  uint64_t entries() const {
    std::lock_guard<std::mutex> g(mu_);
    return total_entries_;
  }

 private:
  struct Listing {
    InodeAttr dir_attr;
    bool dir_attr_valid = true;  // false: refetch before a non-root permission check
    int64_t fetched_ns = 0;
    std::unordered_map<std::string, uint64_t> entries;  // name -> inode
    std::list<uint64_t>::iterator lru;
  };
  struct DirState {
    int misses = 0;
    int64_t window_start_ns = 0;
    int64_t no_list_until_ns = 0;  // others changed it lately: do not list
    uint64_t changed_at = 0;       // clock_ at its last change told to the cache
  };

  /// Marks a change of directory `dir` (its entries or attributes).
  /// REQUIRES: mu_.
  void Touch(uint64_t dir) {
    DirState& st = State(dir);
    st.changed_at = ++clock_;
  }

  bool Fresh(const Listing& l, int64_t now) const { return now - l.fetched_ns < options_.ttl_ns; }

  DirState& State(uint64_t dir) {
    if (state_.size() >= kMaxTrackedDirs && state_.count(dir) == 0) {
      // Forgetting counters only delays listings; listings in flight are
      // discarded (their directories' change marks go with the map).
      state_.clear();
      cleared_at_ = ++clock_;
    }
    return state_[dir];
  }

  /// The answer from a fresh listing, or nullopt (then *list says whether
  /// to list the directory first). REQUIRES: mu_.
  std::optional<StatusOr<InodeAttr>> FromListing(const RequestContext& ctx, InodeId parent,
                                                 const std::string& name, int64_t now,
                                                 bool count_miss, bool* list) {
    auto it = listings_.find(parent.value);
    if (it != listings_.end() && !Fresh(it->second, now)) {
      DropListing(parent.value);
      it = listings_.end();
    }
    if (it != listings_.end()) {
      Listing& l = it->second;
      lru_.splice(lru_.begin(), lru_, l.lru);
      if (ctx.uid != 0 && !l.dir_attr_valid) return std::nullopt;  // ask meta
      if (!MayAccess(ctx, l.dir_attr, 1)) return StatusOr<InodeAttr>(Status::Posix(EACCES, name));
      auto e = l.entries.find(name);
      if (e == l.entries.end()) return StatusOr<InodeAttr>(Status::Posix(ENOENT, name));
      auto a = attrs_.find(e->second);
      if (a == attrs_.end()) return std::nullopt;  // attributes changed since: ask meta
      return StatusOr<InodeAttr>(a->second);
    }
    if (!count_miss) return std::nullopt;
    DirState& st = State(parent.value);
    if (now - st.window_start_ns >= options_.ttl_ns) {
      st.misses = 0;
      st.window_start_ns = now;
    }
    *list = ++st.misses >= kMissesBeforeListing && now >= st.no_list_until_ns;
    return std::nullopt;
  }

  /// Lists `dir` whole and installs the listing unless any change was told
  /// meanwhile (the listing might predate it). False when it was not cached.
  bool List(const RequestContext& ctx, InodeId dir) {
    const int64_t started = NowNs();
    uint64_t start;
    {
      std::lock_guard<std::mutex> g(mu_);
      start = clock_;
    }
    auto refuse = [&] {
      std::lock_guard<std::mutex> g(mu_);
      State(dir.value).no_list_until_ns = started + options_.ttl_ns;
      return false;
    };
    auto a = meta_->GetAttr(dir);
    if (!a.ok() || a->type != FileType::kDirectory || a->size > options_.max_dir_entries) {
      return refuse();
    }
    Listing l;
    l.dir_attr = *a;
    l.fetched_ns = started;
    std::vector<InodeAttr> attrs;
    uint64_t cookie = 0;
    for (;;) {
      auto page = meta_->ReadDir(ctx, dir, cookie, kListPage, /*plus=*/true);
      if (!page.ok()) return refuse();
      for (DirEntry& e : page->entries) {
        cookie = e.cookie;
        if (e.name == "." || e.name == "..") continue;
        l.entries.emplace(e.name, e.ino.value);
        if (e.attr) attrs.push_back(*e.attr);
      }
      if (l.entries.size() > options_.max_dir_entries) return refuse();
      if (page->eof || page->entries.empty()) break;
    }
    std::lock_guard<std::mutex> g(mu_);
    DirState& st = State(dir.value);
    if (st.changed_at > start || cleared_at_ > start) {
      // Changed while we listed: the listing may predate it. Not again
      // within the TTL, or a directory that keeps changing would be listed
      // on every miss.
      st.no_list_until_ns = NowNs() + options_.ttl_ns;
      return false;
    }
    // Names are current; attributes only if none changed meanwhile (else
    // lookups of these names ask meta for them).
    const bool attrs_current = attrs_changed_at_ <= start;
    l.dir_attr_valid = attrs_current;
    if (attrs_current) {
      for (const InodeAttr& at : attrs) PutAttr(at);
    }
    Install(dir.value, std::move(l));
    EvictLocked();
    return true;
  }

  /// Sets (or with nullopt, removes) entry `name` of `l`. REQUIRES: mu_.
  void Assign(Listing& l, const std::string& name, std::optional<uint64_t> ino) {
    if (ino) {
      if (l.entries.insert_or_assign(name, *ino).second) ++total_entries_;
    } else if (l.entries.erase(name) > 0) {
      --total_entries_;
    }
  }

  /// REQUIRES: mu_.
  void Install(uint64_t dir, Listing l) {
    DropListing(dir);
    total_entries_ += l.entries.size();
    lru_.push_front(dir);
    l.lru = lru_.begin();
    listings_.emplace(dir, std::move(l));
  }

  /// REQUIRES: mu_.
  void DropListing(uint64_t dir) {
    auto it = listings_.find(dir);
    if (it == listings_.end()) return;
    total_entries_ -= it->second.entries.size();
    lru_.erase(it->second.lru);
    listings_.erase(it);
  }

  /// REQUIRES: mu_.
  void PutAttr(const InodeAttr& a) {
    if (attrs_.size() >= options_.max_entries) attrs_.clear();  // bound; misses refetch
    attrs_[a.ino.value] = a;
  }

  /// Evicts least recently used listings while over max_entries.
  /// REQUIRES: mu_.
  void EvictLocked() {
    const int64_t now = NowNs();
    while (total_entries_ > options_.max_entries && !lru_.empty()) {
      // Not listed again within the TTL: directories that together exceed
      // the cap would otherwise evict and relist each other on every miss.
      const uint64_t dir = lru_.back();
      if (listings_.count(dir) == 0) {
        lru_.pop_back();  // cannot happen (every drop goes through DropListing)
        continue;
      }
      DropListing(dir);
      State(dir).no_list_until_ns = now + options_.ttl_ns;
    }
  }

  MetaClient* meta_;
  const DirCacheOptions options_;
  mutable std::mutex mu_;
  std::unordered_map<uint64_t, Listing> listings_;  // GUARDED_BY(mu_): by directory inode
  std::list<uint64_t> lru_;                         // GUARDED_BY(mu_): most recent first
  std::unordered_map<uint64_t, InodeAttr> attrs_;   // GUARDED_BY(mu_): of listed entries
  std::unordered_map<uint64_t, DirState> state_;    // GUARDED_BY(mu_)
  uint64_t total_entries_ = 0;                      // GUARDED_BY(mu_)
  // GUARDED_BY(mu_): a logical clock, ticked by every change told to the
  // cache; a listing or lookup started at clock S keeps nothing a change
  // after S may have made stale (DirState::changed_at, attrs_changed_at_,
  // cleared_at_).
  uint64_t clock_ = 0;
  uint64_t attrs_changed_at_ = 0;  // GUARDED_BY(mu_): last attribute change
  uint64_t cleared_at_ = 0;        // GUARDED_BY(mu_): last Clear or state_ reset
};

DirCache::DirCache(MetaClient* meta, DirCacheOptions options)
    : impl_(std::make_unique<Impl>(meta, options)) {}
DirCache::~DirCache() = default;

StatusOr<InodeAttr> DirCache::Lookup(const RequestContext& ctx, InodeId parent,
                                     const std::string& name) {
  // Before the cache: a listing never holds such a name, and would say ENOENT.
  if (name.size() > kMaxNameBytes) return Status::Posix(ENAMETOOLONG, "name too long");
  return impl_->Lookup(ctx, parent, name);
}
void DirCache::Added(InodeId parent, const std::string& name, const InodeAttr& attr) {
  impl_->Added(parent, name, attr);
}
void DirCache::Removed(InodeId parent, const std::string& name) { impl_->Removed(parent, name); }
void DirCache::Renamed(InodeId parent, const std::string& name, InodeId new_parent,
                       const std::string& new_name, bool exchange) {
  impl_->Renamed(parent, name, new_parent, new_name, exchange);
}
void DirCache::InvalidateDir(InodeId dir) { impl_->InvalidateDir(dir); }
void DirCache::InvalidateInode(InodeId ino) { impl_->InvalidateInode(ino); }
void DirCache::Clear() { impl_->Clear(); }
uint64_t DirCache::entries() const { return impl_->entries(); }

}  // namespace needlefs
