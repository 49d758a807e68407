// gRPC transport of the meta server: each handler converts the request to
// domain types, calls the Namespace, converts back. A Status with an errno
// goes into the response (errno_value, error) with gRPC OK; one without an
// errno becomes the call's gRPC status (ToGrpc, common/grpc_server.h).
#include "metadata/meta_service.h"

#include <grpcpp/grpcpp.h>
#include <prometheus/counter.h>
#include <prometheus/histogram.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <limits>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "common/frame_rpc.h"
#include "common/grpc_server.h"
#include "common/logging.h"
#include "common/metrics.h"
#include "common/task_pool.h"
#include "meta.grpc.pb.h"
#include "meta_convert.h"

namespace needlefs {
namespace {

namespace pb = ::needlefs::meta;

/// Most entries per ReadDir / PeekGarbage reply, whatever the client asks:
/// bounds the reply size (a capped ReadDir reply is just not eof).
constexpr size_t kMaxReadDirEntries = 65536;
constexpr size_t kMaxGarbageEntries = 65536;
/// Fills the change fields of `m` (a ChangeEventMessage or a batch's
/// ChangeRecord) from change `seq` of the log.
template <typename Change>
void SetChange(Change* m, uint64_t seq, const ChangeEvent& e) {
  m->set_seq(seq);
  m->set_kind(static_cast<uint32_t>(e.kind));
  m->set_ino(e.ino.value);
  m->set_parent(e.parent.value);
  m->set_name(e.name);
}

/// Events per Read of the change log in a Subscribe stream.
constexpr size_t kSubscribeBatch = 256;
/// How often an idle Subscribe stream checks for cancellation and shutdown.
constexpr std::chrono::milliseconds kSubscribePoll{200};
/// How long a Subscribe stream gathers events after the first one arrives.
constexpr std::chrono::milliseconds kSubscribeCoalesce{5};
/// Idle sync-server threads kept per completion queue (GrpcServerOptions::
/// max_idle_threads): 32 covers the measured c=16 load with room to spare.
constexpr int kMetaIdleThreads = 32;
/// Most ops in one Batch call (BatchRequest in meta.proto).
constexpr int kMaxBatchOps = 1024;
/// Threads of the pool that runs the gRPC changes: enough for the measured
/// c=16 load of many clients, each call blocking in the WAL sync.
constexpr int kChangePoolThreads = 32;
/// Changes queued for the pool beyond which calls get RESOURCE_EXHAUSTED.
constexpr size_t kChangePoolQueue = 4096;

/// Makes `r` the failure `s` (a BatchResult carries a code, no response).
void SetCode(pb::BatchResult* r, const grpc::Status& s) {
  r->Clear();
  r->set_code(static_cast<int32_t>(s.error_code()));
  r->set_message(s.error_message());
}

/// A Batch op's request with its commit left unsynced (no_sync), setting
/// *need_sync when the caller had asked for a synced one: the batch syncs
/// the WAL once after all its ops instead (BatchRequest in meta.proto).
template <typename Req>
std::unique_ptr<Req> Deferred(const Req& req, bool* need_sync) {
  auto q = std::make_unique<Req>(req);
  if (!q->caller().no_sync()) {
    *need_sync = true;
    q->mutable_caller()->set_no_sync(true);
  }
  return q;
}

/// Puts `s` into the reply: an errno into resp's errno_value/error (gRPC OK),
/// any other failure into the gRPC status (logged with `method`).
template <typename Resp>
grpc::Status Reply(const char* method, const Status& s, Resp* resp) {
  if (s.ok()) return grpc::Status::OK;
  if (s.posix_errno() != 0) {
    resp->set_errno_value(s.posix_errno());
    resp->set_error(std::string(s.message()));
    return grpc::Status::OK;
  }
  spdlog::warn("meta.rpc_error method={} error=\"{}\"", method, s.ToString());
  return ToGrpc(s);
}

/// Replies with the attributes or the error of `r`.
template <typename Resp>
grpc::Status ReplyAttr(const char* method, const StatusOr<InodeAttr>& r, Resp* resp) {
  if (!r.ok()) return Reply(method, r.status(), resp);
  ToPb(*r, resp->mutable_attr());
  return grpc::Status::OK;
}

/// A ChangeInfo for the namespace call when the caller asked for one
/// (Caller.want_change_info), else null; PutChange puts it into the reply.
struct WantChange {
  explicit WantChange(const pb::Caller& c) : wanted(c.want_change_info()) {}
  ChangeInfo* ptr() { return wanted ? &info : nullptr; }
  template <typename Resp>
  void PutChange(Resp* resp) const {
    if (wanted) ToPb(info, resp->mutable_change());
  }
  bool wanted;
  ChangeInfo info;
};

/// Finishes a callback call with `s` at once.
grpc::ServerUnaryReactor* Inline(grpc::CallbackServerContext* ctx, const grpc::Status& s) {
  grpc::ServerUnaryReactor* r = ctx->DefaultReactor();
  r->Finish(s);
  return r;
}

/// Every method but ReadDir, ReadChunks, Subscribe and the session and
/// garbage calls is a gRPC callback method. The quick read-only ones (and
/// BatchRead) are answered inline on gRPC's own threads: no hand-off to a
/// worker (stat at c=16 went from ~22k/s to ~30k/s on 2 cores). The changes
/// run on the service's change pool: one may wait on a WAL sync or on a row
/// lock a synced change holds, and gRPC's threads must not. ReadDir pages
/// and whole chunk lists (ReadChunks) can take milliseconds (inline, 16
/// concurrent listings of a 50,000-entry directory ran at a third of the
/// speed): they stay on the sync server's pool. The clients' hot path is
/// the frame RPC port (common/frame_rpc.h), where every call runs on its
/// connection's own thread.
using ServiceBase = pb::MetaService::WithCallbackMethod_ServerInfo<pb::MetaService::WithCallbackMethod_Batch<
    pb::MetaService::WithCallbackMethod_AddChunks<pb::MetaService::WithCallbackMethod_Compose<
        pb::MetaService::WithCallbackMethod_RemoveXattr<pb::MetaService::WithCallbackMethod_SetXattr<
            pb::MetaService::WithCallbackMethod_Rename<pb::MetaService::WithCallbackMethod_Rmdir<
                pb::MetaService::WithCallbackMethod_Unlink<pb::MetaService::WithCallbackMethod_Link<
                    pb::MetaService::WithCallbackMethod_Symlink<pb::MetaService::WithCallbackMethod_Mknod<
                        pb::MetaService::WithCallbackMethod_Mkdir<pb::MetaService::WithCallbackMethod_Create<
                            pb::MetaService::WithCallbackMethod_SetAttr<
                                pb::MetaService::WithCallbackMethod_Lookup<
                                    pb::MetaService::WithCallbackMethod_GetAttr<
                                        pb::MetaService::WithCallbackMethod_Readlink<
                                            pb::MetaService::WithCallbackMethod_Access<
                                                pb::MetaService::WithCallbackMethod_StatFs<
                                                    pb::MetaService::WithCallbackMethod_GetXattr<
                                                        pb::MetaService::WithCallbackMethod_ListXattr<
                                                            pb::MetaService::
                                                                WithCallbackMethod_BatchRead<
                                                                    pb::MetaService::
                                                                        Service>>>>>>>>>>>>>>>>>>>>>>>;

class Service final : public ServiceBase {
 public:
  Service(Namespace* ns, ChangeLog* log, uint64_t max_inline_bytes)
      : ns_(ns),
        log_(log),
        max_inline_bytes_(max_inline_bytes),
        change_pool_(kChangePoolThreads, kChangePoolQueue) {}

