// Loopback ports for the test servers: whether IPv6 loopback works here, a port that is free right now, and whether
// a port accepts connections yet. Shared by the harnesses that start external servers (nginx, s3rver).
#pragma once

#include <cstdint>

namespace ringfetch::testing {

enum class IpFamily { kV4, kV6 };

// True when a TCP socket can bind to [::1] (false in containers with IPv6 disabled).
bool ipv6_loopback_available();

// A TCP port that is free on 127.0.0.1 (and on [::1] too when `also_ipv6`) at the moment of the call: the kernel picks
// it for a socket bound to port 0, which is then closed. Another process may take it before the caller binds it, so
// callers retry on "address in use". Throws std::runtime_error if none is found within a few attempts.
uint16_t pick_free_port(bool also_ipv6);

// True when a TCP connect to the loopback address of `family` on `port` succeeds now (the connection is then closed).
bool port_accepts(IpFamily family, uint16_t port);

}  // namespace ringfetch::testing
