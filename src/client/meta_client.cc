// MetaClient over gRPC: converts to the request message, calls the stub,
// turns errno_value into Status::Posix and transport failures into Status
// (FromGrpc, common/grpc_server.h), converts the reply back.
#include "client/meta_client.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <limits>
#include <mutex>
#include <set>
#include <thread>
#include <type_traits>

#include "common/frame_rpc.h"
#include "common/grpc_server.h"
#include "common/http.h"
#include "common/logging.h"
#include "meta.grpc.pb.h"
#include "meta_convert.h"

namespace needlefs {
namespace {

namespace pb = ::needlefs::meta;

/// Largest reply accepted (a ReadDir plus of 65536 entries is ~10 MiB).
constexpr int kMaxReceiveMessageBytes = 64 << 20;
/// How long calls use gRPC after the frame RPC port could not be reached.
constexpr std::chrono::seconds kFrameRetry{30};
/// The ChangeEvent of one change of the stream: a ChangeEventMessage (one
/// change per message) or a ChangeRecord (a batch's); its name is moved out.
template <typename Change>
ChangeEvent ToChangeEvent(Change& c) {
  ChangeEvent e;
  e.kind = static_cast<ChangeEvent::Kind>(c.kind());
  e.ino = InodeId(c.ino());
  e.parent = InodeId(c.parent());
  e.name = std::move(*c.mutable_name());
  return e;
}

/// How long Subscribe sleeps when its stream has nothing to read.
constexpr std::chrono::milliseconds kSubscribeIdlePoll{10};

/// Most ops MetaClient puts in one Batch call (the server takes 1024).
constexpr size_t kMaxBatchOps = 64;
/// How long the first waiting call waits for a free slot before its batch
/// goes out anyway, beyond MetaClientOptions::max_in_flight.
constexpr std::chrono::milliseconds kMaxSlotWait{5};

/// The field of `Container` (BatchOp or BatchResult) whose message type is
/// M: each request and response type has exactly one there.
template <typename M, typename Container>
const google::protobuf::FieldDescriptor* OneofFieldOf() {
  static const google::protobuf::FieldDescriptor* const field = [] {
    const google::protobuf::Descriptor* d = Container::descriptor();
    for (int i = 0; i < d->field_count(); ++i) {
      if (d->field(i)->message_type() == M::descriptor()) return d->field(i);
    }
    return static_cast<const google::protobuf::FieldDescriptor*>(nullptr);
  }();
  return field;
}

/// The slot of `op` for a request of type Req (which it then carries).
template <typename Req>
Req* BatchField(pb::BatchOp* op) {
  static_assert(std::is_base_of_v<google::protobuf::Message, Req>);
  return static_cast<Req*>(
      op->GetReflection()->MutableMessage(op, OneofFieldOf<Req, pb::BatchOp>()));
}

/// Moves the response of type Resp out of `r`; false if `r` has none.
template <typename Resp>
bool TakeBatchResult(pb::BatchResult* r, Resp* out) {
  const google::protobuf::FieldDescriptor* f = OneofFieldOf<Resp, pb::BatchResult>();
  if (f == nullptr || !r->GetReflection()->HasField(*r, f)) return false;
  out->Swap(static_cast<Resp*>(r->GetReflection()->MutableMessage(r, f)));
  return true;
}

/// A chunk of meta's reply; one whose file id does not parse is EIO (a bug
/// or version skew on meta's side, not the caller's error).
StatusOr<Chunk> MetaChunk(const pb::Chunk& c) {
  auto chunk = FromPb(c);
  if (!chunk.ok()) return Status::Posix(EIO, "meta sent " + chunk.status().ToString());
  return chunk;
}

uint32_t ClampU32(size_t n) {
  return static_cast<uint32_t>(std::min<size_t>(n, std::numeric_limits<uint32_t>::max()));
}

class GrpcMetaClient final : public MetaClient {
 public:
  GrpcMetaClient(std::shared_ptr<grpc::Channel> channel, std::string host,
                 const MetaClientOptions& options)
      : stub_(pb::MetaService::NewStub(channel)),
        host_(std::move(host)),
        frame_wanted_(options.frame_rpc),
        timeout_ms_(options.timeout_ms),
        max_in_flight_(options.max_in_flight) {}

  StatusOr<InodeAttr> Lookup(const RequestContext& ctx, InodeId parent,
                             const std::string& name) override {
    pb::LookupRequest req;
    ToPb(ctx, req.mutable_caller());
    req.set_parent(parent.value);
    req.set_name(name);
    pb::LookupResponse resp;
    NEEDLEFS_RETURN_IF_ERROR(Call("Lookup", req, &resp, [&](grpc::ClientContext* c) {
      return stub_->Lookup(c, req, &resp);
    }));
    return FromPb(resp.attr());
  }

  StatusOr<InodeAttr> GetAttr(InodeId ino) override { return DoGetAttr(ino, Generation()); }