  /// Makes the Subscribe streams end (within kSubscribePoll).
  void Stop() {
    stopping_.store(true);
    if (frame_) frame_->Shutdown();
  }

  /// Serves every unary method on a frame RPC listener at ip:port too
  /// (0: any free port) and announces it in ServerInfo.
  Status StartFrameRpc(const std::string& ip, uint16_t port, uint32_t max_request_bytes) {
    FrameRpcServerOptions fo;
    fo.max_request_bytes = max_request_bytes;
    fo.name = "meta.frame_rpc";
    NEEDLEFS_ASSIGN_OR_RETURN(
        frame_, FrameRpcServer::Start(
                    ip, port,
                    [this](std::string_view method, std::string_view in, std::string* out) {
                      return Dispatch(method, in, out);
                    },
                    fo));
    return Status::OK();
  }

  grpc::ServerUnaryReactor* ServerInfo(grpc::CallbackServerContext* ctx,
                                       const pb::ServerInfoRequest*,
                                       pb::ServerInfoResponse* resp) override {
    if (frame_) resp->set_frame_port(frame_->port());
    resp->set_max_inline_bytes(max_inline_bytes_);
    resp->set_add_chunks_attributes(true);
    return Inline(ctx, grpc::Status::OK);
  }

  // ---- read-only methods, answered inline (see ServiceBase) ----
  grpc::ServerUnaryReactor* Lookup(grpc::CallbackServerContext* ctx, const pb::LookupRequest* req,
                                   pb::LookupResponse* resp) override {
    return Inline(ctx, DoLookup(req, resp));
  }
  grpc::ServerUnaryReactor* GetAttr(grpc::CallbackServerContext* ctx, const pb::GetAttrRequest* req,
                                    pb::GetAttrResponse* resp) override {
    return Inline(ctx, DoGetAttr(req, resp));
  }
  grpc::ServerUnaryReactor* Readlink(grpc::CallbackServerContext* ctx,
                                     const pb::ReadlinkRequest* req,
                                     pb::ReadlinkResponse* resp) override {
    return Inline(ctx, DoReadlink(req, resp));
  }
  grpc::ServerUnaryReactor* Access(grpc::CallbackServerContext* ctx, const pb::AccessRequest* req,
                                   pb::AccessResponse* resp) override {
    return Inline(ctx, DoAccess(req, resp));
  }
  grpc::ServerUnaryReactor* StatFs(grpc::CallbackServerContext* ctx, const pb::StatFsRequest* req,
                                   pb::StatFsResponse* resp) override {
    return Inline(ctx, DoStatFs(req, resp));
  }
  grpc::ServerUnaryReactor* GetXattr(grpc::CallbackServerContext* ctx,
                                     const pb::GetXattrRequest* req,
                                     pb::GetXattrResponse* resp) override {
    return Inline(ctx, DoGetXattr(req, resp));
  }
  grpc::ServerUnaryReactor* BatchRead(grpc::CallbackServerContext* ctx, const pb::BatchRequest* req,
                                      pb::BatchResponse* resp) override {
    return Inline(ctx, RunBatch(ctx->deadline(), req, resp, /*reads_only=*/true));
  }
  grpc::ServerUnaryReactor* ListXattr(grpc::CallbackServerContext* ctx,
                                      const pb::ListXattrRequest* req,
                                      pb::ListXattrResponse* resp) override {
    return Inline(ctx, DoListXattr(req, resp));
  }

  // ---- changes: on the change pool ----

  grpc::ServerUnaryReactor* SetAttr(grpc::CallbackServerContext* ctx, const pb::SetAttrRequest* req,
                                    pb::SetAttrResponse* resp) override {
    return Change(ctx, req, resp, &Service::DoSetAttr);
  }

