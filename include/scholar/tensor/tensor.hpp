// scholar/tensor/tensor.hpp: Tensor<T>, a strided view of shared, 64-byte aligned storage.
//
// A Tensor is a handle, like a torch.Tensor: copying one copies the handle, not the elements, and
// views (slice, transpose, reshape, expand, ...) share the storage of the tensor they came from.
// Writing through any view is seen by all of them; clone() or contiguous() makes a private copy.
//
//   auto x = Tensor<float>::zeros({2, 3});          // fresh, zero-filled, row-major
//   x(1, 2) = 5.0f;                                  // checked element access
//   auto col = x.slice(1, 2, 3);                     // shape [2, 1], shares x's storage
//   auto xt = x.transpose(0, 1);                     // shape [3, 2], strides [1, 3]
//   auto flat = x.reshape({-1});                     // a view: x is contiguous
//   auto y = xt.contiguous().reshape({6});           // reshaping xt itself would need a copy
//
// Element types: float (compute), bf16 and f16 (storage), int32_t (token ids). Arithmetic lives in
// scholar/tensor/ops.hpp and works on float tensors; other types convert with to<float>().
//
// Thread-safety: a Tensor may be read from many threads at once. Writing elements while another
// thread reads or writes the same elements is a data race, as for any array.
#pragma once

#include <algorithm>
#include <cstdint>
#include <initializer_list>
#include <iosfwd>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "scholar/error.hpp"
#include "scholar/tensor/dtype.hpp"
#include "scholar/tensor/shape.hpp"

namespace scholar {

namespace detail {
/// Allocates `bytes` (at least 64) aligned to 64 bytes; the shared_ptr frees them.
std::shared_ptr<void> allocate_aligned(size_t bytes);
/// Copies the elements of a strided source view into a strided destination view of the same
/// shape (element size `elem` bytes). Handles broadcast (stride 0) sources.
void strided_copy(void* dst, const Layout& dl, const void* src, const Layout& sl, size_t elem);
/// Converts elements between dtypes: dst (contiguous, n elements) from a strided src view.
void convert(void* dst, DType dt, const void* src, DType st, const Layout& sl);
/// Throws IndexError for an out-of-range index tuple, naming the op.
[[noreturn]] void throw_bad_index(const char* op, std::span<const int64_t> idx, const Shape& shape);
}  // namespace detail

/// Tensor storage of 64 KiB and more is recycled: a freed block is kept (by size) for the next
/// tensor of that size, which saves the page faults of fresh memory. The cache holds at most this
/// many bytes (default: default_storage_cache_limit(), or SCHOLAR_STORAGE_CACHE_MB); 0 turns it
/// off. Thread-safe.
void set_storage_cache_limit(size_t bytes);
/// The limit set now, in bytes.
size_t storage_cache_limit();
/// A quarter of physical memory, and at least 1 GiB: enough for the buffers one training step of
/// a 124M-parameter model frees and allocates again (below that, every step pays their page
/// faults: 12% of a GPT-2 small step at 1 GiB). Cached blocks are memory the process has already
/// used, so the cache raises peak memory little (2% there).
size_t default_storage_cache_limit();
/// Bytes held in the cache right now.
size_t storage_cache_bytes();
/// Frees every cached block (the limit stays).
void empty_storage_cache();

/// While this is on, tensor storage of 2 MiB and more is mapped on 2 MiB boundaries and advised
/// to Linux for transparent huge pages (madvise MADV_HUGEPAGE; the kernel must allow it:
/// /sys/kernel/mm/transparent_hugepage/enabled is "always" or "madvise"). Fewer TLB misses make
/// large products faster, most on virtual machines, where each miss walks two page tables (0-4%,
/// and up to 1.7x while the host's page walks are slow, on the machine of docs/performance.md);
/// the first touch of fresh huge pages can cost more there (a GPT-2 small training process
/// started 10-25 s slower). Off by default, as in PyTorch; SCHOLAR_HUGE_PAGES=on (or 1) turns it
/// on at start-up. The GEMMs' packing buffers use huge pages wherever the OS offers them. Applies
/// to blocks allocated afterwards. Thread-safe.
void set_huge_pages(bool enabled);
/// Whether new large blocks are advised for huge pages: the setting, and the OS offers them.
/// Throws ValueError if SCHOLAR_HUGE_PAGES holds another value than on, off, 1 or 0.
bool huge_pages();

/// An n-dimensional strided view (rank 0 to kMaxDims) of elements of type T.
template <Element T>
class Tensor {
 public:
  using value_type = T;

