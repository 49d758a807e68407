// `needlefs admin s3.user.*` (the identities file of `needlefs s3`, which
// reloads it within a second) and `s3.bucket.*` (top-level directories of
// the namespace, through the file-system layer).
#include <CLI/CLI.hpp>
#include <cerrno>
#include <cstdio>

#include "cli/commands.h"
#include "client/file_system.h"
#include "gateway/s3_gateway.h"

namespace needlefs::cli {
namespace {

struct S3AdminFlags {
  std::string identities = "needlefs-data/s3-identities.json";
  std::string name;
  uint32_t uid = 0;
  uint32_t gid = 0;
  std::vector<std::string> buckets{"*"};
  std::string meta = "127.0.0.1:18888";
  std::string master = "127.0.0.1:9333";
  std::string bucket;
  std::string owner;  // identity name
  bool public_read = true;
  std::string mode;  // octal, or "default"
};

int Fail(const std::string& what, const Status& s) {
  std::fprintf(stderr, "needlefs admin %s: %s\n", what.c_str(), s.ToString().c_str());
  return 1;
}

StatusOr<gateway::S3Identities> LoadOrEmpty(const std::string& path) {
  auto ids = gateway::S3Identities::Load(path);
  if (!ids.ok() && ids.status().code() == StatusCode::kNotFound) return gateway::S3Identities{};
  return ids;
}

int RunUser(const std::string& cmd, const S3AdminFlags& f) {
  auto ids = LoadOrEmpty(f.identities);
  if (!ids.ok()) return Fail(cmd, ids.status());
  if (cmd == "s3.user.list") {
    std::printf("%-16s %-22s %6s %6s  %s\n", "name", "access key", "uid", "gid", "buckets");
    for (const auto& id : ids->list) {
      std::string b;
      for (const auto& x : id.buckets) b += (b.empty() ? "" : ",") + x;
      std::printf("%-16s %-22s %6u %6u  %s\n", id.name.c_str(), id.access_key.c_str(), id.uid,
                  id.gid, b.c_str());
    }
    return 0;
  }
  if (f.name.empty()) return Fail(cmd, Status::InvalidArgument("-name is required"));
  auto it = std::find_if(ids->list.begin(), ids->list.end(),
                         [&](const gateway::S3Identity& i) { return i.name == f.name; });
  if (cmd == "s3.user.create") {
    if (it != ids->list.end()) return Fail(cmd, Status::AlreadyExists("identity " + f.name));
    gateway::S3Identity id = gateway::S3Identities::NewIdentity(f.name);
    id.uid = f.uid;
    id.gid = f.gid;
    id.buckets = f.buckets;
    ids->list.push_back(id);
    if (Status s = ids->Save(f.identities); !s.ok()) return Fail(cmd, s);
    // The secret is shown once, to the operator who asked for it.
    std::printf(
        "[%s]\naws_access_key_id = %s\naws_secret_access_key = %s\n# REST bearer token: %s\n",
        id.name.c_str(), id.access_key.c_str(), id.secret_key.c_str(), id.token.c_str());
    return 0;
  }
  // s3.user.delete
  if (it == ids->list.end()) return Fail(cmd, Status::NotFound("identity " + f.name));
  ids->list.erase(it);
  if (Status s = ids->Save(f.identities); !s.ok()) return Fail(cmd, s);
  std::printf("deleted identity %s\n", f.name.c_str());
  return 0;
}

int RunBucket(const std::string& cmd, const S3AdminFlags& f) {
  if (cmd == "s3.bucket.mode" && f.mode != "default") {
    if (auto m = gateway::ParseFileMode(f.mode); !m.ok()) return Fail(cmd, m.status());
  }
  FileSystemOptions fo;
  fo.meta = f.meta;
  fo.master = f.master;
  fo.client_name = "admin";
  auto fs = FileSystem::Open(fo);
  if (!fs.ok()) return Fail(cmd, fs.status());
  const RequestContext root = RequestContext::Root();
  if (cmd == "s3.bucket.list") {
    uint64_t cookie = 0;
    for (;;) {
      auto page = (*fs)->ReadDir(root, (*fs)->root(), cookie, 1000, true);
      if (!page.ok()) return Fail(cmd, page.status());
      for (const DirEntry& e : page->entries) {
        cookie = e.cookie;
        if (e.type != FileType::kDirectory || e.name[0] == '.') continue;
        std::printf("%-40s uid %u gid %u\n", e.name.c_str(), e.attr ? e.attr->uid : 0,
                    e.attr ? e.attr->gid : 0);
      }
      if (page->eof || page->entries.empty()) break;
    }
    return 0;
  }
  if (f.bucket.empty()) return Fail(cmd, Status::InvalidArgument("-bucket is required"));
  if (cmd == "s3.bucket.create") {
    auto made = (*fs)->Mkdir(root, (*fs)->root(), f.bucket, 0755);
    if (!made.ok()) return Fail(cmd, made.status());
    std::printf("created bucket %s\n", f.bucket.c_str());
    return 0;
  }
  if (cmd == "s3.bucket.delete") {
    Status s = (*fs)->Rmdir(root, (*fs)->root(), f.bucket);
    if (!s.ok()) return Fail(cmd, s);
    std::printf("deleted bucket %s\n", f.bucket.c_str());
    return 0;
  }
  if (cmd == "s3.bucket.public") {
    auto dir = (*fs)->Lookup(root, (*fs)->root(), f.bucket);
    if (!dir.ok()) return Fail(cmd, dir.status());
    Status s = f.public_read ? (*fs)->SetXattr(root, dir->ino, "user.s3.public-read", "true", 0)
                             : (*fs)->RemoveXattr(root, dir->ino, "user.s3.public-read");
    if (!s.ok() && !(s.posix_errno() == ENODATA && !f.public_read)) return Fail(cmd, s);
    std::printf("bucket %s is %s\n", f.bucket.c_str(),
                f.public_read ? "public-read (anonymous GET and HEAD as uid 65534)" : "private");
    return 0;
  }
  if (cmd == "s3.bucket.mode") {
    // The mode of the files S3 writes into the bucket (the gateway reads it
    // from the bucket's directory, within a second).
    auto dir = (*fs)->Lookup(root, (*fs)->root(), f.bucket);
    if (!dir.ok()) return Fail(cmd, dir.status());
    if (f.mode == "default") {
      Status s = (*fs)->RemoveXattr(root, dir->ino, gateway::kBucketFileModeXattr);
      if (!s.ok() && s.posix_errno() != ENODATA) return Fail(cmd, s);
      std::printf("bucket %s: files get the gateway's default mode\n", f.bucket.c_str());
      return 0;
    }
    auto mode = gateway::ParseFileMode(f.mode);
    if (!mode.ok()) return Fail(cmd, mode.status());
    char octal[8];
    std::snprintf(octal, sizeof(octal), "%04o", *mode);
    Status s = (*fs)->SetXattr(root, dir->ino, gateway::kBucketFileModeXattr, octal, 0);
    if (!s.ok()) return Fail(cmd, s);
    std::printf("bucket %s: files written through S3 get mode %s\n", f.bucket.c_str(), octal);
    return 0;
  }
  // s3.bucket.owner: the bucket's directory belongs to the identity's
  // uid/gid, and the identity may use the bucket.
  if (f.owner.empty()) return Fail(cmd, Status::InvalidArgument("-owner is required"));
  auto ids = gateway::S3Identities::Load(f.identities);
  if (!ids.ok()) return Fail(cmd, ids.status());
  auto it = std::find_if(ids->list.begin(), ids->list.end(),
                         [&](const gateway::S3Identity& i) { return i.name == f.owner; });
  if (it == ids->list.end()) return Fail(cmd, Status::NotFound("identity " + f.owner));
  auto dir = (*fs)->Lookup(root, (*fs)->root(), f.bucket);
  if (!dir.ok()) return Fail(cmd, dir.status());
  SetAttrRequest req;
  req.uid = it->uid;
  req.gid = it->gid;
  auto a = (*fs)->SetAttr(root, dir->ino, req);
  if (!a.ok()) return Fail(cmd, a.status());
  if (std::find(it->buckets.begin(), it->buckets.end(), "*") == it->buckets.end() &&
      std::find(it->buckets.begin(), it->buckets.end(), f.bucket) == it->buckets.end()) {
    it->buckets.push_back(f.bucket);
    if (Status s = ids->Save(f.identities); !s.ok()) return Fail(cmd, s);
  }
  std::printf("bucket %s belongs to %s (uid %u gid %u)\n", f.bucket.c_str(), f.owner.c_str(),
              it->uid, it->gid);
  return 0;
}

}  // namespace

void AddS3AdminCommands(CLI::App* admin, int* exit_code) {
  auto f = std::make_shared<S3AdminFlags>();
  for (const char* name : {"s3.user.create", "s3.user.list", "s3.user.delete"}) {
    auto* sub = admin->add_subcommand(name, std::string("S3 identities: ") + (name + 8));
    sub->add_option("--identities", f->identities, "The identities file of `needlefs s3`")
        ->capture_default_str();
    if (std::string(name) != "s3.user.list") sub->add_option("--name", f->name, "Identity name");
    if (std::string(name) == "s3.user.create") {
      sub->add_option("--uid", f->uid, "Files are made and checked as this uid")
          ->capture_default_str();
      sub->add_option("--gid", f->gid, "... and gid")->capture_default_str();
      sub->add_option("--buckets", f->buckets, "Buckets it may use (* = all)")->delimiter(',');
    }
    sub->callback([f, name, exit_code] { *exit_code = RunUser(name, *f); });
  }
  for (const char* name : {"s3.bucket.create", "s3.bucket.list", "s3.bucket.delete",
                           "s3.bucket.owner", "s3.bucket.public", "s3.bucket.mode"}) {
    auto* sub = admin->add_subcommand(name, std::string("S3 buckets: ") + (name + 10));
    sub->add_option("--meta", f->meta, "Meta server host:port (gRPC)")->capture_default_str();
    sub->add_option("--master", f->master, "Master host:port (HTTP)")->capture_default_str();
    if (std::string(name) != "s3.bucket.list") sub->add_option("--bucket", f->bucket, "Bucket");
    if (std::string(name) == "s3.bucket.public") {
      sub->add_option("--read", f->public_read,
                      "true: anonymous GET/HEAD allowed; false: private again")
          ->capture_default_str();
    }
    if (std::string(name) == "s3.bucket.mode") {
      sub->add_option("--mode", f->mode,
                      "Mode of the files S3 writes there, octal (e.g. 0640; no set-id or sticky "
                      "bits), or \"default\" for the gateway's")
          ->required();
    }
    if (std::string(name) == "s3.bucket.owner") {
      sub->add_option("--owner", f->owner, "Identity name");
      sub->add_option("--identities", f->identities, "The identities file of `needlefs s3`")
          ->capture_default_str();
    }
    sub->callback([f, name, exit_code] { *exit_code = RunBucket(name, *f); });
  }
}

}  // namespace needlefs::cli
