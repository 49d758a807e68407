#include "metadata/fsck.h"

#include <map>
#include <set>
#include <unordered_map>

#include "metadata/internal/keys.h"
#include "metadata/internal/namespace_impl.h"

namespace needlefs {

using meta_keys::DentryValue;
using meta_keys::InodeRecord;

namespace {

struct EntryInfo {
  InodeId parent;
  std::string name;
  DentryValue value;
};

std::string Hex(std::string_view s) {
  static const char* d = "0123456789abcdef";
  std::string out;
  for (unsigned char c : s) {
    out += d[c >> 4];
    out += d[c & 15];
  }
  return out;
}

}  // namespace

StatusOr<FsckReport> Fsck(KvStore& store, bool repair,
                          const std::function<void(uint64_t, uint64_t)>& progress) {
  FsckReport rep;
  std::map<uint64_t, InodeRecord> inodes;
  std::vector<EntryInfo> entries;
  std::set<std::pair<uint64_t, uint64_t>> cookies;  // (dir, cookie) from C
  std::map<std::pair<uint64_t, uint64_t>, std::string> cookie_names;
  std::map<FileId, std::set<uint64_t>> blob_users;         // file id -> inodes
  std::vector<std::pair<std::string, FileId>> chunk_keys;  // key, file id
  std::vector<std::string> xattr_keys;
  std::vector<std::pair<std::string, std::string>> garbage;  // key, file id
  std::set<uint64_t> unlinked_open;  // U: unlinked, kept while a session holds it

  {
    auto t = store.Begin();
    NEEDLEFS_RETURN_IF_ERROR(t->Scan("I", "", 0, [&](std::string_view k, std::string_view v) {
      auto r = InodeRecord::Decode(v);
      InodeId ino(meta_keys::ReadBE64(k.substr(1)));
      if (!r.ok() || k.size() != 9) {
        rep.problems.push_back("undecodable inode record " + Hex(k));
        return true;
      }
      r->attr.ino = ino;
      inodes.emplace(ino.value, *r);
      return true;
    }));
    NEEDLEFS_RETURN_IF_ERROR(t->Scan("D", "", 0, [&](std::string_view k, std::string_view v) {
      auto d = DentryValue::Decode(v);
      if (!d.ok() || k.size() < 10) {
        rep.problems.push_back("undecodable entry " + Hex(k));
        return true;
      }
      entries.push_back({InodeId(meta_keys::ReadBE64(k.substr(1))), std::string(k.substr(9)), *d});
      return true;
    }));
    NEEDLEFS_RETURN_IF_ERROR(t->Scan("C", "", 0, [&](std::string_view k, std::string_view v) {
      if (k.size() != 17) return true;
      auto key = std::make_pair(meta_keys::ReadBE64(k.substr(1)), meta_keys::ReadBE64(k.substr(9)));
      cookies.insert(key);
      cookie_names[key] = std::string(v);
      return true;
    }));
    NEEDLEFS_RETURN_IF_ERROR(t->Scan("K", "", 0, [&](std::string_view k, std::string_view v) {
      if (k.size() != 17) return true;
      auto c = meta_keys::DecodeChunk(v);
      if (!c.ok()) {
        // Not repaired: nothing says which blob it meant.
        rep.problems.push_back("undecodable chunk " + Hex(k) + ": " +
                               std::string(c.status().message()));
        return true;
      }
      // An inline chunk names no blob (FileId{} below).
      if (!c->is_inline()) blob_users[c->file_id].insert(meta_keys::ReadBE64(k.substr(1)));
      chunk_keys.emplace_back(std::string(k), c->file_id);
      return true;
    }));
    NEEDLEFS_RETURN_IF_ERROR(t->Scan("X", "", 0, [&](std::string_view k, std::string_view) {
      xattr_keys.emplace_back(k);
      return true;
    }));
    NEEDLEFS_RETURN_IF_ERROR(t->Scan("U", "", 0, [&](std::string_view k, std::string_view) {
      if (k.size() == 9) unlinked_open.insert(meta_keys::ReadBE64(k.substr(1)));
      return true;
    }));
    NEEDLEFS_RETURN_IF_ERROR(t->Scan("G", "", 0, [&](std::string_view k, std::string_view v) {
      garbage.emplace_back(std::string(k), std::string(v));
      return true;
    }));
  }
  rep.inodes = inodes.size();
  rep.entries = entries.size();
  rep.chunks = chunk_keys.size();
  rep.garbage_entries = garbage.size();

  // Walk the entries: references, types, cookies.
  std::unordered_map<uint64_t, uint32_t> names;       // ino -> names pointing at it
  std::unordered_map<uint64_t, uint32_t> subdirs;     // dir -> subdirectories
  std::unordered_map<uint64_t, uint64_t> named_from;  // dir -> the parent naming it
  std::vector<std::string> drop_keys;
  std::vector<std::pair<std::string, std::string>> add_cookies;  // C key, name
  for (const auto& e : entries) {
    auto ck = std::make_pair(e.parent.value, e.value.cookie);
    const bool has_cookie = cookies.count(ck) && cookie_names[ck] == e.name;
    if (has_cookie) cookies.erase(ck);
    auto it = inodes.find(e.value.ino.value);
    std::string where = "entry '" + e.name + "' in dir " + std::to_string(e.parent.value);
    if (!inodes.count(e.parent.value)) {
      rep.problems.push_back(where + ": its directory does not exist");
      drop_keys.push_back(meta_keys::Dentry(e.parent, e.name));
      drop_keys.push_back(meta_keys::Cookie(e.parent, e.value.cookie));
      continue;
    }
    if (it == inodes.end()) {
      rep.problems.push_back(where + ": points to missing inode " +
                             std::to_string(e.value.ino.value));
      drop_keys.push_back(meta_keys::Dentry(e.parent, e.name));
      drop_keys.push_back(meta_keys::Cookie(e.parent, e.value.cookie));
      continue;
    }
    if (it->second.attr.type != e.value.type) {
      rep.problems.push_back(where + ": type differs from its inode's");
    }
    if (!has_cookie) {
      rep.problems.push_back(where + ": missing readdir cookie record");
      add_cookies.emplace_back(meta_keys::Cookie(e.parent, e.value.cookie), e.name);
    }
    names[e.value.ino.value] += 1;
    if (e.value.type == FileType::kDirectory) {
      subdirs[e.parent.value] += 1;
      if (named_from.count(e.value.ino.value)) {
        rep.problems.push_back("directory " + std::to_string(e.value.ino.value) +
                               " has more than one name");
      }
      named_from[e.value.ino.value] = e.parent.value;
    }
  }
  for (const auto& [dir, cookie] : cookies) {
    rep.problems.push_back("cookie record without entry in dir " + std::to_string(dir));
    drop_keys.push_back(meta_keys::Cookie(InodeId(dir), cookie));
  }

  // Inodes: reachability, nlink, parent pointers.
  std::vector<uint64_t> orphans;
  std::map<uint64_t, InodeRecord> fixed;
  uint64_t done = 0;
  for (auto& [ino, r] : inodes) {
    if (progress && ++done % 65536 == 0) progress(done, inodes.size());
    if (ino == kRootInode.value) continue;
    if (!names.count(ino) && unlinked_open.count(ino) && r.attr.nlink == 0) continue;
    if (!names.count(ino)) {
      rep.problems.push_back("inode " + std::to_string(ino) + " is not reachable");
      orphans.push_back(ino);
      continue;
    }
    uint32_t want = r.attr.type == FileType::kDirectory ? 2 + subdirs[ino] : names[ino];
    bool changed = false;
    if (r.attr.nlink != want) {
      rep.problems.push_back("inode " + std::to_string(ino) + ": nlink " +
                             std::to_string(r.attr.nlink) + ", should be " + std::to_string(want));
      r.attr.nlink = want;
      changed = true;
    }
    if (r.attr.type == FileType::kDirectory && r.parent.value != named_from[ino]) {
      rep.problems.push_back("directory " + std::to_string(ino) + ": wrong parent pointer");
      r.parent = InodeId(named_from[ino]);
      changed = true;
    }
    if (changed) fixed[ino] = r;
  }
  if (auto root = inodes.find(kRootInode.value); root != inodes.end()) {
    uint32_t want = 2 + subdirs[kRootInode.value];
    if (root->second.attr.nlink != want) {
      rep.problems.push_back("root: nlink " + std::to_string(root->second.attr.nlink) +
                             ", should be " + std::to_string(want));
      root->second.attr.nlink = want;
      fixed[kRootInode.value] = root->second;
    }
  } else {
    rep.problems.push_back("the root inode is missing");
  }

  // Chunks, xattrs, garbage.
  std::vector<FileId> orphan_blobs;
  for (const auto& [key, fid] : chunk_keys) {
    uint64_t ino = meta_keys::ReadBE64(std::string_view(key).substr(1));
    if (!inodes.count(ino)) {
      rep.problems.push_back("chunk of missing inode " + std::to_string(ino));
      drop_keys.push_back(key);
      if (fid != FileId{}) orphan_blobs.push_back(fid);
    }
  }
  for (const auto& [fid, users] : blob_users) {
    if (users.size() > 1) {
      rep.problems.push_back("blob " + fid.ToString() + " backs chunks of several inodes");
    }
  }
  for (const auto& key : xattr_keys) {
    uint64_t ino = meta_keys::ReadBE64(std::string_view(key).substr(1));
    if (!inodes.count(ino)) {
      rep.problems.push_back("xattr of missing inode " + std::to_string(ino));
      drop_keys.push_back(key);
    }
  }
  for (const auto& [key, text] : garbage) {
    auto fid = FileId::Parse(text);
    if (!fid.ok()) {
      // Names no blob: the garbage collector would drop it too.
      rep.problems.push_back("garbage queue entry " + Hex(key) + " is not a file id: " + text);
      drop_keys.push_back(key);
      continue;
    }
    auto it = blob_users.find(*fid);
    if (it != blob_users.end()) {
      bool live = false;
      for (uint64_t ino : it->second) live |= inodes.count(ino) > 0;
      if (live) {
        rep.problems.push_back("garbage queue names blob " + text + " that a file still uses");
        drop_keys.push_back(key);
      }
    }
  }
  if (!repair || rep.problems.empty()) return rep;

  Status s = RunTransaction(store, [&](KvTransaction& t) -> Status {
    for (const auto& k : drop_keys) NEEDLEFS_RETURN_IF_ERROR(t.Delete(k));
    for (const auto& [k, name] : add_cookies) NEEDLEFS_RETURN_IF_ERROR(t.Put(k, name));
    for (const auto& [ino, r] : fixed) {
      NEEDLEFS_RETURN_IF_ERROR(t.Put(meta_keys::Inode(InodeId(ino)), r.Encode()));
    }
    return Status::OK();
  });
  NEEDLEFS_RETURN_IF_ERROR(s);
  rep.repaired += drop_keys.size() + add_cookies.size() + fixed.size();

  // Orphan blobs go to the garbage queue through the allocator's counter.
  BatchAllocator garbage_seq(&store, meta_keys::kNextGarbage, 1, 1024);
  for (const auto& fid : orphan_blobs) {
    NEEDLEFS_ASSIGN_OR_RETURN(uint64_t seq, garbage_seq.Next());
    NEEDLEFS_RETURN_IF_ERROR(RunTransaction(
        store, [&](KvTransaction& t) { return t.Put(meta_keys::Garbage(seq), fid.ToString()); }));
  }
  // Unreachable inodes go to /lost+found.
  if (!orphans.empty()) {
    BatchAllocator inode_ids(&store, meta_keys::kNextInode, 2, 16);
    NEEDLEFS_ASSIGN_OR_RETURN(uint64_t lf_ino, inode_ids.Next());
    s = RunTransaction(store, [&](KvTransaction& t) -> Status {
      NsTxn tx(t);
      NEEDLEFS_ASSIGN_OR_RETURN(InodeRecord * root, tx.Inode(kRootInode));
      NEEDLEFS_ASSIGN_OR_RETURN(auto lf_entry, tx.Entry(kRootInode, "lost+found"));
      InodeRecord* lf;
      const int64_t now = NowNs();
      if (lf_entry) {
        NEEDLEFS_ASSIGN_OR_RETURN(lf, tx.Inode(lf_entry->ino));
      } else {
        InodeRecord r;
        r.attr.ino = InodeId(lf_ino);
        r.attr.generation = Generation(static_cast<uint64_t>(now));
        r.attr.type = FileType::kDirectory;
        r.attr.mode = 0700;
        r.attr.nlink = 2;
        r.attr.atime_ns = r.attr.mtime_ns = r.attr.ctime_ns = now;
        r.parent = kRootInode;
        r.next_cookie = kFirstEntryCookie;
        lf = tx.NewInode(r);
        root->attr.nlink += 1;
        NEEDLEFS_RETURN_IF_ERROR(
            tx.AddEntry(root, "lost+found", lf->attr.ino, FileType::kDirectory, now));
      }
      for (uint64_t ino : orphans) {
        NEEDLEFS_ASSIGN_OR_RETURN(InodeRecord * o, tx.Inode(InodeId(ino)));
        o->attr.nlink = o->attr.type == FileType::kDirectory ? o->attr.nlink : 1;
        if (o->attr.type == FileType::kDirectory) {
          o->parent = lf->attr.ino;
          lf->attr.nlink += 1;
        }
        std::string name = std::to_string(ino);
        name.insert(name.begin(), '#');
        NEEDLEFS_RETURN_IF_ERROR(tx.AddEntry(lf, name, InodeId(ino), o->attr.type, now));
      }
      return tx.Flush();
    });
    NEEDLEFS_RETURN_IF_ERROR(s);
    rep.repaired += orphans.size();
  }
  return rep;
}

}  // namespace needlefs
