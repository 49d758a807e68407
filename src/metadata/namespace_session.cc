// Namespace: client sessions with leases and open files, so an unlinked file
// keeps its data until its last holder releases it (or the holder's session
// expires after a crash).
#include <cerrno>

#include "common/endian.h"
#include "metadata/internal/namespace_impl.h"

namespace needlefs {

using meta_keys::InodeRecord;

namespace {

std::string SessionValue(int64_t lease_end_ns, const std::string& client) {
  std::string v(8, '\0');
  EncodeFixed64(v.data(), static_cast<uint64_t>(lease_end_ns));
  return v + client;
}

Status RequireSession(KvTransaction& t, uint64_t session) {
  NEEDLEFS_ASSIGN_OR_RETURN(auto v, t.GetForUpdate(meta_keys::Session(session)));
  if (!v) return Status::NotFound("session " + std::to_string(session) + " is unknown or expired");
  return Status::OK();
}

/// Releases `ino` for `session` inside `tx`; reaps an unlinked inode that
/// nobody holds any more.
Status ReleaseIn(NsTxn& tx, uint64_t session, InodeId ino, BatchAllocator* garbage_seq) {
  KvTransaction& t = tx.kv();
  NEEDLEFS_RETURN_IF_ERROR(t.Delete(meta_keys::Open(ino, session)));
  NEEDLEFS_RETURN_IF_ERROR(t.Delete(meta_keys::Held(session, ino)));
  auto rec = tx.Inode(ino);
  if (!rec.ok()) return rec.status().posix_errno() == ENOENT ? Status::OK() : rec.status();
  if ((*rec)->attr.nlink != 0) return Status::OK();
  bool still_open = false;
  NEEDLEFS_RETURN_IF_ERROR(
      t.Scan(meta_keys::OpenPrefix(ino), "", 0, [&](std::string_view k, std::string_view) {
        if (meta_keys::ReadBE64(k.substr(9)) != session) still_open = true;
        return !still_open;
      }));
  if (still_open) return Status::OK();
  return tx.Reap(*rec, garbage_seq);
}

}  // namespace

StatusOr<uint64_t> Namespace::OpenSession(const std::string& client, int64_t lease_ms) {
  if (lease_ms <= 0) return Status::InvalidArgument("lease must be positive");
  NEEDLEFS_ASSIGN_OR_RETURN(uint64_t id, impl_->sessions_.Next());
  NEEDLEFS_RETURN_IF_ERROR(RunTransaction(*impl_->store_, [&](KvTransaction& t) {
    return t.Put(meta_keys::Session(id), SessionValue(NowNs() + lease_ms * 1'000'000, client));
  }));
  return id;
}

Status Namespace::RenewSession(uint64_t session, int64_t lease_ms) {
  return RunTransaction(*impl_->store_, [&](KvTransaction& t) -> Status {
    NEEDLEFS_ASSIGN_OR_RETURN(auto v, t.GetForUpdate(meta_keys::Session(session)));
    if (!v || v->size() < 8) return Status::NotFound("session expired or unknown");
    return t.Put(meta_keys::Session(session),
                 SessionValue(NowNs() + lease_ms * 1'000'000, v->substr(8)));
  });
}

Status Namespace::Impl::EndSession(uint64_t session) {
  return RunTransaction(*store_, [&](KvTransaction& t) -> Status {
    NsTxn tx(t);
    std::vector<InodeId> held;
    NEEDLEFS_RETURN_IF_ERROR(
        t.Scan(meta_keys::HeldPrefix(session), "", 0, [&](std::string_view k, std::string_view) {
          held.emplace_back(meta_keys::ReadBE64(k.substr(9)));
          return true;
        }));
    for (InodeId ino : held) NEEDLEFS_RETURN_IF_ERROR(ReleaseIn(tx, session, ino, &garbage_seq_));
    NEEDLEFS_RETURN_IF_ERROR(t.Delete(meta_keys::Session(session)));
    return tx.Flush();
  });
}

Status Namespace::CloseSession(uint64_t session) { return impl_->EndSession(session); }

Status Namespace::OpenFile(uint64_t session, InodeId ino) {
  return RunTransaction(*impl_->store_, [&](KvTransaction& t) -> Status {
    NsTxn tx(t);
    NEEDLEFS_RETURN_IF_ERROR(RequireSession(t, session));
    NEEDLEFS_RETURN_IF_ERROR(tx.Inode(ino).status());  // locks it against a racing unlink
    NEEDLEFS_RETURN_IF_ERROR(t.Put(meta_keys::Open(ino, session), ""));
    return t.Put(meta_keys::Held(session, ino), "");
  });
}

Status Namespace::ReleaseFile(uint64_t session, InodeId ino) {
  return RunTransaction(*impl_->store_, [&](KvTransaction& t) -> Status {
    NsTxn tx(t);
    NEEDLEFS_RETURN_IF_ERROR(ReleaseIn(tx, session, ino, &impl_->garbage_seq_));
    return tx.Flush();
  });
}

StatusOr<size_t> Namespace::ExpireSessions(int64_t now_ns) {
  std::vector<uint64_t> expired;
  {
    auto t = impl_->store_->Begin();
    NEEDLEFS_RETURN_IF_ERROR(t->Scan("L", "", 0, [&](std::string_view k, std::string_view v) {
      if (v.size() >= 8 && static_cast<int64_t>(DecodeFixed64(v.data())) < now_ns) {
        expired.push_back(meta_keys::ReadBE64(k.substr(1)));
      }
      return true;
    }));
  }
  for (uint64_t s : expired) NEEDLEFS_RETURN_IF_ERROR(impl_->EndSession(s));
  return expired.size();
}

}  // namespace needlefs
