#include "objstore/replication.h"

#include <prometheus/counter.h>

#include <algorithm>
#include <future>

#include "common/logging.h"
#include "common/metrics.h"

namespace needlefs {

std::string AddQueryParam(const std::string& target, const std::string& key,
                          const std::string& value) {
  return target + (target.find('?') == std::string::npos ? "?" : "&") + key + "=" + value;
}

StatusOr<std::vector<std::string>> ReplicaForwarder::Locations(VolumeId volume, bool refresh) {
  auto servers = locator_.Lookup(std::to_string(volume.value), refresh);
  if (!servers.ok()) return Status::Unavailable(servers.status().message());
  return servers;
}

Status ReplicaForwarder::Forward(VolumeId volume, int copies, const std::string& method,
                                 const std::string& target, const std::string& body,
                                 const HttpHeaders& headers, const std::vector<int>& ok_statuses) {
  static auto& failures = Metrics::Global().Counter("needlefs_volume_replication_failures_total",
                                                    "Replicated writes a replica did not take");
  for (int attempt = 0; attempt < 2; ++attempt) {
    NEEDLEFS_ASSIGN_OR_RETURN(auto urls, Locations(volume, attempt > 0));
    std::vector<std::string> others;
    for (const auto& u : urls) {
      if (u != self_) others.push_back(u);
    }
    if (static_cast<int>(others.size()) + 1 < copies) {
      if (attempt == 0) continue;  // maybe stale: ask the master again
      failures.Increment();
      return Status::FailedPrecondition("volume " + std::to_string(volume.value) + " has " +
                                        std::to_string(others.size() + 1) + " of " +
                                        std::to_string(copies) + " replicas; written here only");
    }
    const std::string fwd_target = AddQueryParam(target, "type", "replicate");
    auto send = [&](const std::string& url) -> std::string {
      auto r = pool_.Request(url, method, fwd_target, body, headers);
      if (!r.ok()) return url + ": " + r.status().ToString();
      if (std::find(ok_statuses.begin(), ok_statuses.end(), r->status) == ok_statuses.end()) {
        return url + ": HTTP " + std::to_string(r->status) + " " + r->body;
      }
      return "";
    };
    std::string errors;
    auto add = [&errors](const std::string& e) {
      if (!e.empty()) errors += (errors.empty() ? "" : "; ") + e;
    };
    if (others.size() == 1) {
      add(send(others[0]));  // the common case (001, 010, 100): no extra thread
    } else {
      std::vector<std::future<std::string>> results;
      for (const auto& url : others) results.push_back(std::async(std::launch::async, send, url));
      for (auto& f : results) add(f.get());
    }
    if (errors.empty()) return Status::OK();
    if (attempt == 0) continue;  // the replica set may have changed: refresh once
    failures.Increment();
    spdlog::error("volume.replication_failed volume={} method={} errors=\"{}\"", volume.value,
                  method, errors);
    return Status::Unavailable("replica write failed (volume " + std::to_string(volume.value) +
                               " needs repair): " + errors);
  }
  return Status::Internal("unreachable");
}

/// At most this many record bytes per batch (a single larger record goes
/// alone).
constexpr size_t kMaxBatchBytes = 4u << 20;

class ReplicaForwarder::Ticket {
 public:
  std::string record;
  int copies = 0;
  Sender* sender = nullptr;  // owned by the forwarder
  bool done = false;         // GUARDED_BY(Sender::mu)
  Status status;             // GUARDED_BY(Sender::mu)
};

struct ReplicaForwarder::Sender {
  std::mutex mu;
  std::condition_variable work_cv;             // records queued, or stop
  std::condition_variable done_cv;             // a batch finished
  std::vector<std::shared_ptr<Ticket>> queue;  // GUARDED_BY(mu)
  bool stop = false;                           // GUARDED_BY(mu)
  std::thread thread;
};

ReplicaForwarder::ReplicaForwarder(std::string master, std::string self, ClusterIdCell cluster_id)
    : self_(std::move(self)),
      cluster_id_(std::move(cluster_id)),
      locator_(std::move(master), &pool_, 10'000) {}

ReplicaForwarder::~ReplicaForwarder() {
  std::lock_guard<std::mutex> l(senders_mu_);
  stopping_ = true;
  for (auto& [vid, s] : senders_) {
    {
      std::lock_guard<std::mutex> sl(s->mu);
      s->stop = true;
    }
    s->work_cv.notify_all();
    if (s->thread.joinable()) s->thread.join();
  }
}

ReplicaForwarder::Sender* ReplicaForwarder::SenderFor(VolumeId volume) {
  std::lock_guard<std::mutex> l(senders_mu_);
  if (stopping_) return nullptr;
  auto it = senders_.find(volume);
  if (it != senders_.end()) return it->second.get();
  auto s = std::make_unique<Sender>();
  Sender* raw = s.get();
  s->thread = std::thread([this, volume, raw] { SendLoop(volume, raw); });
  senders_.emplace(volume, std::move(s));  // only once its thread runs
  return raw;
}

std::shared_ptr<ReplicaForwarder::Ticket> ReplicaForwarder::Enqueue(VolumeId volume, int copies,
                                                                    std::string record) {
  auto t = std::make_shared<Ticket>();
  t->record = std::move(record);
  t->copies = copies;
  Sender* s = SenderFor(volume);
  if (!s) {
    t->status = Status::Aborted("volume server stopping");
    t->done = true;
    return t;
  }
  t->sender = s;
  {
    std::lock_guard<std::mutex> l(s->mu);
    if (s->stop) {  // stopped between SenderFor and here: nobody would send it
      t->status = Status::Aborted("volume server stopping");
      t->done = true;
      return t;
    }
    s->queue.push_back(t);
  }
  s->work_cv.notify_one();
  return t;
}

Status ReplicaForwarder::Wait(const std::shared_ptr<Ticket>& ticket) {
  Sender* s = ticket->sender;
  if (!s) return ticket->status;  // refused by Enqueue
  std::unique_lock<std::mutex> l(s->mu);
  s->done_cv.wait(l, [&] { return ticket->done; });
  return ticket->status;
}

void ReplicaForwarder::SendLoop(VolumeId volume, Sender* s) {
  std::unique_lock<std::mutex> l(s->mu);
  for (;;) {
    s->work_cv.wait(l, [s] { return s->stop || !s->queue.empty(); });
    if (s->stop) {
      for (auto& t : s->queue) {
        t->status = Status::Aborted("volume server stopping");
        t->done = true;
      }
      s->queue.clear();
      s->done_cv.notify_all();
      return;
    }
    std::vector<std::shared_ptr<Ticket>> batch;
    size_t bytes = 0, n = 0;
    while (n < s->queue.size() &&
           (batch.empty() || bytes + s->queue[n]->record.size() <= kMaxBatchBytes)) {
      bytes += s->queue[n]->record.size();
      batch.push_back(s->queue[n++]);
    }
    s->queue.erase(s->queue.begin(), s->queue.begin() + static_cast<std::ptrdiff_t>(n));
    l.unlock();
    std::string body;
    body.reserve(bytes);
    for (const auto& t : batch) body += t->record;
    const Status st =
        Forward(volume, batch.front()->copies, "POST",
                "/admin/replicate?volume=" + std::to_string(volume.value) +
                    "&cluster=" + std::to_string(cluster_id_ ? cluster_id_->load() : 0),
                body, {}, {200});
    l.lock();
    for (auto& t : batch) {
      t->status = st;
      t->done = true;
    }
    s->done_cv.notify_all();
  }
}

StatusOr<HttpClientResponse> ReplicaForwarder::FetchFromReplica(VolumeId volume,
                                                                const std::string& target,
                                                                const HttpHeaders& headers) {
  NEEDLEFS_ASSIGN_OR_RETURN(auto urls, Locations(volume, /*refresh=*/true));
  const std::string fwd_target = AddQueryParam(target, "type", "replicate");
  Status last = Status::NotFound("no other replica of volume " + std::to_string(volume.value));
  for (const auto& url : urls) {
    if (url == self_) continue;
    auto r = pool_.Request(url, "GET", fwd_target, {}, headers);
    if (r.ok() && r->status == 200) return r;
    last = r.ok() ? Status::NotFound(url + " answered " + std::to_string(r->status))
                  : r.status().WithContext(url);
  }
  return last;
}

}  // namespace needlefs