  grpc::ServerUnaryReactor* Create(grpc::CallbackServerContext* ctx, const pb::CreateRequest* req,
                                   pb::CreateResponse* resp) override {
    return Change(ctx, req, resp, &Service::DoCreate);
  }

  grpc::ServerUnaryReactor* Mkdir(grpc::CallbackServerContext* ctx, const pb::MkdirRequest* req,
                                  pb::MkdirResponse* resp) override {
    return Change(ctx, req, resp, &Service::DoMkdir);
  }

  grpc::ServerUnaryReactor* Mknod(grpc::CallbackServerContext* ctx, const pb::MknodRequest* req,
                                  pb::MknodResponse* resp) override {
    return Change(ctx, req, resp, &Service::DoMknod);
  }

  grpc::ServerUnaryReactor* Symlink(grpc::CallbackServerContext* ctx, const pb::SymlinkRequest* req,
                                    pb::SymlinkResponse* resp) override {
    return Change(ctx, req, resp, &Service::DoSymlink);
  }

  grpc::ServerUnaryReactor* Link(grpc::CallbackServerContext* ctx, const pb::LinkRequest* req,
                                 pb::LinkResponse* resp) override {
    return Change(ctx, req, resp, &Service::DoLink);
  }

  grpc::ServerUnaryReactor* Unlink(grpc::CallbackServerContext* ctx, const pb::UnlinkRequest* req,
                                   pb::UnlinkResponse* resp) override {
    return Change(ctx, req, resp, &Service::DoUnlink);
  }

  grpc::ServerUnaryReactor* Rmdir(grpc::CallbackServerContext* ctx, const pb::RmdirRequest* req,
                                  pb::RmdirResponse* resp) override {
    return Change(ctx, req, resp, &Service::DoRmdir);
  }

  grpc::ServerUnaryReactor* Rename(grpc::CallbackServerContext* ctx, const pb::RenameRequest* req,
                                   pb::RenameResponse* resp) override {
    return Change(ctx, req, resp, &Service::DoRename);
  }

  grpc::ServerUnaryReactor* SetXattr(grpc::CallbackServerContext* ctx,
                                     const pb::SetXattrRequest* req,
                                     pb::SetXattrResponse* resp) override {
    return Change(ctx, req, resp, &Service::DoSetXattr);
  }

  grpc::ServerUnaryReactor* RemoveXattr(grpc::CallbackServerContext* ctx,
                                        const pb::RemoveXattrRequest* req,
                                        pb::RemoveXattrResponse* resp) override {
    return Change(ctx, req, resp, &Service::DoRemoveXattr);
  }

  grpc::ServerUnaryReactor* Compose(grpc::CallbackServerContext* ctx, const pb::ComposeRequest* req,
                                    pb::ComposeResponse* resp) override {
    return Change(ctx, req, resp, &Service::DoCompose);
  }

  grpc::ServerUnaryReactor* AddChunks(grpc::CallbackServerContext* ctx,
                                      const pb::AddChunksRequest* req,
                                      pb::AddChunksResponse* resp) override {
    return Change(ctx, req, resp, &Service::DoAddChunks);
  }

  grpc::ServerUnaryReactor* Batch(grpc::CallbackServerContext* ctx, const pb::BatchRequest* req,
                                  pb::BatchResponse* resp) override {
    const auto deadline = ctx->deadline();
    return OnPool(ctx, [this, deadline, req, resp] {
      return RunBatch(deadline, req, resp, /*reads_only=*/false);
    });
  }

  // ---- the handlers the callbacks above call ----

  grpc::Status DoLookup(const pb::LookupRequest* req, pb::LookupResponse* resp) {
    return ReplyAttr("Lookup",
                     ns_->Lookup(FromPb(req->caller()), InodeId(req->parent()), req->name()), resp);
  }

  grpc::Status DoGetAttr(const pb::GetAttrRequest* req, pb::GetAttrResponse* resp) {
    InodeId ino(req->ino());
    auto a = req->generation() != 0 ? ns_->GetAttrChecked(ino, Generation(req->generation()))
                                    : ns_->GetAttr(ino);
    if (a.ok() && req->max_chunks() > 0 && a->type == FileType::kRegular) {
      // The whole visible list; a failure here only means no list.
      auto c = ns_->ReadChunks(ino, 0, uint64_t{1} << 62);
      if (c.ok() && c->size() <= req->max_chunks()) {
        resp->set_has_chunks(true);
        for (const Chunk& chunk : *c) ToPb(chunk, resp->add_chunks());
      }
    }
    return ReplyAttr("GetAttr", a, resp);
  }

  grpc::Status DoSetAttr(const pb::SetAttrRequest* req, pb::SetAttrResponse* resp) {
    const SetAttrRequest sa = FromPb(*req);
    WantChange w(req->caller());
    auto r = ns_->SetAttr(FromPb(req->caller()), InodeId(req->ino()), sa, w.ptr());
    w.PutChange(resp);
    return ReplyAttr("SetAttr", r, resp);
  }

  grpc::Status DoCreate(const pb::CreateRequest* req, pb::CreateResponse* resp) {
    bool created = false;
    WantChange w(req->caller());
    std::optional<uint64_t> verifier;
    if (req->has_verifier()) verifier = req->verifier();
    auto r = ns_->Create(FromPb(req->caller()), InodeId(req->parent()), req->name(), req->mode(),
                         req->exclusive(), &created, w.ptr(), verifier);
    if (r.ok()) resp->set_created(created);
    w.PutChange(resp);
    return ReplyAttr("Create", r, resp);
  }

