// Name resolution kept off the engine's rings. An endpoint's AddressBook is filled by a lookup on the thread that
// opens the store (never an engine thread); afterwards it answers from memory. When its addresses are older than
// the TTL, the next pick starts one background lookup and keeps using the old addresses until it lands, so a ring
// never waits for DNS. Connections are spread over all addresses of a host (S3 answers each lookup with several),
// and an address whose connect fails cools down for a while so new connections go to the others.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "ringfetch/error.hpp"

namespace ringfetch::http {

struct Address {
  sockaddr_storage storage{};
  socklen_t length = 0;
  bool operator==(const Address& other) const;
  std::string text() const;  // "127.0.0.1:8080", "[::1]:443"
};

// How a host name becomes addresses. The default calls getaddrinfo; tests install their own (a name that resolves
// to several loopback addresses without touching /etc/hosts).
using LookupFn = std::function<Status(const std::string& host, uint16_t port, std::vector<Address>* out)>;
Status system_lookup(const std::string& host, uint16_t port, std::vector<Address>* out);
// Replaces the lookup for every AddressBook made afterwards (nullptr restores getaddrinfo). For tests.
void set_lookup_for_testing(LookupFn lookup);

class AddressBook : public std::enable_shared_from_this<AddressBook> {
 public:
  static constexpr uint64_t kTtlNs = 30'000'000'000;      // a lookup is trusted this long
  static constexpr uint64_t kCooldownNs = 5'000'000'000;  // an address whose connect failed is avoided this long

  // Looks `host` up now, on the calling thread (which must not be an engine thread). Errors name the host.
  static Status create(std::string host, uint16_t port, std::shared_ptr<AddressBook>* out);

  // The address for a new connection: the next one round the list among those not cooling down (all of them if
  // every one is). Never blocks on DNS; starts a background refresh when the list is past its TTL.
  Address pick();
  // A connect to `address` failed: avoid it for kCooldownNs.
  void cool_down(const Address& address);
  // Addresses not cooling down, other than `address` (whether a failed connect has somewhere else to go).
  size_t healthy_others(const Address& address) const;

  const std::string& host() const noexcept { return host_; }
  uint64_t lookups() const;  // completed lookups, the first included (for tests)
  std::vector<Address> addresses() const;

 private:
  struct Entry {
    Address address;
    uint64_t cool_until_ns = 0;
  };
  AddressBook(std::string host, uint16_t port, LookupFn lookup)
      : host_(std::move(host)), port_(port), lookup_(std::move(lookup)) {}
  void replace(std::vector<Address> fresh);
  void refresh_in_background();

  const std::string host_;
  const uint16_t port_;
  const LookupFn lookup_;
  mutable std::mutex mutex_;
  std::vector<Entry> entries_;
  size_t next_ = 0;
  uint64_t resolved_ns_ = 0;
  bool refreshing_ = false;
  uint64_t lookups_ = 0;
};

}  // namespace ringfetch::http
