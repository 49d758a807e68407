// `needlefs upload`: stores every regular file under a directory as blobs on
// a volume server (with C keep-alive connections), optionally reads each one
// back to verify it, writes a manifest (fid <TAB> path) and prints what it
// stored and how fast. Until the master assigns file ids, keys are chosen
// here: a random 24-bit prefix plus a counter, spread over writable volumes.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "cli/cli_util.h"
#include "cli/commands.h"
#include "common/file_id.h"

namespace needlefs::cli {
namespace {

namespace fs = std::filesystem;

struct UploadFlags {
  std::string server = "127.0.0.1:8080";
  std::string dir;
  int concurrency = 8;
  bool verify = false;
  std::string manifest;
};

bool ReadWholeFile(const std::string& path, std::string* out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  std::ostringstream ss;
  ss << in.rdbuf();
  *out = std::move(ss).str();
  return true;
}

int RunUpload(const UploadFlags& f) {
  std::string host;
  uint16_t port;
  if (Status s = SplitHostPort(f.server, &host, &port); !s.ok()) {
    std::fprintf(stderr, "needlefs upload: %s\n", s.ToString().c_str());
    return 2;
  }
  std::vector<std::pair<std::string, uint64_t>> files;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(
           f.dir, fs::directory_options::skip_permission_denied, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (it->is_regular_file(ec) && !it->is_symlink(ec)) {
      files.emplace_back(it->path().string(), it->file_size(ec));
    }
  }
  if (ec) {
    std::fprintf(stderr, "needlefs upload: cannot walk %s: %s\n", f.dir.c_str(),
                 ec.message().c_str());
    return 1;
  }
  auto vols = FetchWritableVolumes(host, port);
  if (!vols.ok()) {
    std::fprintf(stderr, "needlefs upload: %s: %s\n", f.server.c_str(),
                 vols.status().ToString().c_str());
    return 1;
  }
  uint64_t total_bytes = 0;
  for (const auto& [p, size] : files) total_bytes += size;
  std::printf("needlefs upload: %zu files, %.1f MiB from %s to %s (c=%d)\n", files.size(),
              static_cast<double>(total_bytes) / (1 << 20), f.dir.c_str(), f.server.c_str(),
              f.concurrency);
  std::fflush(stdout);

  std::mt19937_64 rng(std::random_device{}());
  const uint64_t key_base = (rng() & 0xFFFFFFull) << 32;
  std::vector<FileId> fids(files.size());
  for (size_t i = 0; i < files.size(); ++i) {
    fids[i] = FileId{VolumeId((*vols)[i % vols->size()]), NeedleKey(key_base + i),
                     Cookie(static_cast<uint32_t>(rng()))};
  }
  std::vector<char> stored(files.size(), 0);
  std::mutex err_mu;
  std::string first_error;
  auto note_error = [&](const std::string& e) {
    std::lock_guard<std::mutex> l(err_mu);
    if (first_error.empty()) first_error = e;
  };
  auto w =
      ParallelRequests(host, port, f.concurrency, files.size(), [&](HttpClient& c, uint64_t i) {
        std::string data;
        if (!ReadWholeFile(files[i].first, &data)) {
          note_error("cannot read " + files[i].first);
          return false;
        }
        std::string name = fs::path(files[i].first).filename().string();
        auto r = c.Request("PUT", "/" + fids[i].ToString() + "?name=" + PercentEncode(name), data);
        if (!r.ok() || r->status != 201) {
          note_error(files[i].first + ": " + (r.ok() ? r->body : r.status().ToString()));
          return false;
        }
        stored[i] = 1;
        return true;
      });
  std::printf(
      "stored %lu files (%.1f MiB) in %.2f s: %.0f files/s, %.1f MiB/s, p50 %.2f ms, "
      "p99 %.2f ms, errors %lu\n",
      static_cast<unsigned long>(w.ok), static_cast<double>(total_bytes) / (1 << 20), w.seconds,
      w.ok / w.seconds, static_cast<double>(total_bytes) / (1 << 20) / w.seconds, w.Percentile(0.5),
      w.Percentile(0.99), static_cast<unsigned long>(w.errors));
  int rc = w.errors ? 1 : 0;
  if (f.verify) {
    auto r =
        ParallelRequests(host, port, f.concurrency, files.size(), [&](HttpClient& c, uint64_t i) {
          if (!stored[i]) return true;
          std::string data;
          if (!ReadWholeFile(files[i].first, &data)) return false;
          auto resp = c.Request("GET", "/" + fids[i].ToString());
          if (!resp.ok() || resp->status != 200 || resp->body != data) {
            note_error("verify " + files[i].first + ": content differs");
            return false;
          }
          return true;
        });
    std::printf("verified %lu files byte for byte in %.2f s: %.0f files/s, mismatches %lu\n",
                static_cast<unsigned long>(r.ok), r.seconds, r.ok / r.seconds,
                static_cast<unsigned long>(r.errors));
    if (r.errors) rc = 1;
  }
  if (!first_error.empty()) std::printf("first error: %s\n", first_error.c_str());
  if (!f.manifest.empty()) {
    std::ofstream out(f.manifest);
    for (size_t i = 0; i < files.size(); ++i) {
      if (stored[i]) out << fids[i].ToString() << '\t' << files[i].first << '\n';
    }
    std::printf("manifest (fid, path): %s\n", f.manifest.c_str());
  }
  return rc;
}

}  // namespace

void AddUploadCommand(CLI::App& app, int* exit_code) {
  auto* cmd = app.add_subcommand("upload", "Store every file under a directory on a volume server");
  auto f = std::make_shared<UploadFlags>();
  cmd->add_option("--server", f->server, "Volume server host:port")->capture_default_str();
  cmd->add_option("--dir", f->dir, "Directory to upload")->required();
  cmd->add_option("-c", f->concurrency, "Concurrent keep-alive connections")->capture_default_str();
  cmd->add_flag("--verify", f->verify, "Read every blob back and compare");
  cmd->add_option("--manifest", f->manifest, "Write 'fid<TAB>path' lines to this file");
  cmd->callback([f, exit_code] { *exit_code = RunUpload(*f); });
}

}  // namespace needlefs::cli