  grpc::Status DoMkdir(const pb::MkdirRequest* req, pb::MkdirResponse* resp) {
    WantChange w(req->caller());
    auto r = ns_->Mkdir(FromPb(req->caller()), InodeId(req->parent()), req->name(), req->mode(),
                        w.ptr());
    w.PutChange(resp);
    return ReplyAttr("Mkdir", r, resp);
  }

  grpc::Status DoMknod(const pb::MknodRequest* req, pb::MknodResponse* resp) {
    if (req->type() < static_cast<uint32_t>(FileType::kRegular) ||
        req->type() > static_cast<uint32_t>(FileType::kBlockDevice)) {
      return Reply("Mknod", Status::Posix(EINVAL, "mknod: unknown file type"), resp);
    }
    WantChange w(req->caller());
    auto r = ns_->Mknod(FromPb(req->caller()), InodeId(req->parent()), req->name(),
                        static_cast<FileType>(req->type()), req->mode(), req->rdev(), w.ptr());
    w.PutChange(resp);
    return ReplyAttr("Mknod", r, resp);
  }

  grpc::Status DoSymlink(const pb::SymlinkRequest* req, pb::SymlinkResponse* resp) {
    WantChange w(req->caller());
    auto r = ns_->Symlink(FromPb(req->caller()), InodeId(req->parent()), req->name(), req->target(),
                          w.ptr());
    w.PutChange(resp);
    return ReplyAttr("Symlink", r, resp);
  }

  grpc::Status DoReadlink(const pb::ReadlinkRequest* req, pb::ReadlinkResponse* resp) {
    auto r = ns_->Readlink(InodeId(req->ino()));
    if (!r.ok()) return Reply("Readlink", r.status(), resp);
    resp->set_target(std::move(r).value());
    return grpc::Status::OK;
  }

  grpc::Status DoLink(const pb::LinkRequest* req, pb::LinkResponse* resp) {
    WantChange w(req->caller());
    auto r = ns_->Link(FromPb(req->caller()), InodeId(req->ino()), InodeId(req->new_parent()),
                       req->new_name(), w.ptr());
    w.PutChange(resp);
    return ReplyAttr("Link", r, resp);
  }

  grpc::Status DoUnlink(const pb::UnlinkRequest* req, pb::UnlinkResponse* resp) {
    WantChange w(req->caller());
    Status s = ns_->Unlink(FromPb(req->caller()), InodeId(req->parent()), req->name(), w.ptr());
    w.PutChange(resp);
    return Reply("Unlink", s, resp);
  }

  grpc::Status DoRmdir(const pb::RmdirRequest* req, pb::RmdirResponse* resp) {
    WantChange w(req->caller());
    Status s = ns_->Rmdir(FromPb(req->caller()), InodeId(req->parent()), req->name(), w.ptr());
    w.PutChange(resp);
    return Reply("Rmdir", s, resp);
  }

  grpc::Status DoRename(const pb::RenameRequest* req, pb::RenameResponse* resp) {
    WantChange w(req->caller());
    Status s = ns_->Rename(FromPb(req->caller()), InodeId(req->parent()), req->name(),
                           InodeId(req->new_parent()), req->new_name(), req->flags(), w.ptr());
    w.PutChange(resp);
    return Reply("Rename", s, resp);
  }

  grpc::Status ReadDir(grpc::ServerContext*, const pb::ReadDirRequest* req,
                       pb::ReadDirResponse* resp) override {
    size_t max = std::min<size_t>(req->max_entries(), kMaxReadDirEntries);
    auto r =
        ns_->ReadDir(FromPb(req->caller()), InodeId(req->dir()), req->cookie(), max, req->plus());
    if (!r.ok()) return Reply("ReadDir", r.status(), resp);
    resp->mutable_entries()->Reserve(static_cast<int>(r->entries.size()));
    for (const DirEntry& e : r->entries) {
      pb::DirEntry* out = resp->add_entries();
      out->set_name(e.name);
      out->set_ino(e.ino.value);
      out->set_type(static_cast<uint32_t>(e.type));
      out->set_cookie(e.cookie);
      if (e.attr) ToPb(*e.attr, out->mutable_attr());
    }
    resp->set_eof(r->eof);
    return grpc::Status::OK;
  }

  grpc::Status DoAccess(const pb::AccessRequest* req, pb::AccessResponse* resp) {
    return Reply("Access", ns_->Access(FromPb(req->caller()), InodeId(req->ino()), req->mask()),
                 resp);
  }

  grpc::Status DoStatFs(const pb::StatFsRequest*, pb::StatFsResponse* resp) {
    auto r = ns_->GetStatFs();
    if (!r.ok()) return Reply("StatFs", r.status(), resp);
    resp->set_inodes(r->inodes);
    resp->set_bytes_used(r->bytes_used);
    return grpc::Status::OK;
  }

  grpc::Status DoSetXattr(const pb::SetXattrRequest* req, pb::SetXattrResponse* resp) {
    return Reply("SetXattr",
                 ns_->SetXattr(FromPb(req->caller()), InodeId(req->ino()), req->name(),
                               req->value(), req->flags()),
                 resp);
  }

  grpc::Status DoGetXattr(const pb::GetXattrRequest* req, pb::GetXattrResponse* resp) {
    auto r = ns_->GetXattr(FromPb(req->caller()), InodeId(req->ino()), req->name());
    if (!r.ok()) return Reply("GetXattr", r.status(), resp);
    resp->set_value(std::move(r).value());
    return grpc::Status::OK;
  }

  grpc::Status DoListXattr(const pb::ListXattrRequest* req, pb::ListXattrResponse* resp) {
    auto r = ns_->ListXattr(FromPb(req->caller()), InodeId(req->ino()));
    if (!r.ok()) return Reply("ListXattr", r.status(), resp);
    for (std::string& name : *r) resp->add_names(std::move(name));
    return grpc::Status::OK;
  }