  StatusOr<InodeAttr> GetAttrWithChunks(InodeId ino, uint32_t max_chunks,
                                        std::optional<std::vector<Chunk>>* chunks) override {
    chunks->reset();
    pb::GetAttrRequest req;
    req.set_ino(ino.value);
    req.set_max_chunks(max_chunks);
    pb::GetAttrResponse resp;
    NEEDLEFS_RETURN_IF_ERROR(Call("GetAttr", req, &resp, [&](grpc::ClientContext* c) {
      return stub_->GetAttr(c, req, &resp);
    }));
    if (resp.has_chunks()) {
      chunks->emplace();
      (*chunks)->reserve(static_cast<size_t>(resp.chunks_size()));
      for (const auto& c : resp.chunks()) {
        NEEDLEFS_ASSIGN_OR_RETURN(Chunk chunk, MetaChunk(c));
        (*chunks)->push_back(std::move(chunk));
      }
    }
    return FromPb(resp.attr());
  }

  StatusOr<InodeAttr> GetAttrChecked(InodeId ino, Generation generation) override {
    return DoGetAttr(ino, generation);
  }

  StatusOr<InodeAttr> SetAttr(const RequestContext& ctx, InodeId ino, const SetAttrRequest& sa,
                              ChangeInfo* info) override {
    pb::SetAttrRequest req;
    ToPb(ctx, req.mutable_caller());
    if (info) req.mutable_caller()->set_want_change_info(true);
    req.set_ino(ino.value);
    ToPb(sa, &req);
    pb::SetAttrResponse resp;
    Status st = Call("SetAttr", req, &resp,
                     [&](grpc::ClientContext* c) { return stub_->SetAttr(c, req, &resp); });
    if (info) *info = FromPb(resp.change());
    NEEDLEFS_RETURN_IF_ERROR(st);
    return FromPb(resp.attr());
  }

  StatusOr<InodeAttr> Create(const RequestContext& ctx, InodeId parent, const std::string& name,
                             uint32_t mode, bool exclusive, bool* created, ChangeInfo* info,
                             std::optional<uint64_t> verifier) override {
    pb::CreateRequest req;
    ToPb(ctx, req.mutable_caller());
    if (info) req.mutable_caller()->set_want_change_info(true);
    req.set_parent(parent.value);
    req.set_name(name);
    req.set_mode(mode);
    req.set_exclusive(exclusive);
    if (verifier) req.set_verifier(*verifier);
    pb::CreateResponse resp;
    Status st = Call("Create", req, &resp,
                     [&](grpc::ClientContext* c) { return stub_->Create(c, req, &resp); });
    if (info) *info = FromPb(resp.change());
    NEEDLEFS_RETURN_IF_ERROR(st);
    if (created) *created = resp.created();
    return FromPb(resp.attr());
  }

  StatusOr<InodeAttr> Mkdir(const RequestContext& ctx, InodeId parent, const std::string& name,
                            uint32_t mode, ChangeInfo* info) override {
    pb::MkdirRequest req;
    ToPb(ctx, req.mutable_caller());
    if (info) req.mutable_caller()->set_want_change_info(true);
    req.set_parent(parent.value);
    req.set_name(name);
    req.set_mode(mode);
    pb::MkdirResponse resp;
    Status st = Call("Mkdir", req, &resp,
                     [&](grpc::ClientContext* c) { return stub_->Mkdir(c, req, &resp); });
    if (info) *info = FromPb(resp.change());
    NEEDLEFS_RETURN_IF_ERROR(st);
    return FromPb(resp.attr());
  }

  StatusOr<InodeAttr> Mknod(const RequestContext& ctx, InodeId parent, const std::string& name,
                            FileType type, uint32_t mode, uint64_t rdev,
                            ChangeInfo* info) override {
    pb::MknodRequest req;
    ToPb(ctx, req.mutable_caller());
    if (info) req.mutable_caller()->set_want_change_info(true);
    req.set_parent(parent.value);
    req.set_name(name);
    req.set_type(static_cast<uint32_t>(type));
    req.set_mode(mode);
    req.set_rdev(rdev);
    pb::MknodResponse resp;
    Status st = Call("Mknod", req, &resp,
                     [&](grpc::ClientContext* c) { return stub_->Mknod(c, req, &resp); });
    if (info) *info = FromPb(resp.change());
    NEEDLEFS_RETURN_IF_ERROR(st);
    return FromPb(resp.attr());
  }

  StatusOr<InodeAttr> Symlink(const RequestContext& ctx, InodeId parent, const std::string& name,
                              const std::string& target, ChangeInfo* info) override {
    pb::SymlinkRequest req;
    ToPb(ctx, req.mutable_caller());
    if (info) req.mutable_caller()->set_want_change_info(true);
    req.set_parent(parent.value);
    req.set_name(name);
    req.set_target(target);
    pb::SymlinkResponse resp;
    Status st = Call("Symlink", req, &resp,
                     [&](grpc::ClientContext* c) { return stub_->Symlink(c, req, &resp); });
    if (info) *info = FromPb(resp.change());
    NEEDLEFS_RETURN_IF_ERROR(st);
    return FromPb(resp.attr());
  }

  StatusOr<std::string> Readlink(InodeId ino) override {
    pb::ReadlinkRequest req;
    req.set_ino(ino.value);
    pb::ReadlinkResponse resp;
    NEEDLEFS_RETURN_IF_ERROR(Unary("Readlink", req, &resp, [&](grpc::ClientContext* c) {
      return stub_->Readlink(c, req, &resp);
    }));
    return std::move(*resp.mutable_target());
  }

