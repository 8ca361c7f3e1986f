// A program that knows ringfetch only through its installed package: reads two ranges of a file it writes, and
// opens an s3:// store (every scheme must be linked in, static builds included) whose endpoint refuses connections,
// expecting a network error from the S3 path rather than "scheme not supported".
#include <ringfetch/ringfetch.hpp>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>

int main(int argc, char** argv) {
  if (argc != 2) return 2;
  const std::string dir = argv[1];
  std::ofstream(dir + "/blob", std::ios::binary) << "0123456789abcdefghijklmnopqrstuvwxyz";
  ringfetch::Engine engine({.threads = 1, .arena_bytes = 4 << 20});
  ringfetch::Store store = ringfetch::Store::open("file://" + dir, engine);
  ringfetch::Plan plan;
  plan.add("blob", 10, 6);
  plan.add("blob", 30, 3);
  std::string got;
  for (const ringfetch::ItemView& item : store.fetch(plan))
    got.append(reinterpret_cast<const char*>(item.bytes().data()), item.size());
  std::printf("%s\n", got.c_str());
  if (got != "abcdefuvw") return 1;

  ringfetch::StoreOptions options;
  options.s3.endpoints = {"http://127.0.0.1:9"};  // discard port: nothing listens
  options.s3.anonymous = true;
  options.s3.region = "us-east-1";
  options.http.max_attempts = 1;
  options.http.connect_timeout_ms = 2000;
  try {
    ringfetch::Store s3 = ringfetch::Store::open("s3://bucket/prefix", engine, options);
    ringfetch::Plan one;
    one.add("key", 0, 10);
    s3.fetch(one).wait();
    std::printf("s3 fetch from a closed port succeeded\n");
    return 1;
  } catch (const ringfetch::Error& e) {
    std::printf("s3: %s: %s\n", std::string(ringfetch::to_string(e.kind())).c_str(), e.what());
    return e.kind() == ringfetch::ErrorKind::kNetwork || e.kind() == ringfetch::ErrorKind::kTimeout ? 0 : 1;
  }
}
