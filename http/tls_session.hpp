// TlsContext / TlsSession: OpenSSL behind a BIO of our own, so that the engine's loop does all socket I/O and
// OpenSSL only transforms bytes. Ciphertext comes in as a view of the connection's receive buffer (set_input) and
// OpenSSL reads it from there; plaintext goes out straight into the caller's destination (read); outgoing records
// are appended to the connection's send buffer. Verification is on by default (system store, or a CA file);
// sessions are reused.
#pragma once

#include <cstddef>
#include <memory>
#include <mutex>
#include <span>
#include <string>

#include "ringfetch/error.hpp"

typedef struct ssl_ctx_st SSL_CTX;
typedef struct ssl_st SSL;
typedef struct ssl_session_st SSL_SESSION;

namespace ringfetch::http {

struct TlsOptions {
  bool verify = true;
  std::string ca_file;  // PEM; empty: SSL_CERT_FILE, AWS_CA_BUNDLE, then the system store
};

// Whether this kernel can take TLS record processing over on a TCP socket (the "tls" upper-layer protocol):
// probed once per process on a throwaway loopback connection, then cached. False whenever anything about the probe
// fails, so callers simply keep TLS in user space.
bool kernel_offers_ktls();

class TlsContext {
 public:
  // Errors (kInvalidArgument) name an unreadable CA file.
  static Status create(const TlsOptions& options, std::shared_ptr<TlsContext>* out);
  ~TlsContext();
  TlsContext(const TlsContext&) = delete;
  TlsContext& operator=(const TlsContext&) = delete;

  SSL_CTX* ctx() const noexcept { return ctx_; }
  bool verify() const noexcept { return verify_; }
  // The most recent session the server handed out, for resumption on new connections (owned reference or null).
  SSL_SESSION* take_session_for_reuse();
  void remember_session(SSL_SESSION* session);  // takes ownership

 private:
  TlsContext() = default;
  SSL_CTX* ctx_ = nullptr;
  bool verify_ = true;
  std::mutex mutex_;
  SSL_SESSION* session_ = nullptr;
};

class TlsSession {
 public:
  enum class Result { kDone, kWantInput, kClosed, kError };

  TlsSession() = default;
  ~TlsSession();
  TlsSession(const TlsSession&) = delete;  // OpenSSL's BIO points at this object
  TlsSession& operator=(const TlsSession&) = delete;

  // server_name: SNI and the name checked against the certificate (an IP literal is checked as an IP).
  // output: where every outgoing TLS record is appended (the connection's send buffer); it must outlive the session.
  Status init(std::shared_ptr<TlsContext> context, const std::string& server_name, bool ip_literal,
              std::string* output);

  Result handshake();
  // Plaintext into dest; *n gets the count for kDone. kWantInput: all input is consumed, receive more first.
  Result read(void* dest, size_t capacity, size_t* n);
  // Encrypts all of data onto the output string (it only grows, so this never waits).
  Result write(const void* data, size_t n);
  // Ciphertext for OpenSSL to read in place. The bytes are borrowed: they must stay untouched until
  // unread_input() is 0, which is always the case once handshake() or read() has returned kWantInput.
  void set_input(std::span<const std::byte> ciphertext);
  size_t unread_input() const noexcept { return channel_.input.size() - channel_.consumed; }
  bool has_buffered_plaintext() const;
  // Why the last kError happened (certificate verification, protocol error...).
  const Status& status() const noexcept { return status_; }
  bool session_reused() const;

  // What the custom BIO reads from and writes to; public only for its C callbacks in the .cpp.
  struct Channel {
    std::span<const std::byte> input;
    size_t consumed = 0;
    std::string* output = nullptr;
  };

 private:
  Result fail(int rc, const char* what);
  std::shared_ptr<TlsContext> context_;
  SSL* ssl_ = nullptr;
  Channel channel_;
  std::string server_name_;
  Status status_;
};

}  // namespace ringfetch::http