  StatusOr<InodeAttr> Link(const RequestContext& ctx, InodeId ino, InodeId new_parent,
                           const std::string& new_name, ChangeInfo* info) override {
    pb::LinkRequest req;
    ToPb(ctx, req.mutable_caller());
    if (info) req.mutable_caller()->set_want_change_info(true);
    req.set_ino(ino.value);
    req.set_new_parent(new_parent.value);
    req.set_new_name(new_name);
    pb::LinkResponse resp;
    Status st = Call("Link", req, &resp,
                     [&](grpc::ClientContext* c) { return stub_->Link(c, req, &resp); });
    if (info) *info = FromPb(resp.change());
    NEEDLEFS_RETURN_IF_ERROR(st);
    return FromPb(resp.attr());
  }

  Status Unlink(const RequestContext& ctx, InodeId parent, const std::string& name,
                ChangeInfo* info) override {
    pb::UnlinkRequest req;
    ToPb(ctx, req.mutable_caller());
    if (info) req.mutable_caller()->set_want_change_info(true);
    req.set_parent(parent.value);
    req.set_name(name);
    pb::UnlinkResponse resp;
    Status st = Call("Unlink", req, &resp,
                     [&](grpc::ClientContext* c) { return stub_->Unlink(c, req, &resp); });
    if (info) *info = FromPb(resp.change());
    return st;
  }

  Status Rmdir(const RequestContext& ctx, InodeId parent, const std::string& name,
               ChangeInfo* info) override {
    pb::RmdirRequest req;
    ToPb(ctx, req.mutable_caller());
    if (info) req.mutable_caller()->set_want_change_info(true);
    req.set_parent(parent.value);
    req.set_name(name);
    pb::RmdirResponse resp;
    Status st = Call("Rmdir", req, &resp,
                     [&](grpc::ClientContext* c) { return stub_->Rmdir(c, req, &resp); });
    if (info) *info = FromPb(resp.change());
    return st;
  }

  Status Rename(const RequestContext& ctx, InodeId parent, const std::string& name,
                InodeId new_parent, const std::string& new_name, uint32_t flags,
                ChangeInfo* info) override {
    pb::RenameRequest req;
    ToPb(ctx, req.mutable_caller());
    if (info) req.mutable_caller()->set_want_change_info(true);
    req.set_parent(parent.value);
    req.set_name(name);
    req.set_new_parent(new_parent.value);
    req.set_new_name(new_name);
    req.set_flags(flags);
    pb::RenameResponse resp;
    Status st = Call("Rename", req, &resp,
                     [&](grpc::ClientContext* c) { return stub_->Rename(c, req, &resp); });
    if (info) *info = FromPb(resp.change());
    return st;
  }

  StatusOr<ReadDirResult> ReadDir(const RequestContext& ctx, InodeId dir, uint64_t cookie,
                                  size_t max_entries, bool plus) override {
    pb::ReadDirRequest req;
    ToPb(ctx, req.mutable_caller());
    req.set_dir(dir.value);
    req.set_cookie(cookie);
    req.set_max_entries(ClampU32(max_entries));
    req.set_plus(plus);
    pb::ReadDirResponse resp;
    NEEDLEFS_RETURN_IF_ERROR(Unary("ReadDir", req, &resp, [&](grpc::ClientContext* c) {
      return stub_->ReadDir(c, req, &resp);
    }));
    ReadDirResult out;
    out.entries.reserve(resp.entries_size());
    for (pb::DirEntry& e : *resp.mutable_entries()) {
      DirEntry d;
      d.name = std::move(*e.mutable_name());
      d.ino = InodeId(e.ino());
      d.type = static_cast<FileType>(e.type());
      d.cookie = e.cookie();
      if (e.has_attr()) d.attr = FromPb(e.attr());
      out.entries.push_back(std::move(d));
    }
    out.eof = resp.eof();
    return out;
  }

  Status Access(const RequestContext& ctx, InodeId ino, int mask) override {
    pb::AccessRequest req;
    ToPb(ctx, req.mutable_caller());
    req.set_ino(ino.value);
    req.set_mask(mask);
    pb::AccessResponse resp;
    return Unary("Access", req, &resp,
                 [&](grpc::ClientContext* c) { return stub_->Access(c, req, &resp); });
  }

  Status Sync() override {
    pb::SyncRequest req;
    pb::SyncResponse resp;
    return Unary("Sync", req, &resp,
                 [&](grpc::ClientContext* c) { return stub_->Sync(c, req, &resp); });
  }

  StatusOr<StatFs> GetStatFs() override {
    pb::StatFsRequest req;
    pb::StatFsResponse resp;
    NEEDLEFS_RETURN_IF_ERROR(Unary("StatFs", req, &resp, [&](grpc::ClientContext* c) {
      return stub_->StatFs(c, req, &resp);
    }));
    StatFs out;
    out.inodes = resp.inodes();
    out.bytes_used = resp.bytes_used();
    return out;
  }

  Status SetXattr(const RequestContext& ctx, InodeId ino, const std::string& name,
                  const std::string& value, int flags) override {
    pb::SetXattrRequest req;
    ToPb(ctx, req.mutable_caller());
    req.set_ino(ino.value);
    req.set_name(name);
    req.set_value(value);
    req.set_flags(flags);
    pb::SetXattrResponse resp;
    return Unary("SetXattr", req, &resp,
                 [&](grpc::ClientContext* c) { return stub_->SetXattr(c, req, &resp); });
  }

