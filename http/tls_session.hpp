// TlsContext / TlsSession: OpenSSL behind memory BIOs, so that the engine's loop does all socket I/O and OpenSSL
// only transforms bytes: ciphertext in (put_input), plaintext out straight into the caller's destination (read),
// and the reverse for writes. Verification is on by default (system store, or a CA file); sessions are reused.
#pragma once

#include <cstddef>
#include <memory>
#include <mutex>
#include <string>

#include "ringfetch/error.hpp"

typedef struct ssl_ctx_st SSL_CTX;
typedef struct ssl_st SSL;
typedef struct ssl_session_st SSL_SESSION;
typedef struct bio_st BIO;

namespace ringfetch::http {

struct TlsOptions {
  bool verify = true;
  std::string ca_file;  // PEM; empty: SSL_CERT_FILE, AWS_CA_BUNDLE, then the system store
};

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

  // server_name: SNI and the name checked against the certificate (an IP literal is checked as an IP).
  Status init(std::shared_ptr<TlsContext> context, const std::string& server_name, bool ip_literal);
  ~TlsSession();

  Result handshake();
  // Plaintext into dest; *n gets the count for kDone. kWantInput: feed more ciphertext first.
  Result read(void* dest, size_t capacity, size_t* n);
  // Encrypts all of data into the output buffer (memory BIOs never block).
  Result write(const void* data, size_t n);
  void put_input(const void* data, size_t n);
  size_t pending_output() const;
  size_t take_output(void* dest, size_t capacity);
  bool has_buffered_plaintext() const;
  // Why the last kError happened (certificate verification, protocol error...).
  const Status& status() const noexcept { return status_; }
  bool session_reused() const;

 private:
  Result fail(int rc, const char* what);
  std::shared_ptr<TlsContext> context_;
  SSL* ssl_ = nullptr;
  BIO* network_in_ = nullptr;   // owned by ssl_
  BIO* network_out_ = nullptr;  // owned by ssl_
  std::string server_name_;
  Status status_;
};

}  // namespace ringfetch::http