  grpc::Status DoRemoveXattr(const pb::RemoveXattrRequest* req, pb::RemoveXattrResponse* resp) {
    return Reply("RemoveXattr",
                 ns_->RemoveXattr(FromPb(req->caller()), InodeId(req->ino()), req->name()), resp);
  }

  grpc::Status DoCompose(const pb::ComposeRequest* req, pb::ComposeResponse* resp) {
    WantChange w(req->caller());
    std::vector<std::string> parts(req->parts().begin(), req->parts().end());
    auto r = ns_->Compose(FromPb(req->caller()), InodeId(req->target()), InodeId(req->parts_dir()),
                          parts, w.ptr());
    w.PutChange(resp);
    return ReplyAttr("Compose", r, resp);
  }

  grpc::Status DoAddChunks(const pb::AddChunksRequest* req, pb::AddChunksResponse* resp) {
    std::vector<Chunk> chunks;
    chunks.reserve(req->chunks_size());
    for (const pb::Chunk& c : req->chunks()) {
      auto chunk = FromPb(c);
      // A malformed file id is the caller's error, as an empty chunk is.
      if (!chunk.ok()) {
        return Reply("AddChunks", Status::Posix(EINVAL, chunk.status().message()), resp);
      }
      chunks.push_back(std::move(chunk).value());
    }
    std::optional<SetAttrRequest> attrs;
    std::optional<RequestContext> attrs_ctx;
    if (req->has_attrs()) {
      if (req->attrs().has_size()) {
        return Reply("AddChunks", Status::Posix(EINVAL, "size with chunks"), resp);
      }
      attrs = FromPb(req->attrs());
      attrs_ctx = FromPb(req->attrs().caller());
    }
    return ReplyAttr("AddChunks",
                     ns_->AddChunks(InodeId(req->ino()), chunks, req->min_size(), !req->no_sync(),
                                    attrs ? &*attrs : nullptr, attrs_ctx ? &*attrs_ctx : nullptr),
                     resp);
  }

  grpc::Status Sync(grpc::ServerContext*, const pb::SyncRequest*, pb::SyncResponse* resp) override {
    return Reply("Sync", ns_->Sync(), resp);
  }

  grpc::Status ReadChunks(grpc::ServerContext*, const pb::ReadChunksRequest* req,
                          pb::ReadChunksResponse* resp) override {
    auto r = ns_->ReadChunks(InodeId(req->ino()), req->offset(), req->length());
    if (!r.ok()) return Reply("ReadChunks", r.status(), resp);
    resp->mutable_chunks()->Reserve(static_cast<int>(r->size()));
    for (const Chunk& c : *r) ToPb(c, resp->add_chunks());
    return grpc::Status::OK;
  }

  grpc::Status OpenSession(grpc::ServerContext*, const pb::OpenSessionRequest* req,
                           pb::OpenSessionResponse* resp) override {
    auto r = ns_->OpenSession(req->client(), req->lease_ms());
    if (!r.ok()) return Reply("OpenSession", r.status(), resp);
    resp->set_session(*r);
    return grpc::Status::OK;
  }

  grpc::Status RenewSession(grpc::ServerContext*, const pb::RenewSessionRequest* req,
                            pb::RenewSessionResponse* resp) override {
    return Reply("RenewSession", ns_->RenewSession(req->session(), req->lease_ms()), resp);
  }

  grpc::Status CloseSession(grpc::ServerContext*, const pb::CloseSessionRequest* req,
                            pb::CloseSessionResponse* resp) override {
    return Reply("CloseSession", ns_->CloseSession(req->session()), resp);
  }

  grpc::Status OpenFile(grpc::ServerContext*, const pb::OpenFileRequest* req,
                        pb::OpenFileResponse* resp) override {
    return Reply("OpenFile", ns_->OpenFile(req->session(), InodeId(req->ino())), resp);
  }

  grpc::Status ReleaseFile(grpc::ServerContext*, const pb::ReleaseFileRequest* req,
                           pb::ReleaseFileResponse* resp) override {
    return Reply("ReleaseFile", ns_->ReleaseFile(req->session(), InodeId(req->ino())), resp);
  }

  grpc::Status ExpireSessions(grpc::ServerContext*, const pb::ExpireSessionsRequest* req,
                              pb::ExpireSessionsResponse* resp) override {
    auto r = ns_->ExpireSessions(req->now_ns());
    if (!r.ok()) return Reply("ExpireSessions", r.status(), resp);
    resp->set_expired(*r);
    return grpc::Status::OK;
  }

  grpc::Status PeekGarbage(grpc::ServerContext*, const pb::PeekGarbageRequest* req,
                           pb::PeekGarbageResponse* resp) override {
    auto r = ns_->PeekGarbage(std::min<size_t>(req->max(), kMaxGarbageEntries));
    if (!r.ok()) return Reply("PeekGarbage", r.status(), resp);
    for (auto& [seq, file_id] : *r) {
      pb::GarbageEntry* e = resp->add_entries();
      e->set_seq(seq);
      e->set_file_id(std::move(file_id));
    }
    return grpc::Status::OK;
  }

  grpc::Status AckGarbage(grpc::ServerContext*, const pb::AckGarbageRequest* req,
                          pb::AckGarbageResponse* resp) override {
    return Reply("AckGarbage", ns_->AckGarbage(req->seq()), resp);
  }