  StatusOr<std::string> GetXattr(const RequestContext& ctx, InodeId ino,
                                 const std::string& name) override {
    pb::GetXattrRequest req;
    ToPb(ctx, req.mutable_caller());
    req.set_ino(ino.value);
    req.set_name(name);
    pb::GetXattrResponse resp;
    NEEDLEFS_RETURN_IF_ERROR(Unary("GetXattr", req, &resp, [&](grpc::ClientContext* c) {
      return stub_->GetXattr(c, req, &resp);
    }));
    return std::move(*resp.mutable_value());
  }

  StatusOr<std::vector<std::string>> ListXattr(const RequestContext& ctx, InodeId ino) override {
    pb::ListXattrRequest req;
    ToPb(ctx, req.mutable_caller());
    req.set_ino(ino.value);
    pb::ListXattrResponse resp;
    NEEDLEFS_RETURN_IF_ERROR(Unary("ListXattr", req, &resp, [&](grpc::ClientContext* c) {
      return stub_->ListXattr(c, req, &resp);
    }));
    std::vector<std::string> out;
    out.reserve(resp.names_size());
    for (std::string& n : *resp.mutable_names()) out.push_back(std::move(n));
    return out;
  }

  Status RemoveXattr(const RequestContext& ctx, InodeId ino, const std::string& name) override {
    pb::RemoveXattrRequest req;
    ToPb(ctx, req.mutable_caller());
    req.set_ino(ino.value);
    req.set_name(name);
    pb::RemoveXattrResponse resp;
    return Unary("RemoveXattr", req, &resp,
                 [&](grpc::ClientContext* c) { return stub_->RemoveXattr(c, req, &resp); });
  }

  StatusOr<InodeAttr> Compose(const RequestContext& ctx, InodeId target, InodeId parts_dir,
                              const std::vector<std::string>& parts, ChangeInfo* info) override {
    pb::ComposeRequest req;
    ToPb(ctx, req.mutable_caller());
    if (info) req.mutable_caller()->set_want_change_info(true);
    req.set_target(target.value);
    req.set_parts_dir(parts_dir.value);
    for (const auto& p : parts) req.add_parts(p);
    pb::ComposeResponse resp;
    Status st = Unary("Compose", req, &resp,
                      [&](grpc::ClientContext* c) { return stub_->Compose(c, req, &resp); });
    if (info) *info = FromPb(resp.change());
    NEEDLEFS_RETURN_IF_ERROR(st);
    return FromPb(resp.attr());
  }

  StatusOr<InodeAttr> AddChunks(InodeId ino, const std::vector<Chunk>& chunks, uint64_t min_size,
                                bool sync, const SetAttrRequest* attrs,
                                const RequestContext* attrs_ctx) override {
    pb::AddChunksRequest req;
    req.set_ino(ino.value);
    req.set_no_sync(!sync);
    if (attrs && attrs_ctx) {
      pb::SetAttrRequest* a = req.mutable_attrs();
      ToPb(*attrs_ctx, a->mutable_caller());
      ToPb(*attrs, a);
    }
    req.mutable_chunks()->Reserve(static_cast<int>(chunks.size()));
    for (const Chunk& ch : chunks) ToPb(ch, req.add_chunks());
    req.set_min_size(min_size);
    pb::AddChunksResponse resp;
    NEEDLEFS_RETURN_IF_ERROR(Unary("AddChunks", req, &resp, [&](grpc::ClientContext* c) {
      return stub_->AddChunks(c, req, &resp);
    }));
    return FromPb(resp.attr());
  }

  StatusOr<std::vector<Chunk>> ReadChunks(InodeId ino, uint64_t offset, uint64_t length) override {
    pb::ReadChunksRequest req;
    req.set_ino(ino.value);
    req.set_offset(offset);
    req.set_length(length);
    pb::ReadChunksResponse resp;
    NEEDLEFS_RETURN_IF_ERROR(Unary("ReadChunks", req, &resp, [&](grpc::ClientContext* c) {
      return stub_->ReadChunks(c, req, &resp);
    }));
    std::vector<Chunk> out;
    out.reserve(resp.chunks_size());
    for (const pb::Chunk& ch : resp.chunks()) {
      NEEDLEFS_ASSIGN_OR_RETURN(Chunk chunk, MetaChunk(ch));
      out.push_back(std::move(chunk));
    }
    return out;
  }

  StatusOr<uint64_t> OpenSession(const std::string& client, int64_t lease_ms) override {
    pb::OpenSessionRequest req;
    req.set_client(client);
    req.set_lease_ms(lease_ms);
    pb::OpenSessionResponse resp;
    NEEDLEFS_RETURN_IF_ERROR(Unary("OpenSession", req, &resp, [&](grpc::ClientContext* c) {
      return stub_->OpenSession(c, req, &resp);
    }));
    return resp.session();
  }

  Status RenewSession(uint64_t session, int64_t lease_ms) override {
    pb::RenewSessionRequest req;
    req.set_session(session);
    req.set_lease_ms(lease_ms);
    pb::RenewSessionResponse resp;
    return Unary("RenewSession", req, &resp,
                 [&](grpc::ClientContext* c) { return stub_->RenewSession(c, req, &resp); });
  }

