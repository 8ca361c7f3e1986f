// Connection implementation: socket ops as Completions on the owning worker's loop. For TLS, the session reads
// ciphertext in place from network_buffer_ (what the last recv filled) and appends its records to send_buffer_.
#include "http/connection.hpp"

#include <netdb.h>
#include <netinet/tcp.h>
#include <unistd.h>

#include <algorithm>
#include <cassert>
#include <cerrno>
#include <cstring>

namespace ringfetch::http {

Connection::Connection(engine::Worker& worker, const Endpoint& endpoint, std::shared_ptr<TlsContext> tls,
                       engine::StatsCounters& counters)
    : worker_(worker), endpoint_(endpoint), counters_(counters), tls_context_(std::move(tls)) {
  for (engine::Completion* c : {&connect_op_, &send_op_, &recv_op_}) c->context = this;
  connect_op_.callback = &Connection::on_connect_done;
  send_op_.callback = &Connection::on_send_done;
  recv_op_.callback = &Connection::on_recv_done;
}

Connection::~Connection() {
  if (fd_ >= 0) close(fd_);
}

bool Connection::in_flight() const noexcept {
  return connect_op_.in_flight || send_op_.in_flight || recv_op_.in_flight;
}

void Connection::cancel() {
  for (engine::Completion* c : {&connect_op_, &send_op_, &recv_op_}) worker_.loop().cancel(c);
}

void Connection::connect(ConnectionUser* user, const Address& address, uint64_t timeout_ns) {
  user_ = user;
  timeout_ns_ = timeout_ns;
  address_ = address;
  fd_ = socket(address.storage.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd_ < 0) {
    finish_connect(Status(ErrorKind::kNetwork, std::string("socket() failed: ") + strerror(errno)));
    return;
  }
  const int one = 1;
  setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  counters_.add(counters_.connections_opened, 1);
  connect_op_.op = engine::Completion::Op::kConnect;
  connect_op_.fd = fd_;
  connect_op_.addr = address.storage;
  connect_op_.addr_len = address.length;
  connect_op_.timeout_ns = timeout_ns;
  pending_ = Pending::kConnect;
  worker_.loop().submit(&connect_op_);
}

void Connection::finish_connect(const Status& status) {
  pending_ = Pending::kNone;
  connected_ = status.ok();
  user_->on_connected(status);
}

void Connection::on_connect_done(engine::Completion* c) {
  auto* self = static_cast<Connection*>(c->context);
  const std::string where = self->endpoint_.host_header;
  if (c->result < 0) {
    const ErrorKind kind = c->result == -ETIMEDOUT ? ErrorKind::kTimeout : ErrorKind::kNetwork;
    self->finish_connect(Status(kind, "connect to " + where + " (" + self->address_.text() + ") failed: " +
                                          strerror(-c->result)));
    return;
  }
  if (!self->tls_context_) {
    self->finish_connect({});
    return;
  }
  self->tls_ = std::make_unique<TlsSession>();
  self->send_buffer_.clear();
  Status init = self->tls_->init(self->tls_context_, self->endpoint_.host, self->endpoint_.ip_literal,
                                 &self->send_buffer_);
  if (!init.ok()) {
    self->finish_connect(init);
    return;
  }
  self->network_buffer_.resize(kNetworkBufferBytes);
  self->pending_ = Pending::kHandshake;
  self->continue_handshake();
}

void Connection::continue_handshake() {
  const TlsSession::Result r = tls_->handshake();
  if (!send_buffer_.empty()) {
    flush_tls_output(Pending::kHandshake);
    return;
  }
  switch (r) {
    case TlsSession::Result::kDone:
      counters_.add(counters_.tls_handshakes, 1);
      if (tls_->session_reused()) counters_.add(counters_.tls_resumptions, 1);
      finish_connect({});
      return;
    case TlsSession::Result::kWantInput:
      submit_network_recv(timeout_ns_);
      return;
    case TlsSession::Result::kClosed:
      finish_connect(Status(ErrorKind::kNetwork, "TLS handshake with " + endpoint_.host_header + ": peer closed"));
      return;
    case TlsSession::Result::kError:
      tls_status_ = tls_->status();
      finish_connect(tls_->status());
      return;
  }
}

// The session has appended its records to send_buffer_ (records a read produced, such as a TLS 1.3 key update
// reply, are already in front of them); send them all.
void Connection::flush_tls_output(Pending then) {
  send_tail_ = {};
  send_offset_ = 0;
  after_flush_ = then;
  submit_send();
}

void Connection::send(ConnectionUser* user, std::string_view head, std::span<const std::byte> body) {
  user_ = user;
  pending_ = Pending::kSend;
  if (tls_) {
    assert(!send_op_.in_flight && "TLS records are appended to send_buffer_, which a send in flight reads");
    const bool written = tls_->write(head.data(), head.size()) == TlsSession::Result::kDone &&
                         (body.empty() || tls_->write(body.data(), body.size()) == TlsSession::Result::kDone);
    if (!written) {
      tls_status_ = tls_->status();
      user_->on_sent(tls_->status());
      return;
    }
    flush_tls_output(Pending::kSend);
    return;
  }
  send_buffer_.assign(head);
  send_tail_ = body;
  send_offset_ = 0;
  after_flush_ = Pending::kSend;
  submit_send();
}

void Connection::submit_send() {
  constexpr size_t kMaxSendBytes = 1u << 30;
  send_op_.op = engine::Completion::Op::kSend;
  send_op_.fd = fd_;
  if (send_offset_ < send_buffer_.size()) {
    send_op_.buf = reinterpret_cast<std::byte*>(send_buffer_.data() + send_offset_);
    send_op_.len = static_cast<uint32_t>(send_buffer_.size() - send_offset_);
  } else {
    const size_t tail_offset = send_offset_ - send_buffer_.size();
    send_op_.buf = const_cast<std::byte*>(send_tail_.data() + tail_offset);  // send only reads it
    send_op_.len = static_cast<uint32_t>(std::min(send_tail_.size() - tail_offset, kMaxSendBytes));
  }
  send_op_.timeout_ns = timeout_ns_;
  worker_.loop().submit(&send_op_);
}

void Connection::on_send_done(engine::Completion* c) {
  auto* self = static_cast<Connection*>(c->context);
  if (c->result <= 0) {
    const int err = c->result == 0 ? EPIPE : -c->result;
    Status status(err == ETIMEDOUT ? ErrorKind::kTimeout : ErrorKind::kNetwork,
                  "send to " + self->endpoint_.host_header + " failed: " + strerror(err));
    if (self->after_flush_ == Pending::kHandshake) self->finish_connect(status);
    else self->user_->on_sent(status);
    return;
  }
  self->send_offset_ += static_cast<size_t>(c->result);
  if (self->send_offset_ < self->send_buffer_.size() + self->send_tail_.size()) {
    self->submit_send();
    return;
  }
  self->send_buffer_.clear();  // keeps its capacity: the next records go into the same memory
  if (self->after_flush_ == Pending::kHandshake) {
    self->continue_handshake();
    return;
  }
  self->pending_ = Pending::kNone;
  self->send_tail_ = {};
  self->user_->on_sent({});
}

void Connection::receive(ConnectionUser* user, std::byte* dest, uint32_t length, int32_t buf_index,
                         uint64_t timeout_ns) {
  user_ = user;
  pending_ = Pending::kReceive;
  timeout_ns_ = timeout_ns;
  if (tls_) {
    dest_ = dest;
    dest_length_ = length;
    tls_receive();
    return;
  }
  recv_op_.op = engine::Completion::Op::kRecv;
  recv_op_.fd = fd_;
  recv_op_.buf = dest;
  recv_op_.len = length;
  recv_op_.buf_index = buf_index;
  recv_op_.timeout_ns = timeout_ns;
  worker_.loop().submit(&recv_op_);
}

// Decrypts every record at hand before calling back, so the exchange sees one callback per received chunk rather
// than one per 16 KiB record. A close or failure found after some plaintext is held back and reported by the next
// receive, after the bytes that preceded it.
void Connection::tls_receive() {
  size_t filled = 0;
  TlsSession::Result r = tls_held_result_;
  tls_held_result_ = TlsSession::Result::kDone;
  while (r == TlsSession::Result::kDone && filled < dest_length_) {
    size_t n = 0;
    r = tls_->read(dest_ + filled, dest_length_ - filled, &n);
    if (r == TlsSession::Result::kDone) filled += n;
  }
  if (filled > 0) {
    if (r == TlsSession::Result::kClosed || r == TlsSession::Result::kError) tls_held_result_ = r;
    pending_ = Pending::kNone;
    user_->on_received(static_cast<int32_t>(filled));
    return;
  }
  switch (r) {
    case TlsSession::Result::kDone:  // nothing was asked for
      pending_ = Pending::kNone;
      user_->on_received(0);
      return;
    case TlsSession::Result::kWantInput:
      submit_network_recv(timeout_ns_);
      return;
    case TlsSession::Result::kClosed:
      pending_ = Pending::kNone;
      user_->on_received(0);
      return;
    case TlsSession::Result::kError:
      tls_status_ = tls_->status();
      pending_ = Pending::kNone;
      user_->on_received(-EPROTO);
      return;
  }
}

// Only called once the session has read all of the previous recv's bytes, so the recv may overwrite them.
void Connection::submit_network_recv(uint64_t timeout_ns) {
  assert(tls_->unread_input() == 0);
  recv_op_.op = engine::Completion::Op::kRecv;
  recv_op_.fd = fd_;
  recv_op_.buf = network_buffer_.data();
  recv_op_.len = static_cast<uint32_t>(network_buffer_.size());
  recv_op_.buf_index = -1;
  recv_op_.timeout_ns = timeout_ns;
  worker_.loop().submit(&recv_op_);
}

void Connection::on_recv_done(engine::Completion* c) {
  auto* self = static_cast<Connection*>(c->context);
  if (self->pending_ == Pending::kHandshake) {
    if (c->result <= 0) {
      const int err = c->result == 0 ? ECONNRESET : -c->result;
      self->finish_connect(Status(err == ETIMEDOUT ? ErrorKind::kTimeout : ErrorKind::kNetwork,
                                  "TLS handshake with " + self->endpoint_.host_header + " failed: " + strerror(err)));
      return;
    }
    self->tls_->set_input(std::span(self->network_buffer_.data(), static_cast<size_t>(c->result)));
    self->continue_handshake();
    return;
  }
  if (!self->tls_ || c->result <= 0) {
    self->pending_ = Pending::kNone;
    self->user_->on_received(c->result);
    return;
  }
  self->tls_->set_input(std::span(self->network_buffer_.data(), static_cast<size_t>(c->result)));
  self->tls_receive();
}

}  // namespace ringfetch::http
