// Object URL parsing for the commands. Syntax only: whether the bucket or key exists is for the store to say.
#include "object_url.hpp"

#include "ringfetch/error.hpp"

namespace ringfetch::cli {
namespace {

constexpr std::string_view kS3Scheme = "s3://";

Error bad_url(std::string_view url, const std::string& why) {
  return Error(ErrorKind::kInvalidArgument, "bad object URL '" + std::string(url) + "': " + why);
}

}  // namespace

ObjectUrl split_object_url(std::string_view url) {
  const size_t scheme_end = url.find("://");
  const size_t slash = url.rfind('/');
  if (scheme_end == std::string_view::npos) throw bad_url(url, "expected scheme://root/key, e.g. file:///dir/object");
  if (slash < scheme_end + 3) throw bad_url(url, "no key after the store root (expected scheme://root/key)");
  if (slash + 1 == url.size()) throw bad_url(url, "it ends with '/', so it names no object");
  const bool path_starts_here = slash == scheme_end + 3;
  return {std::string(url.substr(0, path_starts_here ? slash + 1 : slash)), std::string(url.substr(slash + 1))};
}

S3Location parse_s3_url(std::string_view url) {
  if (!url.starts_with(kS3Scheme)) throw bad_url(url, "expected s3://bucket/key");
  const std::string_view rest = url.substr(kS3Scheme.size());
  const size_t slash = rest.find('/');
  S3Location location{std::string(rest.substr(0, slash)), ""};
  if (location.bucket.empty()) throw bad_url(url, "no bucket after s3://");
  if (slash != std::string_view::npos) location.key = std::string(rest.substr(slash + 1));
  return location;
}

std::string format_s3_url(const S3Location& location) {
  return std::string(kS3Scheme) + location.bucket + "/" + location.key;
}

}  // namespace ringfetch::cli
