// AWS config and credentials files: parse_aws_ini never crashes, and what it accepts holds no line break in any
// section name, key or value (botocore ends a line at LF, CRLF or a bare CR).
#include <string>

#include "fuzz/fuzz_check.hpp"
#include "ringfetch/s3/aws_config.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  ringfetch::s3::AwsIniSections sections;
  if (!ringfetch::s3::parse_aws_ini(text, "fuzz-config", &sections).ok()) return 0;
  for (const auto& [name, values] : sections) {
    RINGFETCH_FUZZ_CHECK(name.find_first_of("\r\n") == std::string::npos, "line break in a section name");
    for (const auto& [key, value] : values) {
      RINGFETCH_FUZZ_CHECK(!key.empty(), "empty key");
      RINGFETCH_FUZZ_CHECK(key.find_first_of("\r\n") == std::string::npos, "line break in a key");
      RINGFETCH_FUZZ_CHECK(value.find_first_of("\r\n") == std::string::npos, "line break in a value");
    }
  }
  return 0;
}