  /// An undefined tensor (defined() is false): no storage, rank 0.
  Tensor() = default;

  // --- creation ------------------------------------------------------------------------------

  /// Fresh row-major tensor of this shape; the elements are not initialized.
  static Tensor empty(const Shape& shape) {
    const Layout l = Layout::contiguous(shape);
    const int64_t n = l.numel();
    if (static_cast<uint64_t>(n) > UINT64_MAX / sizeof(T) / 2)
      fail<ShapeError>("empty: shape ", shape.str(), " needs more bytes than memory can address");
    Tensor t;
    t.owner_ = detail::allocate_aligned(static_cast<size_t>(n) * sizeof(T));
    t.base_ = static_cast<T*>(t.owner_.get());
    t.capacity_ = n;
    t.layout_ = l;
    return t;
  }
  /// Fresh tensor filled with value.
  static Tensor full(const Shape& shape, T value) {
    Tensor t = empty(shape);
    std::fill_n(t.base_, t.capacity_, value);
    return t;
  }
  static Tensor zeros(const Shape& shape) { return full(shape, T{}); }
  static Tensor ones(const Shape& shape) { return full(shape, T(1.0f)); }
  /// Fresh tensor holding a copy of `values` in row-major order; sizes must agree.
  static Tensor from(const Shape& shape, std::span<const T> values) {
    Tensor t = empty(shape);
    if (static_cast<int64_t>(values.size()) != t.capacity_)
      fail<ShapeError>("Tensor::from: ", values.size(), " values for shape ", shape.str(), " (",
                       t.capacity_, " elements)");
    std::copy(values.begin(), values.end(), t.base_);
    return t;
  }
  static Tensor from(const Shape& shape, std::initializer_list<T> values) {
    return from(shape, std::span<const T>(values.begin(), values.size()));
  }
  /// A rank-0 tensor holding one value.
  static Tensor scalar(T value) { return full(Shape{}, value); }

  /// A view of memory scholar does not own: `data` must stay valid while any view of it lives,
  /// unless `owner` keeps it alive (it is shared by every view). Strides default to row-major.
  static Tensor wrap(T* data, const Shape& shape, std::shared_ptr<void> owner = {}) {
    return wrap(data, Layout::contiguous(shape), std::move(owner));
  }
  static Tensor wrap(T* data, const Shape& shape, const Strides& strides,
                     std::shared_ptr<void> owner = {}) {
    if (strides.rank() != shape.rank())
      fail<ShapeError>("Tensor::wrap: strides ", strides.str(), " do not match shape ",
                       shape.str());
    for (int64_t s : strides)
      if (s < 0) fail<ShapeError>("Tensor::wrap: negative stride in ", strides.str());
    Layout l;
    l.shape = shape;
    l.strides = strides;
    l.shape.numel("Tensor::wrap");
    return wrap(data, l, std::move(owner));
  }

  // --- inspection -----------------------------------------------------------------------------

