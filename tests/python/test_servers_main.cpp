// ringfetch_test_servers: starts the test peers of the C++ suites (a private nginx serving one directory over
// HTTP and HTTPS, and s3rver) on loopback for test suites written in other languages, and stops them when its
// standard input closes. It prints one JSON line once every peer accepts connections, e.g.
//   {"http":"http://127.0.0.1:PORT","https":"https://localhost:PORT","ca_file":"/…/ca.crt",
//    "s3_endpoint":"http://127.0.0.1:PORT","s3_access_key":"S3RVER","s3_secret_key":"S3RVER"}
// A peer that fails to start makes it print {"error": "..."} and exit 1. Reusing the C++ harness keeps one
// debugged way of starting each server.
#include <cstdio>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "servers/nginx_server.hpp"
#include "servers/s3rver_server.hpp"

namespace {

constexpr const char* kUsage =
    "usage: ringfetch_test_servers [--nginx ROOT_DIR] [--s3rver]\n"
    "Starts the peers on loopback, prints one JSON line with their addresses, and stops them when stdin closes.\n";

int usage_error() {
  std::fputs(kUsage, stderr);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::optional<std::string> nginx_root;
  bool want_s3rver = false;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg == "--nginx" && i + 1 < argc) nginx_root = argv[++i];
    else if (arg == "--s3rver") want_s3rver = true;
    else return usage_error();
  }
  if (!nginx_root && !want_s3rver) return usage_error();

  nlohmann::json ready = nlohmann::json::object();
  std::unique_ptr<ringfetch::testing::NginxServer> nginx;
  std::unique_ptr<ringfetch::testing::S3rverServer> s3rver;
  try {
    if (nginx_root) {
      nginx = std::make_unique<ringfetch::testing::NginxServer>(*nginx_root);
      ready["http"] = nginx->http_endpoint();
      ready["https"] = nginx->https_endpoint();
      ready["ca_file"] = nginx->ca_file().string();
      ready["other_ca_file"] = nginx->other_ca_file().string();
      ready["wrong_host_https"] = "https://localhost:" + std::to_string(nginx->wrong_host_https_port());
    }
    if (want_s3rver) {
      s3rver = std::make_unique<ringfetch::testing::S3rverServer>();
      ready["s3_endpoint"] = s3rver->endpoint();
      ready["s3_access_key"] = s3rver->access_key();
      ready["s3_secret_key"] = s3rver->secret_key();
    }
  } catch (const std::exception& e) {
    std::cout << nlohmann::json{{"error", e.what()}}.dump() << std::endl;
    return 1;
  }
  std::cout << ready.dump() << std::endl;

  // Runs until the parent closes our stdin (or dies: its end of the pipe closes with it).
  char buffer[256];
  while (std::fread(buffer, 1, sizeof buffer, stdin) > 0) {
  }
  if (s3rver) s3rver->stop();
  if (nginx) nginx->stop();
  return 0;
}
