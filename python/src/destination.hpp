// Caller memory for plan items (`into=`) and register_memory(): any writable, C-contiguous buffer, taken through
// the buffer protocol, a torch.Tensor-like object (data_ptr(), is_contiguous(), CPU device) or
// __array_interface__. The Destination keeps the owner alive (and a buffer export held, so a bytearray cannot be
// resized) for as long as a plan, batch or view refers to it.
#pragma once

#include <pybind11/pybind11.h>

#include <cstddef>
#include <memory>
#include <span>

namespace ringfetch::python {

namespace py = pybind11;

class Destination {
 public:
  // TypeError for read-only or unsupported objects, ValueError for non-contiguous memory or a non-CPU tensor.
  // `what` names the argument in messages ("into", "buffer").
  static std::shared_ptr<Destination> acquire(py::handle object, const char* what);
  ~Destination();  // needs the GIL (only Python-owned objects hold Destinations)
  Destination(const Destination&) = delete;
  Destination& operator=(const Destination&) = delete;

  std::span<std::byte> bytes() const noexcept { return bytes_; }
  py::handle owner() const noexcept { return owner_; }

 private:
  Destination() = default;
  py::object owner_;
  Py_buffer buffer_{};
  bool has_buffer_ = false;
  std::span<std::byte> bytes_;
};

}  // namespace ringfetch::python