  bool defined() const noexcept { return base_ != nullptr; }
  const Shape& shape() const noexcept { return layout_.shape; }
  const Strides& strides() const noexcept { return layout_.strides; }
  const Layout& layout() const noexcept { return layout_; }
  int rank() const noexcept { return layout_.rank(); }
  int64_t numel() const { return layout_.numel(); }
  /// Size of one dimension; negative dims count from the end.
  int64_t size(int dim) const { return layout_.shape[layout::normalize_dim(dim, rank(), "size")]; }
  int64_t stride(int dim) const {
    return layout_.strides[layout::normalize_dim(dim, rank(), "stride")];
  }
  static constexpr DType dtype() noexcept { return dtype_of<T>(); }
  /// Pointer to element (0, ..., 0); the others are reached through strides().
  T* data() const noexcept { return base_ ? base_ + layout_.offset : nullptr; }
  bool is_contiguous() const noexcept { return layout_.is_contiguous(); }
  /// The elements of a contiguous tensor as a span (ShapeError if not contiguous).
  std::span<T> span() const {
    if (!is_contiguous())
      fail<ShapeError>("span: tensor of shape ", shape().str(), " and strides ", strides().str(),
                       " is not contiguous; call contiguous() first");
    return {data(), static_cast<size_t>(numel())};
  }
  /// True if both tensors view the same storage.
  bool shares_storage_with(const Tensor& o) const noexcept {
    return owner_ == o.owner_ && base_ == o.base_;
  }

  // --- element access (bounds-checked) --------------------------------------------------------

  template <class... Idx>
  T& operator()(Idx... idx) const {
    const int64_t ix[] = {static_cast<int64_t>(idx)..., 0};
    return element(std::span<const int64_t>(ix, sizeof...(Idx)), "operator()");
  }
  T& at(std::initializer_list<int64_t> idx) const {
    return element(std::span<const int64_t>(idx.begin(), idx.size()), "at");
  }
  /// The single element of a tensor with numel() == 1.
  T item() const {
    if (numel() != 1)
      fail<ShapeError>("item: tensor of shape ", shape().str(), " has ", numel(),
                       " elements, not 1");
    return *data();
  }
  /// The elements in row-major order.
  std::vector<T> to_vector() const {
    std::vector<T> v(static_cast<size_t>(numel()));
    if (!v.empty())
      detail::strided_copy(v.data(), Layout::contiguous(shape()), data(), zero_offset(), sizeof(T));
    return v;
  }

  // --- views (no copies) ----------------------------------------------------------------------

  /// Elements start, start+step, ... < stop along dim; negative start/stop count from the end.
  Tensor slice(int dim, int64_t start, int64_t stop, int64_t step = 1) const {
    return view(layout::slice(layout_, dim, start, stop, step));
  }
  /// The sub-tensor at `index` along dim, with that dimension removed.
  Tensor select(int dim, int64_t index) const { return view(layout::select(layout_, dim, index)); }
  /// select(0, i)
  Tensor operator[](int64_t i) const { return select(0, i); }
  Tensor transpose(int d0, int d1) const { return view(layout::transpose(layout_, d0, d1)); }
  /// Transpose of a 2-D tensor.
  Tensor t() const {
    if (rank() != 2) fail<ShapeError>("t: expected a 2-D tensor, got shape ", shape().str());
    return transpose(0, 1);
  }
  Tensor permute(std::initializer_list<int> order) const {
    return view(layout::permute(layout_, std::span<const int>(order.begin(), order.size())));
  }
  Tensor permute(std::span<const int> order) const { return view(layout::permute(layout_, order)); }
  /// A view with a new shape (one entry may be -1). Throws ShapeError if the strides do not allow a
  /// view; then call contiguous().reshape(...) to copy explicitly.
  Tensor reshape(const Shape& new_shape) const {
    auto l = layout::reshape(layout_, new_shape);
    if (!l)
      fail<ShapeError>("reshape: a tensor of shape ", shape().str(), " and strides ",
                       strides().str(), " cannot be viewed as ", new_shape.str(),
                       " without a copy; call contiguous() first");
    return view(*l);
  }
  Tensor squeeze() const { return view(layout::squeeze_all(layout_)); }
  Tensor squeeze(int dim) const { return view(layout::squeeze(layout_, dim)); }
  Tensor unsqueeze(int dim) const { return view(layout::unsqueeze(layout_, dim)); }
  /// Broadcasts size-1 dimensions (and new leading ones) to `shape` without copying (stride 0).
  /// Writing into an expanded tensor writes the shared element.
  Tensor expand(const Shape& new_shape) const { return view(layout::expand(layout_, new_shape)); }

