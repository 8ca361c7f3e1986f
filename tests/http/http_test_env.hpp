// One nginx for the whole HTTP test binary, serving pattern files from a temp dir; started on first use and
// stopped at exit.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "servers/nginx_server.hpp"
#include "servers/temp_dir.hpp"

namespace ringfetch::testing {

struct HttpTestData {
  static constexpr uint64_t kBlobBytes = 160ull << 20;
  static constexpr uint64_t kBlobSeed = 11;
  static constexpr uint64_t kSmallBytes = 1 << 20;
  static constexpr uint64_t kSmallSeed = 12;

  TempDir dir{"ringfetch-http-"};
  std::unique_ptr<NginxServer> nginx;

  HttpTestData() {
    write_pattern_file(dir / "blob", kBlobBytes, kBlobSeed);
    write_pattern_file(dir / "small", kSmallBytes, kSmallSeed);
    write_pattern_file(dir / "dir with space+plus", 4096, kSmallSeed);
    nginx = std::make_unique<NginxServer>(dir.path());
  }
  std::string http_root() const { return "http://127.0.0.1:" + std::to_string(nginx->http_port()); }
  std::string https_root() const { return "https://localhost:" + std::to_string(nginx->https_port()); }
};

inline HttpTestData& http_test_data() {
  static HttpTestData data;
  return data;
}

}  // namespace ringfetch::testing
