// The file:// and direct:// sources. Every piece of a request is one or more reads issued together on the
// worker's loop (READ_FIXED when the memory is registered), continued across short reads. direct:// opens with
// O_DIRECT; the planner has already widened its extents and requests to 4 KiB, so reads are aligned and items
// are views at inner offsets of the aligned memory.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "engine/file_source.hpp"

namespace ringfetch::engine {
namespace {

constexpr uint64_t kDirectAlignment = 4096;
constexpr uint64_t kMaxOpBytes = 256ull << 20;  // one read op; longer pieces are split
constexpr uint64_t kFileMaxGap = 16 << 10;       // page-cache reads: a small gap costs less than another read
constexpr uint64_t kDirectMaxGap = 256 << 10;    // device reads: a gap is cheap next to another I/O round trip
constexpr unsigned kFileInFlight = 32;

class FileObject final : public SourceObject {
 public:
  ~FileObject() override {
    if (fd >= 0) close(fd);
  }
  int fd = -1;
};

struct FileRead;

struct FileOp {
  Completion c;
  FileRead* read = nullptr;
};

struct FileRead final : SourceRead {
  ReadTask* task = nullptr;
  Worker* worker = nullptr;
  std::shared_ptr<SourceObject> object;  // keeps the fd open while reads are in flight
  std::vector<FileOp> ops;
  size_t pending = 0;
  bool direct = false;
  Status status;
};

uint64_t align_up(uint64_t v, uint64_t a) { return (v + a - 1) / a * a; }

void finish_op(FileRead* read) {
  if (--read->pending != 0) return;
  ReadTask* task = read->task;
  Status status = std::move(read->status);
  read->status = Status();
  read->object.reset();
  task->complete(std::move(status));
}

void on_file_op(Completion* c) {
  auto* op = static_cast<FileOp*>(c->context);
  FileRead* read = op->read;
  const uint64_t size = read->object->size;
  if (c->result < 0) {
    if (read->status.ok()) {
      read->status = Status(ErrorKind::kIo, "read of " + read->object->display + " at byte " +
                                                std::to_string(c->offset) + " failed: " + strerror(-c->result));
    }
    finish_op(read);
    return;
  }
  const auto got = static_cast<uint32_t>(c->result);
  const bool at_eof = c->offset + got >= size;
  if (got == c->len || (got > 0 && at_eof && read->direct)) {
    finish_op(read);
    return;
  }
  if (got == 0) {
    if (read->status.ok()) {
      read->status = Status(ErrorKind::kIntegrity,
                            read->object->display + " ended at byte " + std::to_string(c->offset) + " but " +
                                std::to_string(c->len) + " more bytes were expected (file truncated while reading?)");
    }
    finish_op(read);
    return;
  }
  c->buf += got;  // short read: continue where it stopped
  c->len -= got;
  c->offset += got;
  read->worker->loop().submit(c);
}

class FileSource final : public Source {
 public:
  FileSource(std::string root, bool direct) : root_(std::move(root)), direct_(direct) {}

  SourceDefaults defaults() const override {
    SourceDefaults d;
    d.max_gap = direct_ ? kDirectMaxGap : kFileMaxGap;
    d.alignment = direct_ ? kDirectAlignment : 1;
    d.max_in_flight = kFileInFlight;
    return d;
  }

  Status open_object(const std::string& key, bool, std::shared_ptr<SourceObject>* out) override {
    auto object = std::make_shared<FileObject>();
    const std::string path = join_path(root_, key);
    object->key = key;
    object->display = std::string(direct_ ? "direct://" : "file://") + path;
    object->fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | (direct_ ? O_DIRECT : 0));
    if (object->fd < 0) {
      return Status(ErrorKind::kIo, "cannot open " + object->display + ": " + strerror(errno));
    }
    struct stat st{};
    if (fstat(object->fd, &st) != 0 || !S_ISREG(st.st_mode)) {
      return Status(ErrorKind::kIo, object->display + " is not a regular file");
    }
    object->size = static_cast<uint64_t>(st.st_size);
    *out = std::move(object);
    return {};
  }

  void start_read(Worker& worker, ReadTask* task) override {
    // The task's own FileRead, kept across the task's reuse: no allocation per read once its ops vector has grown.
    if (task->source_read == nullptr) task->source_read = std::make_unique<FileRead>();
    auto* read = static_cast<FileRead*>(task->source_read.get());
    read->ops.clear();
    read->task = task;
    read->worker = &worker;
    read->object = task->object;
    read->direct = direct_;
    const int fd = static_cast<FileObject&>(*task->object).fd;
    read->ops.reserve(count_ops(*task, worker));
    uint64_t offset = task->offset;
    for (const ReadPiece& piece : task->pieces) {
      add_piece_ops(read, worker, fd, piece, offset);
      offset += piece.length;
    }
    read->pending = read->ops.size();
    if (read->ops.empty()) {
      read->pending = 1;
      finish_op(read);
      return;
    }
    for (FileOp& op : read->ops) worker.loop().submit(&op.c);
  }

 private:
  static uint64_t op_limit(const ReadPiece& piece, const Worker& worker) {
    return piece.data != nullptr ? kMaxOpBytes : worker.scratch().size();
  }

  size_t count_ops(const ReadTask& task, const Worker& worker) const {
    size_t n = 0;
    for (const ReadPiece& piece : task.pieces) n += (piece.length + op_limit(piece, worker) - 1) / op_limit(piece, worker);
    return n;
  }

  void add_piece_ops(FileRead* read, Worker& worker, int fd, const ReadPiece& piece, uint64_t offset) const {
    const uint64_t limit = op_limit(piece, worker);
    for (uint64_t done = 0; done < piece.length; done += limit) {
      FileOp& op = read->ops.emplace_back();
      op.read = read;
      Completion& c = op.c;
      c.op = Completion::Op::kRead;
      c.fd = fd;
      const uint64_t len = std::min(limit, piece.length - done);
      // O_DIRECT needs whole blocks; the extent's memory is allocated rounded up, so the tail block fits.
      c.len = static_cast<uint32_t>(direct_ ? align_up(len, kDirectAlignment) : len);
      c.offset = offset + done;
      if (piece.data != nullptr) {
        c.buf = piece.data + done;
        c.buf_index = piece.buf_index;
      } else {
        c.buf = worker.scratch().data();
        c.buf_index = worker.scratch_buf_index();
      }
      c.callback = &on_file_op;
      c.context = &op;
    }
  }

  std::string root_;
  bool direct_;
};

}  // namespace

Status make_file_source(const Url& root, std::unique_ptr<Source>* out) {
  struct stat st{};
  if (stat(root.path.c_str(), &st) != 0) {
    return Status(ErrorKind::kInvalidArgument, "store root " + root.scheme + "://" + root.path + ": " + strerror(errno));
  }
  if (!S_ISDIR(st.st_mode)) {
    return Status(ErrorKind::kInvalidArgument, "store root " + root.scheme + "://" + root.path + " is not a directory");
  }
  *out = std::make_unique<FileSource>(root.path, root.scheme == "direct");
  return {};
}

}  // namespace ringfetch::engine