  // --- copies ---------------------------------------------------------------------------------

  /// This tensor if it is contiguous, else a contiguous copy.
  Tensor contiguous() const { return is_contiguous() ? *this : clone(); }
  /// A contiguous copy with its own storage.
  Tensor clone() const {
    Tensor t = empty(shape());
    if (t.capacity_ > 0) detail::strided_copy(t.base_, t.layout_, data(), zero_offset(), sizeof(T));
    return t;
  }
  /// A contiguous copy converted to element type U (float <-> bf16/f16 round to nearest even).
  template <Element U>
  Tensor<U> to() const {
    Tensor<U> out = Tensor<U>::empty(shape());
    if (out.numel() > 0) detail::convert(out.data(), dtype_of<U>(), data(), dtype(), zero_offset());
    return out;
  }
  /// Copies src into this tensor, broadcasting src to this shape (ShapeError if it cannot).
  void copy_from(const Tensor& src) const {
    const Layout sl = layout::expand(src.zero_offset(), shape());
    if (numel() > 0) detail::strided_copy(data(), zero_offset(), src.data(), sl, sizeof(T));
  }
  /// Sets every element to value.
  void fill(T value) const {
    if (numel() == 0) return;
    if (is_contiguous()) {
      std::fill_n(data(), numel(), value);
    } else {
      const Tensor<T> one = Tensor<T>::full(Shape{}, value);
      copy_from(one);
    }
  }

 private:
  template <Element>
  friend class Tensor;

  static Tensor wrap(T* data, const Layout& l, std::shared_ptr<void> owner) {
    if (!data) fail<ValueError>("Tensor::wrap: null data pointer");
    Tensor t;
    t.owner_ = std::move(owner);
    t.base_ = data;
    t.layout_ = l;
    t.capacity_ = l.extent().second;
    return t;
  }
  Tensor view(const Layout& l) const {
    Tensor t = *this;
    t.layout_ = l;
    return t;
  }
  // The layout relative to data() (offset 0), for routines that take data() as the base.
  Layout zero_offset() const {
    Layout l = layout_;
    l.offset = 0;
    return l;
  }
  T& element(std::span<const int64_t> idx, const char* op) const {
    if (static_cast<int>(idx.size()) != rank()) detail::throw_bad_index(op, idx, shape());
    int64_t off = layout_.offset;
    for (int i = 0; i < rank(); ++i) {
      if (idx[i] < 0 || idx[i] >= layout_.shape[i]) detail::throw_bad_index(op, idx, shape());
      off += idx[i] * layout_.strides[i];
    }
    return base_[off];
  }

  std::shared_ptr<void> owner_;  // keeps the storage alive (null for unowned wrapped memory)
  T* base_ = nullptr;            // start of the storage
  int64_t capacity_ = 0;         // elements reachable from base_ (for checks)
  Layout layout_;
};

/// Prints "Tensor<f32>[2, 3] {{1, 2, 3}, {4, 5, 6}}"; large tensors show their first and last
/// three entries per dimension with "..." between.
template <Element T>
std::ostream& operator<<(std::ostream& os, const Tensor<T>& t);

/// The same text as operator<<.
template <Element T>
std::string to_string(const Tensor<T>& t);

extern template class Tensor<float>;
extern template class Tensor<bf16>;
extern template class Tensor<f16>;
extern template class Tensor<int32_t>;

}  // namespace scholar
