// Connection: one keep-alive HTTP/1.1 transport (TCP, optionally TLS) owned by one worker. It moves bytes only:
// connect (+ handshake), send all of a buffer, receive into a destination — plaintext with READ_FIXED straight
// into registered memory, TLS by decrypting straight into the destination. HTTP framing lives in the exchange.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "engine/engine_impl.hpp"
#include "engine/worker.hpp"
#include "http/resolver.hpp"
#include "http/tls_session.hpp"
#include "ringfetch/error.hpp"

namespace ringfetch::http {

struct Endpoint {
  std::string host;         // as in the URL (IPv6 without brackets)
  uint16_t port = 0;
  bool tls = false;
  bool ip_literal = false;
  std::string host_header;  // Host field value
};

class ConnectionUser {
 public:
  virtual ~ConnectionUser() = default;
  virtual void on_connected(const Status& status) = 0;
  virtual void on_sent(const Status& status) = 0;
  // result > 0: bytes placed in the destination; 0: the peer closed; < 0: -errno (-ETIMEDOUT, -ECONNRESET,
  // -ECANCELED; -EPROTO for TLS failures, see tls_status()).
  virtual void on_received(int32_t result) = 0;
};

class Connection {
 public:
  static constexpr size_t kNetworkBufferBytes = 64 << 10;  // TLS ciphertext staging
  static constexpr size_t kHeadBufferBytes = 16 << 10;     // response heads and small bodies land here

  Connection(engine::Worker& worker, const Endpoint& endpoint, std::shared_ptr<TlsContext> tls,
             engine::StatsCounters& counters);
  ~Connection();  // closes the socket; no operation may be in flight
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Connects to `address` (one of the endpoint's; see AddressBook).
  void connect(ConnectionUser* user, const Address& address, uint64_t timeout_ns);
  const Address& address() const noexcept { return address_; }
  // Sends all of `head` (copied) and then all of `body` (borrowed: it must stay valid until on_sent; plaintext
  // goes out straight from it, TLS encrypts it).
  void send(ConnectionUser* user, std::string_view head, std::span<const std::byte> body = {});
  void receive(ConnectionUser* user, std::byte* dest, uint32_t length, int32_t buf_index, uint64_t timeout_ns);
  // Cancels an operation in flight; its callback still runs (with -ECANCELED or a failure status).
  void cancel();

  bool in_flight() const noexcept;
  // Memory for response heads (and error documents), owned by the connection so exchanges allocate nothing.
  std::byte* head_buffer() noexcept { return head_buffer_.get(); }
  bool connected() const noexcept { return connected_; }
  uint64_t exchanges = 0;  // responses completed on this connection
  const Status& tls_status() const noexcept { return tls_status_; }

 private:
  enum class Pending { kNone, kConnect, kHandshake, kSend, kReceive };
  static void on_connect_done(engine::Completion* c);
  static void on_send_done(engine::Completion* c);
  static void on_recv_done(engine::Completion* c);
  void continue_handshake();
  void flush_tls_output(Pending then);
  void submit_send();
  void tls_receive();
  void submit_network_recv(uint64_t timeout_ns);
  void finish_connect(const Status& status);

  engine::Worker& worker_;
  const Endpoint& endpoint_;
  engine::StatsCounters& counters_;
  std::shared_ptr<TlsContext> tls_context_;
  std::unique_ptr<TlsSession> tls_;
  int fd_ = -1;
  bool connected_ = false;
  Pending pending_ = Pending::kNone;
  Pending after_flush_ = Pending::kNone;
  ConnectionUser* user_ = nullptr;
  uint64_t timeout_ns_ = 0;
  Address address_;

  engine::Completion connect_op_;
  engine::Completion send_op_;
  engine::Completion recv_op_;
  std::string send_buffer_;
  std::span<const std::byte> send_tail_;  // borrowed body, sent after send_buffer_
  size_t send_offset_ = 0;                // into send_buffer_ then send_tail_
  std::vector<std::byte> network_buffer_;
  std::unique_ptr<std::byte[]> head_buffer_ = std::make_unique_for_overwrite<std::byte[]>(kHeadBufferBytes);
  std::byte* dest_ = nullptr;
  uint32_t dest_length_ = 0;
  TlsSession::Result tls_held_result_ = TlsSession::Result::kDone;  // see tls_receive
  Status tls_status_;
};

}  // namespace ringfetch::http