  /// Runs a Batch (see BatchRequest in meta.proto); with `reads_only`
  /// (BatchRead), any op but Lookup and GetAttr gets INVALID_ARGUMENT.
  grpc::Status RunBatch(std::chrono::system_clock::time_point deadline, const pb::BatchRequest* req,
                        pb::BatchResponse* resp, bool reads_only) {
    static auto& calls = Metrics::Global().Counter("needlefs_meta_batch_calls_total",
                                                   "Batch calls served by the meta server");
    static auto& ops = Metrics::Global().Counter("needlefs_meta_batch_ops_total",
                                                 "Operations received in Batch calls");
    if (req->ops_size() > kMaxBatchOps) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          "Batch: more than " + std::to_string(kMaxBatchOps) + " ops");
    }
    calls.Increment();
    ops.Increment(req->ops_size());
    resp->mutable_results()->Reserve(req->ops_size());
    std::vector<int> deferred;  // ops whose caller asked for a synced commit
    for (const pb::BatchOp& op : req->ops()) {
      pb::BatchResult* r = resp->add_results();
      if (std::chrono::system_clock::now() > deadline) {
        // The client gave up: the ops not run yet are not run. (The
        // deadline, not IsCancelled: that polls the sync server's queue and
        // cost a third of the stat throughput.)
        r->set_code(grpc::StatusCode::DEADLINE_EXCEEDED);
        r->set_message("Batch: the call's deadline passed before this op ran");
        continue;
      }
      if (reads_only && !IsBatchReadOp(op)) {
        r->set_code(grpc::StatusCode::INVALID_ARGUMENT);
        r->set_message("BatchRead: only Lookup and GetAttr");
        continue;
      }
      bool need_sync = false;
      grpc::Status s;
      switch (op.op_case()) {
        case pb::BatchOp::kLookup:
          s = DoLookup(&op.lookup(), r->mutable_lookup());
          break;
        case pb::BatchOp::kGetAttr:
          s = DoGetAttr(&op.get_attr(), r->mutable_get_attr());
          break;
        case pb::BatchOp::kSetAttr:
          s = DoSetAttr(Deferred(op.set_attr(), &need_sync).get(), r->mutable_set_attr());
          break;
        case pb::BatchOp::kCreate:
          s = DoCreate(Deferred(op.create(), &need_sync).get(), r->mutable_create());
          break;
        case pb::BatchOp::kMkdir:
          s = DoMkdir(Deferred(op.mkdir(), &need_sync).get(), r->mutable_mkdir());
          break;
        case pb::BatchOp::kMknod:
          s = DoMknod(Deferred(op.mknod(), &need_sync).get(), r->mutable_mknod());
          break;
        case pb::BatchOp::kSymlink:
          s = DoSymlink(Deferred(op.symlink(), &need_sync).get(), r->mutable_symlink());
          break;
        case pb::BatchOp::kLink:
          s = DoLink(Deferred(op.link(), &need_sync).get(), r->mutable_link());
          break;
        case pb::BatchOp::kUnlink:
          s = DoUnlink(Deferred(op.unlink(), &need_sync).get(), r->mutable_unlink());
          break;
        case pb::BatchOp::kRmdir:
          s = DoRmdir(Deferred(op.rmdir(), &need_sync).get(), r->mutable_rmdir());
          break;
        case pb::BatchOp::kRename:
          s = DoRename(Deferred(op.rename(), &need_sync).get(), r->mutable_rename());
          break;
        case pb::BatchOp::OP_NOT_SET:
          s = grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "Batch: an op with no request");
          break;
      }
      if (!s.ok()) {
        SetCode(r, s);
      } else if (need_sync) {
        deferred.push_back(resp->results_size() - 1);
      }
    }
    if (!deferred.empty()) {
      Status st = ns_->Sync();
      if (!st.ok()) {
        // Committed but perhaps not durable: those ops fail (they may or
        // may not have happened); reads and unsynced ops keep their result.
        spdlog::warn("meta.rpc_error method=Batch error=\"{}\"", st.ToString());
        for (int i : deferred) SetCode(resp->mutable_results(i), ToGrpc(st));
      }
    }
    return grpc::Status::OK;
  }

  grpc::Status Subscribe(grpc::ServerContext* ctx, const pb::SubscribeRequest* req,
                         grpc::ServerWriter<pb::ChangeEventMessage>* writer) override {
    uint64_t after = req->from_seq();
    bool reset = after == 0 || req->epoch() != log_->epoch() || after > log_->last_seq();
    std::vector<std::pair<uint64_t, ChangeEvent>> batch;
    pb::ChangeEventMessage msg;
    while (!stopping_.load() && !ctx->IsCancelled()) {
      if (!reset && !log_->Read(after, kSubscribeBatch, &batch)) reset = true;
      if (reset) {
        // Events appended from here on have seq > after: none is lost.
        after = log_->last_seq();
        msg.Clear();
        msg.set_seq(after);
        msg.set_reset(true);
        msg.set_epoch(log_->epoch());
        if (!writer->Write(msg)) return grpc::Status::OK;  // the client went away
        reset = false;
        continue;
      }
      if (batch.empty()) {
        // Woken by a new event: wait a moment for the ones that follow it
        // (a create is two or three), so a busy stream costs one wake-up
        // and one send a window instead of one per event, on both ends.
        if (log_->WaitFor(after, kSubscribePoll)) std::this_thread::sleep_for(kSubscribeCoalesce);
        continue;
      }
      if (req->batched()) {
        // One message for the whole batch: gRPC's cost is per message.
        msg.Clear();
        msg.set_epoch(log_->epoch());
        for (const auto& [seq, e] : batch) SetChange(msg.add_changes(), seq, e);
        msg.set_seq(batch.back().first);
        if (!writer->Write(msg)) return grpc::Status::OK;
        after = batch.back().first;
        continue;
      }
      for (size_t i = 0; i < batch.size(); ++i) {
        const auto& [seq, e] = batch[i];
        msg.Clear();
        SetChange(&msg, seq, e);
        msg.set_epoch(log_->epoch());
        grpc::WriteOptions wo;
        if (i + 1 < batch.size()) wo.set_buffer_hint();  // flush once per batch
        if (!writer->Write(msg, wo)) return grpc::Status::OK;
        after = seq;
      }
    }
    if (stopping_.load()) return grpc::Status(grpc::StatusCode::UNAVAILABLE, "meta stopping");
    return grpc::Status::CANCELLED;
  }

 private:
  /// A frame RPC call: the request parsed as method's request message, the
  /// same handler as the gRPC method, the reply serialized.
  FrameRpcResult Dispatch(std::string_view method, std::string_view in, std::string* out) {
    using Handler = FrameRpcResult (*)(Service*, std::string_view, std::string*);
    static const std::unordered_map<std::string_view, Handler> kMethods = {
#define NEEDLEFS_FRAME(NAME, CALL)                                                       \
  {                                                                                      \
#NAME, [](Service* s, std::string_view in, std::string* out) {                         \
     return RunFrame<pb::NAME##Request, pb::NAME##Response>(                                   \
         in, out, [s](const pb::NAME##Request* q, pb::NAME##Response* r) { return CALL; }); \
   } \
  }
        NEEDLEFS_FRAME(Lookup, s->DoLookup(q, r)),
        NEEDLEFS_FRAME(GetAttr, s->DoGetAttr(q, r)),
        NEEDLEFS_FRAME(SetAttr, s->DoSetAttr(q, r)),
        NEEDLEFS_FRAME(Create, s->DoCreate(q, r)),
        NEEDLEFS_FRAME(Mkdir, s->DoMkdir(q, r)),
        NEEDLEFS_FRAME(Mknod, s->DoMknod(q, r)),
        NEEDLEFS_FRAME(Symlink, s->DoSymlink(q, r)),
        NEEDLEFS_FRAME(Readlink, s->DoReadlink(q, r)),
        NEEDLEFS_FRAME(Link, s->DoLink(q, r)),
        NEEDLEFS_FRAME(Unlink, s->DoUnlink(q, r)),
        NEEDLEFS_FRAME(Rmdir, s->DoRmdir(q, r)),
        NEEDLEFS_FRAME(Rename, s->DoRename(q, r)),
        NEEDLEFS_FRAME(ReadDir, s->ReadDir(nullptr, q, r)),
        NEEDLEFS_FRAME(Access, s->DoAccess(q, r)),
        NEEDLEFS_FRAME(StatFs, s->DoStatFs(q, r)),
        NEEDLEFS_FRAME(SetXattr, s->DoSetXattr(q, r)),
        NEEDLEFS_FRAME(GetXattr, s->DoGetXattr(q, r)),
        NEEDLEFS_FRAME(ListXattr, s->DoListXattr(q, r)),
        NEEDLEFS_FRAME(RemoveXattr, s->DoRemoveXattr(q, r)),
        NEEDLEFS_FRAME(AddChunks, s->DoAddChunks(q, r)),
        NEEDLEFS_FRAME(Compose, s->DoCompose(q, r)),
        NEEDLEFS_FRAME(Sync, s->Sync(nullptr, q, r)),
        NEEDLEFS_FRAME(ReadChunks, s->ReadChunks(nullptr, q, r)),
        NEEDLEFS_FRAME(OpenSession, s->OpenSession(nullptr, q, r)),
        NEEDLEFS_FRAME(RenewSession, s->RenewSession(nullptr, q, r)),
        NEEDLEFS_FRAME(CloseSession, s->CloseSession(nullptr, q, r)),
        NEEDLEFS_FRAME(OpenFile, s->OpenFile(nullptr, q, r)),
        NEEDLEFS_FRAME(ReleaseFile, s->ReleaseFile(nullptr, q, r)),
        NEEDLEFS_FRAME(ExpireSessions, s->ExpireSessions(nullptr, q, r)),
        NEEDLEFS_FRAME(PeekGarbage, s->PeekGarbage(nullptr, q, r)),
        NEEDLEFS_FRAME(AckGarbage, s->AckGarbage(nullptr, q, r)),
#undef NEEDLEFS_FRAME
        {"Batch",
         [](Service* s, std::string_view in, std::string* out) {
           return RunFrame<pb::BatchRequest, pb::BatchResponse>(
               in, out, [s](const pb::BatchRequest* q, pb::BatchResponse* r) {
                 return s->RunBatch(std::chrono::system_clock::time_point::max(), q, r, false);
               });
         }},
        {"BatchRead",
         [](Service* s, std::string_view in, std::string* out) {
           return RunFrame<pb::BatchRequest, pb::BatchResponse>(
               in, out, [s](const pb::BatchRequest* q, pb::BatchResponse* r) {
                 return s->RunBatch(std::chrono::system_clock::time_point::max(), q, r, true);
               });
         }},
    };
    auto it = kMethods.find(method);
    if (it == kMethods.end()) {
      return {grpc::StatusCode::UNIMPLEMENTED, "no method " + std::string(method)};
    }
    // Per method: calls by code and latency, made once for every method.
    struct Meter {
      prometheus::Counter* ok;
      prometheus::Counter* failed;
      prometheus::Histogram* seconds;
    };
    static const std::unordered_map<std::string_view, Meter> kMeters = [] {
      std::unordered_map<std::string_view, Meter> m;
      std::vector<double> buckets{0.00001, 0.000025, 0.00005};
      for (double b : Metrics::LatencyBuckets()) buckets.push_back(b);
      for (const auto& [name, handler] : kMethods) {
        const std::string n(name);
        m[name] = {&Metrics::Global().Counter(
                       "needlefs_meta_frame_requests_total",
                       "Calls served through the frame RPC (its port, or in-process)",
                       {{"method", n}, {"result", "ok"}}),
                   &Metrics::Global().Counter(
                       "needlefs_meta_frame_requests_total",
                       "Calls served through the frame RPC (its port, or in-process)",
                       {{"method", n}, {"result", "error"}}),
                   &Metrics::Global().Histogram(
                       "needlefs_meta_frame_request_seconds",
                       "Time to serve a frame RPC call (its port, or in-process), seconds",
                       {{"method", n}}, buckets)};
      }
      return m;
    }();
    const auto start = std::chrono::steady_clock::now();
    FrameRpcResult r = it->second(this, in, out);
    const Meter& meter = kMeters.at(method);
    (r.code == 0 ? meter.ok : meter.failed)->Increment();
    meter.seconds->Observe(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    return r;
  }

  template <typename Req, typename Resp, typename Fn>
  static FrameRpcResult RunFrame(std::string_view in, std::string* out, Fn&& fn) {
    Req req;
    if (in.size() > static_cast<size_t>(std::numeric_limits<int>::max()) ||
        !req.ParseFromArray(in.data(), static_cast<int>(in.size()))) {
      return {grpc::StatusCode::INVALID_ARGUMENT, "cannot parse the request"};
    }
    Resp resp;
    grpc::Status s = fn(&req, &resp);
    if (!s.ok()) return {s.error_code(), s.error_message()};
    resp.SerializeToString(out);
    return {};
  }

  /// Runs the change `fn(req, resp)` on the change pool.
  template <typename Req, typename Resp>
  grpc::ServerUnaryReactor* Change(grpc::CallbackServerContext* ctx, const Req* req, Resp* resp,
                                   grpc::Status (Service::*fn)(const Req*, Resp*)) {
    return OnPool(ctx, [this, req, resp, fn] { return (this->*fn)(req, resp); });
  }

  /// Runs `run` on the change pool and finishes the call with its status
  /// (RESOURCE_EXHAUSTED when the pool's queue is full, UNKNOWN when it
  /// throws).
  grpc::ServerUnaryReactor* OnPool(grpc::CallbackServerContext* ctx,
                                   std::function<grpc::Status()> run) {
    grpc::ServerUnaryReactor* r = ctx->DefaultReactor();
    const bool queued = change_pool_.Submit([r, run = std::move(run)] {
      grpc::Status s;
      try {
        s = run();
      } catch (const std::exception& e) {
        s = grpc::Status(grpc::StatusCode::UNKNOWN, std::string("meta failed: ") + e.what());
      }
      r->Finish(s);
    });
    if (!queued) {
      r->Finish(
          grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED, "meta: too many changes queued"));
    }
    return r;
  }

  Namespace* ns_;
  ChangeLog* log_;
  const uint64_t max_inline_bytes_;
  std::atomic<bool> stopping_{false};
  /// Runs the gRPC calls that change the namespace, off gRPC's callback
  /// threads (a change may wait on a WAL sync, or on a row lock a synced
  /// change holds); each task finishes its call's reactor itself.
  TaskPool change_pool_;
  // Last, so it ends first: its threads call into the members above.
  std::unique_ptr<FrameRpcServer> frame_;
};

}  // namespace

