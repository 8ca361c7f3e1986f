// Byte counts written for people: "4.0 KiB", "312.4 MiB", "1.00 GiB". Shared by the tables and the progress bar
// so that both speak the same units (binary multiples; throughput is reported separately in decimal GB/s).
#pragma once

#include <cstdint>
#include <string>

namespace ringfetch::cli {

constexpr uint64_t kKiB = uint64_t{1} << 10;
constexpr uint64_t kMiB = uint64_t{1} << 20;
constexpr uint64_t kGiB = uint64_t{1} << 30;
constexpr double kBytesPerGB = 1e9;  // GB/s and CPU s/GB use decimal gigabytes, as throughput figures usually do

// `bytes` with a binary unit and 3 significant digits ("0 B", "512 B", "4.0 KiB", "1.00 GiB").
std::string human_bytes(uint64_t bytes);

}  // namespace ringfetch::cli