  Status CloseSession(uint64_t session) override {
    pb::CloseSessionRequest req;
    req.set_session(session);
    pb::CloseSessionResponse resp;
    return Unary("CloseSession", req, &resp,
                 [&](grpc::ClientContext* c) { return stub_->CloseSession(c, req, &resp); });
  }

  Status OpenFile(uint64_t session, InodeId ino) override {
    pb::OpenFileRequest req;
    req.set_session(session);
    req.set_ino(ino.value);
    pb::OpenFileResponse resp;
    return Unary("OpenFile", req, &resp,
                 [&](grpc::ClientContext* c) { return stub_->OpenFile(c, req, &resp); });
  }

  Status ReleaseFile(uint64_t session, InodeId ino) override {
    pb::ReleaseFileRequest req;
    req.set_session(session);
    req.set_ino(ino.value);
    pb::ReleaseFileResponse resp;
    return Unary("ReleaseFile", req, &resp,
                 [&](grpc::ClientContext* c) { return stub_->ReleaseFile(c, req, &resp); });
  }

  StatusOr<size_t> ExpireSessions(int64_t now_ns) override {
    pb::ExpireSessionsRequest req;
    req.set_now_ns(now_ns);
    pb::ExpireSessionsResponse resp;
    NEEDLEFS_RETURN_IF_ERROR(Unary("ExpireSessions", req, &resp, [&](grpc::ClientContext* c) {
      return stub_->ExpireSessions(c, req, &resp);
    }));
    return static_cast<size_t>(resp.expired());
  }

  StatusOr<std::vector<std::pair<uint64_t, std::string>>> PeekGarbage(size_t max) override {
    pb::PeekGarbageRequest req;
    req.set_max(ClampU32(max));
    pb::PeekGarbageResponse resp;
    NEEDLEFS_RETURN_IF_ERROR(Unary("PeekGarbage", req, &resp, [&](grpc::ClientContext* c) {
      return stub_->PeekGarbage(c, req, &resp);
    }));
    std::vector<std::pair<uint64_t, std::string>> out;
    out.reserve(resp.entries_size());
    for (pb::GarbageEntry& e : *resp.mutable_entries()) {
      out.emplace_back(e.seq(), std::move(*e.mutable_file_id()));
    }
    return out;
  }

  Status AckGarbage(uint64_t seq) override {
    pb::AckGarbageRequest req;
    req.set_seq(seq);
    pb::AckGarbageResponse resp;
    return Unary("AckGarbage", req, &resp,
                 [&](grpc::ClientContext* c) { return stub_->AckGarbage(c, req, &resp); });
  }

  // The stream is read through its own completion queue, polled without
  // waiting inside gRPC (zero deadline, then a short sleep). A thread
  // blocked in a gRPC wait takes part in polling the process's sockets: a
  // Subscribe that blocked there received other threads' unary replies and
  // had to wake them, two more context switches per call (measured: FUSE
  // creates 1,050/s with a blocked subscriber, 1,470/s without). Events
  // wait at most kSubscribeIdlePoll longer.
  Status Subscribe(
      uint64_t from_seq,
      const std::function<bool(uint64_t, const ChangeEvent&, bool)>& on_event) override {
    pb::SubscribeRequest req;
    req.set_from_seq(from_seq);
    req.set_batched(true);
    grpc::ClientContext ctx;
    {
      std::lock_guard<std::mutex> lock(mu_);
      // A CancelSubscribe that ran before this call registered is not lost.
      if (cancelled_) return Status(StatusCode::kCancelled, "Subscribe: cancelled");
      if (from_seq != 0) req.set_epoch(epoch_);
      streams_.insert(&ctx);
    }
    grpc::CompletionQueue cq;
    auto reader = stub_->PrepareAsyncSubscribe(&ctx, req, &cq);
    // Tags: each operation has one in flight at a time.
    void* const kStart = reinterpret_cast<void*>(1);
    void* const kRead = reinterpret_cast<void*>(2);
    void* const kFinish = reinterpret_cast<void*>(3);
    // Waits for the completion of `want`; false if it failed.
    auto wait = [&](void* want) {
      for (;;) {
        void* tag = nullptr;
        bool ok = false;
        const auto r = cq.AsyncNext(&tag, &ok, gpr_time_0(GPR_CLOCK_MONOTONIC));
        if (r == grpc::CompletionQueue::GOT_EVENT) {
          if (tag == want) return ok;
          continue;  // not expected: one op at a time
        }
        if (r == grpc::CompletionQueue::SHUTDOWN) return false;
        std::this_thread::sleep_for(kSubscribeIdlePoll);
      }
    };
    pb::ChangeEventMessage msg;
    bool stopped = false;
    reader->StartCall(kStart);
    if (wait(kStart)) {
      for (;;) {
        reader->Read(&msg, kRead);
        if (!wait(kRead)) break;
        {
          std::lock_guard<std::mutex> lock(mu_);
          epoch_ = msg.epoch();
        }
        if (!msg.reset() && msg.changes_size() > 0) {
          // A batch (asked for with `batched`): each change in order.
          for (pb::ChangeRecord& c : *msg.mutable_changes()) {
            if (!on_event(c.seq(), ToChangeEvent(c), false)) {
              stopped = true;
              break;
            }
          }
        } else if (!on_event(msg.seq(), msg.reset() ? ChangeEvent{} : ToChangeEvent(msg),
                             msg.reset())) {
          stopped = true;
        }
        if (stopped) {
          ctx.TryCancel();
          break;
        }
      }
    }
    grpc::Status gs;
    reader->Finish(&gs, kFinish);
    (void)wait(kFinish);
    {
      std::lock_guard<std::mutex> lock(mu_);
      streams_.erase(&ctx);
    }
    cq.Shutdown();
    void* tag;
    bool ok;
    while (cq.Next(&tag, &ok)) {
    }
    if (stopped) return Status::OK();
    if (gs.ok()) return Status::Unavailable("Subscribe: the server ended the stream");
    return FromGrpc(gs, "Subscribe");
  }

