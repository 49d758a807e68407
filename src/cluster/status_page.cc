#include "cluster/status_page.h"

#include <fmt/format.h>

#include <set>

#include "common/http.h"
#include "objstore/needle.h"

namespace needlefs {
namespace {

std::string Bytes(uint64_t b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  double v = static_cast<double>(b);
  int u = 0;
  while (v >= 1024 && u < 5) {
    v /= 1024;
    ++u;
  }
  return u == 0 ? fmt::format("{} B", b) : fmt::format("{:.1f} {}", v, units[u]);
}

constexpr const char* kStyle =
    "body{font-family:sans-serif;margin:1.5em;color:#222}"
    "table{border-collapse:collapse;margin-bottom:1.5em}"
    "th,td{border:1px solid #ccc;padding:.25em .6em;text-align:left}"
    "th{background:#eee}td.n{text-align:right}"
    ".ok{color:#060}.bad{color:#b00;font-weight:bold}.ro{color:#a60}"
    ".summary span{display:inline-block;margin-right:2em}";

}  // namespace

std::string HtmlEscape(const std::string& s) { return XmlEscape(s); }

std::string RenderStatusPage(const std::vector<NodeSnapshot>& nodes,
                             const std::map<VolumeId, std::vector<std::string>>& under,
                             const StatusPageInfo& info) {
  // Volumes across nodes: one row per volume with its holders.
  struct VolumeRow {
    VolumeReport report;  // of the first holder
    std::vector<std::string> holders;
    bool any_read_only = false;
    bool any_needs_repair = false;
    uint64_t max_size = 0;
  };
  std::map<VolumeId, VolumeRow> volumes;
  int slots = 0, used = 0;
  uint64_t disk_free = 0, disk_total = 0;
  std::set<std::string> racks, dcs;
  // Servers on one host with equal-sized file systems most likely share one
  // disk (as in `needlefs server -volumes N`): count it once.
  std::set<std::pair<std::string, uint64_t>> disks;
  for (const auto& n : nodes) {
    slots += n.info.max_volumes;
    used += static_cast<int>(n.volumes.size());
    if (disks.emplace(n.info.id.substr(0, n.info.id.rfind(':')), n.info.disk_total_bytes).second) {
      disk_free += n.info.disk_free_bytes;
      disk_total += n.info.disk_total_bytes;
    }
    dcs.insert(n.info.data_center);
    racks.insert(n.info.data_center + "/" + n.info.rack);
    for (const auto& v : n.volumes) {
      VolumeRow& row = volumes[v.id];
      if (row.holders.empty()) row.report = v;
      row.holders.push_back(n.info.id);
      row.any_read_only |= v.read_only;
      row.any_needs_repair |= v.needs_repair;
      row.max_size = std::max(row.max_size, v.size_bytes);
    }
  }

  std::string h;
  h += "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
       "<meta http-equiv=\"refresh\" content=\"10\">"
       "<title>NeedleFS master</title><style>";
  h += kStyle;
  h += "</style></head><body>\n<h1>NeedleFS cluster</h1>\n<p class=\"summary\">";
  h += fmt::format("<span>master <b>{}</b></span>", HtmlEscape(info.leader));
  h += fmt::format("<span><b>{}</b> volume servers in {} racks, {} data centers</span>",
                   nodes.size(), racks.size(), dcs.size());
  h += fmt::format("<span><b>{}</b> volumes, {} of {} slots free</span>", volumes.size(),
                   slots - used, slots);
  h += fmt::format("<span>disk <b>{}</b> free of {}</span>", Bytes(disk_free), Bytes(disk_total));
  h += under.empty()
           ? std::string("<span class=\"ok\">replication healthy</span>")
           : fmt::format("<span class=\"bad\">{} volumes under-replicated</span>", under.size());
  h += "</p>\n<p>";
  h += fmt::format("max volume id {}, default replication {}, volume size limit {}",
                   info.max_volume_id, HtmlEscape(info.default_replication),
                   Bytes(info.volume_size_limit_bytes));
  h += "</p>\n<h2>Volume servers</h2>\n<table id=\"servers\"><tr><th>data center</th><th>rack"
       "</th><th>server</th><th>public url</th><th>volumes</th><th>free slots</th>"
       "<th>disk free</th><th>disk total</th><th>last heartbeat</th></tr>\n";
  for (const auto& n : nodes) {
    h += fmt::format(
        "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"n\">{}</td>"
        "<td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>"
        "<td class=\"n\">{:.1f} s ago</td></tr>\n",
        HtmlEscape(n.info.data_center), HtmlEscape(n.info.rack), HtmlEscape(n.info.id),
        HtmlEscape(n.info.public_url.empty() ? n.info.id : n.info.public_url), n.volumes.size(),
        n.info.max_volumes - static_cast<int>(n.volumes.size()), Bytes(n.info.disk_free_bytes),
        Bytes(n.info.disk_total_bytes),
        static_cast<double>(std::max<int64_t>(0, info.now_ms - n.last_seen_ms)) / 1000.0);
  }
  h += "</table>\n<h2>Volumes</h2>\n<table id=\"volumes\"><tr><th>id</th><th>collection</th>"
       "<th>replication</th><th>ttl</th><th>replicas</th><th>size</th><th>files</th>"
       "<th>garbage</th><th>state</th></tr>\n";
  for (const auto& [vid, row] : volumes) {
    const VolumeReport& v = row.report;
    std::string holders;
    for (const auto& holder : row.holders) {
      if (!holders.empty()) holders += "<br>";
      holders += HtmlEscape(holder);
    }
    double garbage = v.size_bytes ? 100.0 * static_cast<double>(v.garbage_bytes) /
                                        static_cast<double>(v.size_bytes)
                                  : 0.0;
    std::string state;
    if (auto it = under.find(vid); it != under.end()) {
      state = fmt::format("<span class=\"bad\">under-replicated: {} of {} copies</span>",
                          row.holders.size(), v.replica_placement.CopyCount());
    } else if (row.any_needs_repair) {
      state = "<span class=\"bad\">needs repair: a replicated write failed</span>";
    } else if (row.any_read_only) {
      state = "<span class=\"ro\">read-only</span>";
    } else {
      state = "<span class=\"ok\">ok</span>";
    }
    h += fmt::format(
        "<tr><td class=\"n\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>"
        "<td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{:.1f}%</td>"
        "<td>{}</td></tr>\n",
        vid.value, v.collection.empty() ? "-" : HtmlEscape(v.collection),
        v.replica_placement.ToString(), v.ttl ? HtmlEscape(Ttl::ToString(v.ttl)) : "-", holders,
        Bytes(row.max_size), v.file_count, garbage, state);
  }
  h += "</table>\n<p>JSON: <a href=\"/cluster/status\">/cluster/status</a>, "
       "<a href=\"/vol/status\">/vol/status</a>; Prometheus: <a href=\"/metrics\">/metrics</a></p>"
       "\n</body></html>\n";
  return h;
}

}  // namespace needlefs