StatusOr<std::unique_ptr<MetaGrpcServer>> MetaGrpcServer::Start(Namespace* ns, ChangeLog* log,
                                                                const std::string& ip,
                                                                uint16_t port,
                                                                const MetaGrpcOptions& options) {
  if (options.max_threads < 2) return Status::InvalidArgument("meta: max_threads must be >= 2");
  if (options.max_receive_message_bytes <= 0) {
    return Status::InvalidArgument("meta: max_receive_message_bytes must be > 0");
  }
  if (options.frame_port < -1 || options.frame_port > 65535) {
    return Status::InvalidArgument("meta: frame_port must be -1..65535");
  }
  auto service = std::make_unique<Service>(ns, log, options.max_inline_bytes);
  const auto max_request = static_cast<uint32_t>(options.max_receive_message_bytes);
  if (options.frame_port > 0) {
    NEEDLEFS_RETURN_IF_ERROR(
        service->StartFrameRpc(ip, static_cast<uint16_t>(options.frame_port), max_request));
  } else if (options.frame_port == 0) {
    // The gRPC port + 100 (one rule for firewalls; + 1 is the next meta of
    // scripts/local-cluster), else any free port.
    Status st = port != 0 && port <= 65435
                    ? service->StartFrameRpc(ip, static_cast<uint16_t>(port + 100), max_request)
                    : Status::Unavailable("no fixed gRPC port");
    if (!st.ok()) st = service->StartFrameRpc(ip, 0, max_request);
    if (!st.ok()) spdlog::warn("meta: no frame RPC port, gRPC only: {}", st.ToString());
  }
  GrpcServerOptions go;
  go.max_receive_message_bytes = options.max_receive_message_bytes;
  go.max_threads = options.max_threads;
  // Writes block in the WAL sync: keep enough idle threads for a busy
  // client set instead of starting and ending one per call.
  go.max_idle_threads = kMetaIdleThreads;
  // Clients keepalive-ping idle Subscribe streams (meta_client.cc) to notice
  // a dead server: accept those pings rather than answer with GOAWAY.
  go.accept_keepalive_pings = true;
  go.name = "needlefs-meta";
  NEEDLEFS_ASSIGN_OR_RETURN(auto server, GrpcServer::Start({service.get()}, ip, port, go));
  return std::unique_ptr<MetaGrpcServer>(new GrpcServiceHost<MetaGrpcServer, Service>(
      std::move(service), std::move(server), [](Service& s) { s.Stop(); }));
}

}  // namespace needlefs