  void CancelSubscribe() override {
    std::lock_guard<std::mutex> lock(mu_);
    cancelled_ = true;
    for (grpc::ClientContext* ctx : streams_) ctx->TryCancel();
  }

 private:
  /// Runs one unary call: over the frame RPC port when the server has one
  /// (Frame()), else `rpc(ctx)` over gRPC with the deadline. Returns the
  /// transport's status (a frame call's gRPC code as gRPC's).
  template <typename Req, typename Resp, typename Rpc>
  grpc::Status Invoke(const char* method, const Req& req, Resp* resp, Rpc&& rpc) {
    if (std::shared_ptr<FrameRpcClient> frame = Frame()) {
      std::string in, out;
      if (!req.SerializeToString(&in)) {
        return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "cannot serialize the request");
      }
      bool sent = false;
      auto r = frame->Call(method, in, &out, timeout_ms_, &sent, IsReadOnly(method));
      if (r.ok()) {
        if (r->code != 0) return grpc::Status(static_cast<grpc::StatusCode>(r->code), r->message);
        if (!resp->ParseFromString(out)) {
          return grpc::Status(grpc::StatusCode::INTERNAL, "cannot parse meta's reply");
        }
        return grpc::Status::OK;
      }
      if (sent) return ToGrpc(r.status());
      // Nothing ran (meta restarted on another port, is away, or refused
      // the connection): this call goes over gRPC, and so do the next for
      // a while before the port is asked for again.
      ForgetFrame(frame.get(), r.status());
    }
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(timeout_ms_));
    return rpc(&ctx);
  }

  /// Methods that change nothing: a frame call of one whose reused
  /// connection turned out closed goes once more (it cannot run twice).
  static bool IsReadOnly(std::string_view m) {
    return m == "Lookup" || m == "GetAttr" || m == "Readlink" || m == "ReadDir" || m == "Access" ||
           m == "StatFs" || m == "GetXattr" || m == "ListXattr" || m == "ReadChunks" ||
           m == "BatchRead";
  }

  /// Invoke; then the transport status, else resp's errno, decides.
  template <typename Req, typename Resp, typename Rpc>
  Status Unary(const char* method, const Req& req, Resp* resp, Rpc&& rpc) {
    grpc::Status gs = Invoke(method, req, resp, rpc);
    if (!gs.ok()) return FromGrpc(gs, method);
    if (resp->errno_value() != 0) return Status::Posix(resp->errno_value(), resp->error());
    return Status::OK();
  }

  /// The frame RPC client when meta announces a frame port, else null
  /// (gRPC). Meta is asked (ServerInfo, over gRPC, by one caller while the
  /// others use gRPC) at the first call, and again kFrameRetry after a
  /// failed connect or ask.
  std::shared_ptr<FrameRpcClient> Frame() {
    {
      std::lock_guard<std::mutex> g(frame_mu_);
      if (frame_) return frame_;
      if ((info_known_ && !frame_wanted_) || frame_asking_ ||
          std::chrono::steady_clock::now() < frame_retry_at_) {
        return nullptr;
      }
      frame_asking_ = true;
    }
    pb::ServerInfoResponse resp;
    grpc::Status gs = AskServerInfo(&resp);
    std::lock_guard<std::mutex> g(frame_mu_);
    frame_asking_ = false;
    if (gs.ok()) {
      info_known_ = true;
      TakeInfoLocked(resp);
      if (frame_wanted_ && resp.frame_port() != 0 && resp.frame_port() <= 65535) {
        frame_ = std::make_shared<FrameRpcClient>(host_, static_cast<uint16_t>(resp.frame_port()));
      } else {
        frame_wanted_ = false;  // meta has no port: gRPC for good
      }
    } else if (gs.error_code() == grpc::StatusCode::UNIMPLEMENTED) {
      info_known_ = true;  // an older meta: gRPC and no inline data, for good
      frame_wanted_ = false;
    } else {
      frame_retry_at_ = std::chrono::steady_clock::now() + kFrameRetry;  // meta is away
    }
    return frame_;
  }

  uint64_t MaxInlineBytes() override {
    AskInfoIfStale();
    std::lock_guard<std::mutex> g(frame_mu_);
    return max_inline_bytes_;
  }

  bool TakesCommitAttributes() override {
    AskInfoIfStale();
    std::lock_guard<std::mutex> g(frame_mu_);
    return commit_attributes_;
  }

  void RefreshServerInfo() override {
    std::lock_guard<std::mutex> g(frame_mu_);
    info_stale_ = true;
  }

