// AddressBook implementation. Background refreshes run on a short-lived thread that holds the book alive; a failed
// refresh keeps the old addresses (a DNS hiccup must not fail loads that know where to go).
#include "http/resolver.hpp"

#include <arpa/inet.h>
#include <netdb.h>

#include <algorithm>
#include <cstring>
#include <thread>

#include "engine/io_loop.hpp"

namespace ringfetch::http {
namespace {

std::mutex lookup_mutex;
LookupFn& installed_lookup() {
  static LookupFn lookup;
  return lookup;
}

LookupFn current_lookup() {
  std::lock_guard lock(lookup_mutex);
  return installed_lookup() ? installed_lookup() : LookupFn(&system_lookup);
}

}  // namespace

bool Address::operator==(const Address& other) const {
  return length == other.length && std::memcmp(&storage, &other.storage, length) == 0;
}

std::string Address::text() const {
  char host[INET6_ADDRSTRLEN] = {};
  if (storage.ss_family == AF_INET6) {
    const auto* a = reinterpret_cast<const sockaddr_in6*>(&storage);
    inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host));
    return "[" + std::string(host) + "]:" + std::to_string(ntohs(a->sin6_port));
  }
  const auto* a = reinterpret_cast<const sockaddr_in*>(&storage);
  inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host));
  return std::string(host) + ":" + std::to_string(ntohs(a->sin_port));
}

Status system_lookup(const std::string& host, uint16_t port, std::vector<Address>* out) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* found = nullptr;
  const int rc = getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &found);
  if (rc != 0) return Status(ErrorKind::kNetwork, "cannot resolve host '" + host + "': " + gai_strerror(rc));
  for (addrinfo* a = found; a != nullptr; a = a->ai_next) {
    Address address;
    std::memcpy(&address.storage, a->ai_addr, a->ai_addrlen);
    address.length = a->ai_addrlen;
    if (std::find(out->begin(), out->end(), address) == out->end()) out->push_back(address);
  }
  freeaddrinfo(found);
  return {};
}

void set_lookup_for_testing(LookupFn lookup) {
  std::lock_guard lock(lookup_mutex);
  installed_lookup() = std::move(lookup);
}

Status AddressBook::create(std::string host, uint16_t port, std::shared_ptr<AddressBook>* out) {
  std::shared_ptr<AddressBook> book(new AddressBook(std::move(host), port, current_lookup()));
  std::vector<Address> found;
  Status status = book->lookup_(book->host_, port, &found);
  if (!status.ok()) return status;
  if (found.empty()) return Status(ErrorKind::kNetwork, "host '" + book->host_ + "' has no addresses");
  book->replace(std::move(found));
  *out = std::move(book);
  return {};
}

void AddressBook::replace(std::vector<Address> fresh) {
  std::lock_guard lock(mutex_);
  std::vector<Entry> entries;
  for (Address& address : fresh) {
    Entry entry{address, 0};
    // An address that is still in the answer keeps its cool-down.
    for (const Entry& old : entries_)
      if (old.address == address) entry.cool_until_ns = old.cool_until_ns;
    entries.push_back(entry);
  }
  entries_ = std::move(entries);
  resolved_ns_ = engine::monotonic_ns();
  ++lookups_;
}

Address AddressBook::pick() {
  std::unique_lock lock(mutex_);
  const uint64_t now = engine::monotonic_ns();
  if (!refreshing_ && now - resolved_ns_ > kTtlNs) {
    refreshing_ = true;
    lock.unlock();
    refresh_in_background();
    lock.lock();
  }
  const size_t n = entries_.size();
  for (size_t k = 0; k < n; ++k) {
    const Entry& entry = entries_[(next_ + k) % n];
    if (entry.cool_until_ns <= now) {
      next_ = (next_ + k + 1) % n;
      return entry.address;
    }
  }
  // Every address is cooling down: go round them anyway rather than refuse to connect.
  return entries_[next_++ % n].address;
}

void AddressBook::cool_down(const Address& address) {
  std::lock_guard lock(mutex_);
  for (Entry& entry : entries_)
    if (entry.address == address) entry.cool_until_ns = engine::monotonic_ns() + kCooldownNs;
}

size_t AddressBook::healthy_others(const Address& address) const {
  std::lock_guard lock(mutex_);
  const uint64_t now = engine::monotonic_ns();
  size_t n = 0;
  for (const Entry& entry : entries_)
    if (!(entry.address == address) && entry.cool_until_ns <= now) ++n;
  return n;
}

uint64_t AddressBook::lookups() const {
  std::lock_guard lock(mutex_);
  return lookups_;
}

std::vector<Address> AddressBook::addresses() const {
  std::lock_guard lock(mutex_);
  std::vector<Address> out;
  for (const Entry& entry : entries_) out.push_back(entry.address);
  return out;
}

void AddressBook::refresh_in_background() {
  std::thread([self = shared_from_this()] {
    std::vector<Address> found;
    const Status status = self->lookup_(self->host_, self->port_, &found);
    if (status.ok() && !found.empty()) {
      self->replace(std::move(found));
    } else {
      std::lock_guard lock(self->mutex_);
      self->resolved_ns_ = engine::monotonic_ns();  // keep the old list; try again after another TTL
    }
    std::lock_guard lock(self->mutex_);
    self->refreshing_ = false;
  }).detach();
}

}  // namespace ringfetch::http
