// `ringfetch ls S3_URL`: lists every object whose key starts with the URL's key, page by page (ListObjectsV2,
// continuation tokens followed), printing each page as it arrives so that a large bucket shows its first keys at
// once. --json collects the whole listing into one JSON object instead.
#include <cstdio>
#include <functional>
#include <string>

#include <nlohmann/json.hpp>

#include "command_line.hpp"
#include "commands.hpp"
#include "connection_options.hpp"
#include "engine_sizing.hpp"
#include "object_url.hpp"
#include "ringfetch/ringfetch.hpp"
#include "ringfetch/s3/s3_client.hpp"

namespace ringfetch::cli {
namespace {

constexpr char kLsHelp[] =
    "usage: ringfetch ls S3_URL [--json] [connection options]\n"
    "\n"
    "Lists the objects whose keys start with S3_URL's key (s3://bucket lists the whole bucket; s3://bucket/a/\n"
    "lists a/x, a/y/z, ...; s3://bucket/a also lists ab), one per line: the size in bytes, two spaces, the key.\n"
    "\n"
    "options:\n"
    "  --json   print one JSON object: {\"bucket\", \"prefix\", \"objects\": [{\"key\", \"size\", \"etag\",\n"
    "           \"last_modified\"}, ...], \"total_bytes\"}\n"
    "\n";

constexpr unsigned kKeysPerPage = 1000;  // S3's maximum

using PageVisitor = std::function<void(const s3::ListPage&)>;

void for_each_page(s3::S3Client& client, const S3Location& location, const PageVisitor& visit) {
  std::string token;
  do {
    const s3::ListPage page = client.list_page(location.bucket, location.key, token, kKeysPerPage);
    visit(page);
    token = page.truncated ? page.next_continuation_token : std::string();
  } while (!token.empty());
}

void print_text(s3::S3Client& client, const S3Location& location) {
  for_each_page(client, location, [](const s3::ListPage& page) {
    for (const s3::ObjectInfo& object : page.objects) {
      std::printf("%12llu  %s\n", static_cast<unsigned long long>(object.size), object.key.c_str());
    }
  });
}

void print_json(s3::S3Client& client, const S3Location& location) {
  nlohmann::json objects = nlohmann::json::array();
  uint64_t total = 0;
  for_each_page(client, location, [&](const s3::ListPage& page) {
    for (const s3::ObjectInfo& object : page.objects) {
      objects.push_back({{"key", object.key}, {"size", object.size}, {"etag", object.etag},
                         {"last_modified", object.last_modified}});
      total += object.size;
    }
  });
  const nlohmann::json report = {
      {"bucket", location.bucket}, {"prefix", location.key}, {"objects", objects}, {"total_bytes", total}};
  std::printf("%s\n", report.dump().c_str());
}

}  // namespace

int run_ls(const Arguments& args) {
  if (wants_help(args)) {
    std::fputs(kLsHelp, stdout);
    std::fputs(kConnectionHelp, stdout);
    return 0;
  }
  const CommandLine line("ringfetch ls", args, with_connection_options({{"--json", false}}));
  line.expect_positional({"S3_URL"});
  const S3Location location = parse_s3_url(line.positional()[0]);
  const StoreOptions options = connection_options(line);
  Engine engine(client_engine_options());
  s3::S3Client client = s3::S3Client::open(engine, options.s3, options.http);
  if (line.has("--json")) {
    print_json(client, location);
  } else {
    print_text(client, location);
  }
  return 0;
}

}  // namespace ringfetch::cli