  /// Frame() asks ServerInfo when nothing is known; a refreshed one asks
  /// again here (keeping the frame port in use).
  void AskInfoIfStale() {
    (void)Frame();
    {
      std::lock_guard<std::mutex> g(frame_mu_);
      if (!info_stale_) return;
      info_stale_ = false;
    }
    pb::ServerInfoResponse resp;
    if (AskServerInfo(&resp).ok()) {
      std::lock_guard<std::mutex> g(frame_mu_);
      TakeInfoLocked(resp);
    }
  }

  /// ServerInfo over gRPC, with the call deadline.
  grpc::Status AskServerInfo(pb::ServerInfoResponse* resp) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(timeout_ms_));
    return stub_->ServerInfo(&ctx, pb::ServerInfoRequest(), resp);
  }

  /// What meta announced, but for its port. REQUIRES: frame_mu_ held.
  void TakeInfoLocked(const pb::ServerInfoResponse& resp) {
    max_inline_bytes_ = resp.max_inline_bytes();
    commit_attributes_ = resp.add_chunks_attributes();
  }

  /// `failed` could not reach meta: unless another call replaced it
  /// already, calls use gRPC until kFrameRetry has passed.
  void ForgetFrame(FrameRpcClient* failed, const Status& why) {
    std::lock_guard<std::mutex> g(frame_mu_);
    if (frame_.get() != failed) return;
    spdlog::info("meta_client.frame_rpc_off for={}s: {}",
                 std::chrono::duration_cast<std::chrono::seconds>(kFrameRetry).count(),
                 why.ToString());
    frame_.reset();
    frame_retry_at_ = std::chrono::steady_clock::now() + kFrameRetry;
  }

  /// A call of a batchable method waiting to go out in a Batch call.
  struct Waiter {
    pb::BatchOp op;
    pb::BatchResult result;
    grpc::Status status;         // of the Batch call that carried op
    bool done = false;           // GUARDED_BY(batch_mu_)
    std::condition_variable cv;  // done, or op is first in line and a slot is free
  };

  /// Call for the namespace methods BatchOp can carry. While fewer than
  /// max_in_flight_ of them are in flight and none wait, the call goes out
  /// at once, alone. Otherwise it queues; the first in line sends the queue
  /// (up to kMaxBatchOps) as one Batch call when a slot frees, or after
  /// kMaxSlotWait without one (calls stuck in flight, say behind a slow
  /// WAL sync, must not hold up the rest), and each caller gets its own
  /// op's result back (BatchRequest in meta.proto).
  template <typename Req, typename Resp, typename Rpc>
  Status Call(const char* method, const Req& req, Resp* resp, Rpc&& rpc) {
    if (max_in_flight_ <= 0 || no_batch_.load(std::memory_order_relaxed)) {
      return Unary(method, req, resp, rpc);
    }
    std::unique_lock<std::mutex> l(batch_mu_);
    if (queue_.empty() && in_flight_ < max_in_flight_) {
      ++in_flight_;
      l.unlock();
      Status s = Unary(method, req, resp, rpc);
      l.lock();
      SlotFreedLocked();
      return s;
    }
    // Shared with the sender of its batch, which may still notify w.cv
    // after this call saw `done` and returned.
    auto shared = std::make_shared<Waiter>();
    Waiter& w = *shared;
    *BatchField<Req>(&w.op) = req;
    queue_.push_back(shared);
    // Every wait is timed, so a call that became first in line while no
    // slot was free sends its batch within 2 x kMaxSlotWait at the latest.
    bool waited_long = false;  // a wait ran out without a wake-up
    while (!w.done) {
      const bool first = !queue_.empty() && queue_.front() == shared;
      if (first && (in_flight_ < max_in_flight_ || waited_long)) {
        SendBatchLocked(l);
      } else {
        waited_long = w.cv.wait_for(l, kMaxSlotWait) == std::cv_status::timeout;
      }
    }
    l.unlock();
    // A meta without Batch (an older version) ran nothing: send it alone.
    if (w.status.error_code() == grpc::StatusCode::UNIMPLEMENTED) {
      return Unary(method, req, resp, rpc);
    }
    if (!w.status.ok()) return FromGrpc(w.status, method);
    if (w.result.code() != 0) {
      return FromGrpc(
          grpc::Status(static_cast<grpc::StatusCode>(w.result.code()), w.result.message()), method);
    }
    if (!TakeBatchResult(&w.result, resp)) {
      return Status::Internal(std::string(method) + ": the Batch reply lacks this op's result");
    }
    if (resp->errno_value() != 0) return Status::Posix(resp->errno_value(), resp->error());
    return Status::OK();
  }

  /// Sends the waiting ops (the caller's first) as one Batch call and hands
  /// each waiter its result. Called and returns with `l` held.
  void SendBatchLocked(std::unique_lock<std::mutex>& l) {
    std::vector<std::shared_ptr<Waiter>> batch;
    while (!queue_.empty() && batch.size() < kMaxBatchOps) {
      batch.push_back(queue_.front());
      queue_.pop_front();
    }
    ++in_flight_;
    if (!queue_.empty() && in_flight_ < max_in_flight_) queue_.front()->cv.notify_one();
    l.unlock();
    pb::BatchRequest req;
    req.mutable_ops()->Reserve(static_cast<int>(batch.size()));
    for (const auto& w : batch) req.add_ops()->Swap(&w->op);
    pb::BatchResponse resp;
    // Lookups and stats only: BatchRead, which the server answers inline.
    const bool reads = std::all_of(req.ops().begin(), req.ops().end(), IsBatchReadOp);
    grpc::Status gs =
        reads ? Invoke("BatchRead", req, &resp,
                       [&](grpc::ClientContext* c) { return stub_->BatchRead(c, req, &resp); })
              : Invoke("Batch", req, &resp,
                       [&](grpc::ClientContext* c) { return stub_->Batch(c, req, &resp); });
    if (gs.error_code() == grpc::StatusCode::UNIMPLEMENTED) {
      no_batch_.store(true, std::memory_order_relaxed);  // from now on, every call alone
    }
    if (gs.ok() && static_cast<size_t>(resp.results_size()) != batch.size()) {
      gs = grpc::Status(grpc::StatusCode::INTERNAL,
                        "Batch: " + std::to_string(resp.results_size()) + " results for " +
                            std::to_string(batch.size()) + " ops");
    }
    l.lock();
    for (size_t i = 0; i < batch.size(); ++i) {
      Waiter& w = *batch[i];
      w.status = gs;
      if (gs.ok()) w.result.Swap(resp.mutable_results(static_cast<int>(i)));
      w.done = true;
    }
    SlotFreedLocked();
    // Woken outside the lock, so they need not wait for it (batch keeps
    // each Waiter alive until then).
    l.unlock();
    for (const auto& w : batch) w->cv.notify_one();
    l.lock();
  }

  /// A call in flight returned: the first in line may now send the queue.
  void SlotFreedLocked() {
    --in_flight_;
    if (!queue_.empty()) queue_.front()->cv.notify_one();
  }

  /// GetAttr, checking the generation unless it is 0.
  StatusOr<InodeAttr> DoGetAttr(InodeId ino, Generation generation) {
    pb::GetAttrRequest req;
    req.set_ino(ino.value);
    req.set_generation(generation.value);
    pb::GetAttrResponse resp;
    NEEDLEFS_RETURN_IF_ERROR(Call("GetAttr", req, &resp, [&](grpc::ClientContext* c) {
      return stub_->GetAttr(c, req, &resp);
    }));
    return FromPb(resp.attr());
  }

  std::unique_ptr<pb::MetaService::Stub> stub_;
  const std::string host_;  // meta's host, for the frame RPC port
  std::mutex frame_mu_;
  bool frame_wanted_;               // GUARDED_BY(frame_mu_): use the port if meta has one
  bool info_known_ = false;         // GUARDED_BY(frame_mu_): ServerInfo answered
  uint64_t max_inline_bytes_ = 0;   // GUARDED_BY(frame_mu_): from ServerInfo
  bool commit_attributes_ = false;  // GUARDED_BY(frame_mu_): from ServerInfo
  bool info_stale_ = false;         // GUARDED_BY(frame_mu_): ask ServerInfo again
  bool frame_asking_ = false;       // GUARDED_BY(frame_mu_): a ServerInfo is out
  std::chrono::steady_clock::time_point frame_retry_at_;  // GUARDED_BY(frame_mu_)
  std::shared_ptr<FrameRpcClient> frame_;                 // GUARDED_BY(frame_mu_): null = gRPC
  int timeout_ms_;
  const int max_in_flight_;            // MetaClientOptions::max_in_flight
  std::atomic<bool> no_batch_{false};  // the server has no Batch (UNIMPLEMENTED)
  std::mutex batch_mu_;
  int in_flight_ = 0;  // GUARDED_BY(batch_mu_): batchable calls and Batch calls
  std::deque<std::shared_ptr<Waiter>> queue_;  // GUARDED_BY(batch_mu_): ops waiting to be sent
  std::mutex mu_;
  uint64_t epoch_ = 0;                      // GUARDED_BY(mu_): of the last event received
  std::set<grpc::ClientContext*> streams_;  // GUARDED_BY(mu_): running Subscribe calls
  bool cancelled_ = false;                  // GUARDED_BY(mu_): CancelSubscribe was called
};

}  // namespace

StatusOr<std::unique_ptr<MetaClient>> MetaClient::Create(const std::string& hostport,
                                                         int timeout_ms) {
  MetaClientOptions options;
  options.timeout_ms = timeout_ms;
  return Create(hostport, options);
}

StatusOr<std::unique_ptr<MetaClient>> MetaClient::Create(const std::string& hostport,
                                                         const MetaClientOptions& options) {
  std::string host;
  uint16_t port;
  NEEDLEFS_RETURN_IF_ERROR(SplitHostPort(hostport, &host, &port));
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(kMaxReceiveMessageBytes);
  // Ping an idle Subscribe stream so a dead or partitioned meta ends it
  // (kUnavailable) instead of leaving it blocked; meta_service.cc accepts
  // pings this often.
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 30'000);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 10'000);
  args.SetInt(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
  args.SetInt(GRPC_ARG_ENABLE_RETRIES, 0);
  auto channel =
      grpc::CreateCustomChannel(JoinHostPort(host, port), grpc::InsecureChannelCredentials(), args);
  return std::unique_ptr<MetaClient>(new GrpcMetaClient(channel, host, options));
}

}  // namespace needlefs
