// `ringfetch uploads S3_URL [--abort]`: the multipart uploads in progress under a prefix (ListMultipartUploads),
// which S3 keeps, and bills, until they are completed or aborted: an upload whose process was killed leaves one.
// --abort aborts each of them (AbortMultipartUpload). Only uploads started and not finished are listed, so an
// --abort while another process is uploading under the prefix ends that upload too; the help says so.
#include <cstdio>
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

constexpr char kUploadsHelp[] =
    "usage: ringfetch uploads S3_URL [--abort] [--json] [connection options]\n"
    "\n"
    "Lists the multipart uploads in progress whose keys start with S3_URL's key, one per line: when it was\n"
    "started, the upload id and the key. S3 keeps (and bills) the parts of an upload until it is completed or\n"
    "aborted; an upload whose process was killed leaves them behind.\n"
    "\n"
    "options:\n"
    "  --abort  abort each upload listed (AbortMultipartUpload), freeing its parts; this also ends uploads that\n"
    "           another process is still running under the prefix\n"
    "  --json   print one JSON object: {\"bucket\", \"prefix\", \"uploads\": [{\"key\", \"upload_id\", \"initiated\"}],\n"
    "           \"aborted\"}\n"
    "\n";

}  // namespace

int run_uploads(const Arguments& args) {
  if (wants_help(args)) {
    std::fputs(kUploadsHelp, stdout);
    std::fputs(kConnectionHelp, stdout);
    return 0;
  }
  const CommandLine line("ringfetch uploads", args,
                         with_connection_options({{"--abort", false}, {"--json", false}}));
  line.expect_positional({"S3_URL"});
  const S3Location location = parse_s3_url(line.positional()[0]);
  const StoreOptions options = connection_options(line);
  const bool abort = line.has("--abort");
  const bool json = line.has("--json");
  Engine engine(client_engine_options());
  s3::S3Client client = s3::S3Client::open(engine, options.s3, options.http);
  const std::vector<s3::MultipartUploadInfo> uploads = client.list_multipart_uploads(location.bucket, location.key);
  nlohmann::json listed = nlohmann::json::array();
  for (const s3::MultipartUploadInfo& upload : uploads) {
    if (abort) client.abort_multipart_upload(location.bucket, upload.key, upload.upload_id);
    if (json) {
      listed.push_back({{"key", upload.key}, {"upload_id", upload.upload_id}, {"initiated", upload.initiated}});
    } else {
      std::printf("%s%s  %s  %s\n", abort ? "aborted: " : "", upload.initiated.c_str(), upload.upload_id.c_str(),
                  format_s3_url({location.bucket, upload.key}).c_str());
    }
  }
  if (json) {
    const nlohmann::json report = {{"bucket", location.bucket}, {"prefix", location.key}, {"uploads", listed},
                                   {"aborted", abort}};
    std::printf("%s\n", report.dump().c_str());
  }
  return 0;
}

}  // namespace ringfetch::cli
