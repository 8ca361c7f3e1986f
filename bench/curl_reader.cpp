// ringfetch-curl-reader: the libcurl side of `ringfetch bench --compare`. It reads the byte ranges listed on stdin
// ("KEY OFFSET LENGTH" per line, keys percent-encoded as in a URL path) from an http(s) root with the harness's
// tuned libcurl contender (one multi handle, N keep-alive connections, each re-armed with the next range), into
// pre-faulted memory, REPS times, and prints the median run as one JSON line: seconds, cpu_seconds, requests,
// bytes. libcurl stays out of the library and the `ringfetch` command; the command runs this program.
//   usage: ringfetch-curl-reader ROOT_URL CONNECTIONS REPS [CA_FILE]
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "curl_client.hpp"
#include "destination_buffer.hpp"
#include "measure.hpp"

namespace ringfetch::bench {
namespace {

struct Root {
  Protocol protocol = Protocol::kHttp;
  ServerEndpoint server;
  std::string prefix;  // path below the host, without a trailing '/'
};

// http(s)://host[:port][/prefix]; a bracketed IPv6 host is kept with its brackets for the URL.
Root parse_root(const std::string& url) {
  Root root;
  size_t at;
  if (url.rfind("http://", 0) == 0) {
    at = 7;
  } else if (url.rfind("https://", 0) == 0) {
    root.protocol = Protocol::kHttps;
    at = 8;
  } else {
    throw std::invalid_argument("ROOT_URL must be http:// or https://, got '" + url + "'");
  }
  const size_t slash = url.find('/', at);
  const std::string authority = url.substr(at, slash == std::string::npos ? std::string::npos : slash - at);
  root.prefix = slash == std::string::npos ? std::string() : url.substr(slash);
  while (!root.prefix.empty() && root.prefix.back() == '/') root.prefix.pop_back();
  const size_t colon = authority.rfind(':');
  const bool has_port = colon != std::string::npos && authority.find(']', colon) == std::string::npos;
  root.server.host = has_port ? authority.substr(0, colon) : authority;
  const uint16_t port = has_port ? static_cast<uint16_t>(std::stoul(authority.substr(colon + 1)))
                                 : (root.protocol == Protocol::kHttps ? 443 : 80);
  root.server.http_port = root.server.https_port = port;
  return root;
}

struct Object {
  std::vector<ByteSpan> ranges;
  uint64_t end = 0;
};

int run(int argc, char** argv) {
  if (argc < 4 || argc > 5) {
    std::fprintf(stderr, "usage: ringfetch-curl-reader ROOT_URL CONNECTIONS REPS [CA_FILE] < ranges\n");
    return 2;
  }
  Root root = parse_root(argv[1]);
  const auto connections = static_cast<unsigned>(std::max(1ul, std::stoul(argv[2])));
  const auto reps = static_cast<unsigned>(std::max(1ul, std::stoul(argv[3])));
  if (argc == 5) root.server.ca_file = argv[4];
  std::map<std::string, Object> objects;
  std::string key;
  uint64_t offset = 0, length = 0;
  while (std::cin >> key >> offset >> length) {
    Object& object = objects[key];
    object.ranges.push_back({offset, length});
    object.end = std::max(object.end, offset + length);
  }
  std::vector<std::unique_ptr<DestinationBuffer>> mirrors;  // object-sized, touched before any timing
  for (const auto& [name, object] : objects) {
    mirrors.push_back(std::make_unique<DestinationBuffer>(std::max<uint64_t>(object.end, 1)));
  }
  init_curl();
  std::vector<RunResult> runs;
  for (unsigned rep = 0; rep < reps; ++rep) {
    RunResult total;
    total.ok = true;
    size_t index = 0;
    for (const auto& [name, object] : objects) {
      TransportJob job;
      job.protocol = root.protocol;
      job.server = root.server;
      job.path = root.prefix + "/" + name;
      job.connections = connections;
      job.requests = object.ranges;
      job.dest = mirrors[index++]->all();
      RunResult r;
      Stopwatch watch;
      watch.start();
      run_curl(job, CurlProfile::kTuned, &r);
      watch.stop();
      watch.report(&r);
      if (!r.ok) throw std::runtime_error("libcurl: " + r.error);
      total.wall_s += r.wall_s;
      total.user_s += r.user_s;
      total.sys_s += r.sys_s;
      total.requests += r.requests;
      total.bytes_wire += r.bytes_wire;
    }
    runs.push_back(total);
  }
  std::sort(runs.begin(), runs.end(), [](const RunResult& a, const RunResult& b) { return a.wall_s < b.wall_s; });
  const RunResult& median = runs[runs.size() / 2];
  const nlohmann::json out = {{"seconds", median.wall_s}, {"cpu_seconds", median.cpu_s()},
                              {"requests", median.requests}, {"bytes", median.bytes_wire}, {"reps", reps}};
  std::printf("%s\n", out.dump().c_str());
  return 0;
}

}  // namespace
}  // namespace ringfetch::bench

int main(int argc, char** argv) {
  try {
    return ringfetch::bench::run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ringfetch-curl-reader: %s\n", e.what());
    return 1;
  }
}
