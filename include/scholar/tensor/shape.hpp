// scholar/tensor/shape.hpp: shapes, strides and the layout of a strided view.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <iosfwd>
#include <optional>
#include <span>
#include <string>
#include <utility>

namespace scholar {

/// Most dimensions a tensor may have.
inline constexpr int kMaxDims = 8;

/// A short list of up to kMaxDims integers: the sizes of a tensor's dimensions, or its strides
/// (in elements). Printed as "[2, 3]".
class Dims {
 public:
  Dims() = default;  // rank 0: the shape of a scalar
  Dims(std::initializer_list<int64_t> dims);
  explicit Dims(std::span<const int64_t> dims);

  int rank() const noexcept { return rank_; }
  int size() const noexcept { return rank_; }
  bool empty() const noexcept { return rank_ == 0; }
  int64_t operator[](int i) const noexcept { return d_[i]; }
  int64_t& operator[](int i) noexcept { return d_[i]; }
  const int64_t* begin() const noexcept { return d_; }
  const int64_t* end() const noexcept { return d_ + rank_; }
  int64_t* begin() noexcept { return d_; }
  int64_t* end() noexcept { return d_ + rank_; }
  const int64_t* data() const noexcept { return d_; }
  std::span<const int64_t> span() const noexcept { return {d_, static_cast<size_t>(rank_)}; }

  /// Appends one value; throws ShapeError past kMaxDims.
  void push_back(int64_t v);
  /// Inserts v before position i (0 <= i <= rank).
  void insert(int i, int64_t v);
  /// Removes position i.
  void erase(int i);

  /// Product of all values (1 for rank 0). Throws ShapeError if a value is negative or the product
  /// overflows int64; `op` names the caller in the message.
  int64_t numel(const char* op = "shape") const;

  /// "[2, 3]"
  std::string str() const;

  friend bool operator==(const Dims& a, const Dims& b) noexcept;

 private:
  int64_t d_[kMaxDims] = {};
  int rank_ = 0;
};

using Shape = Dims;
using Strides = Dims;

std::ostream& operator<<(std::ostream& os, const Dims& d);

/// Where a tensor's elements sit in its storage: element (i0, i1, ...) is at
/// offset + i0 * strides[0] + i1 * strides[1] + ... (all in elements).
struct Layout {
  Shape shape;
  Strides strides;
  int64_t offset = 0;

  /// Row-major (C order) layout of a fresh tensor of this shape.
  static Layout contiguous(const Shape& shape);

  int rank() const noexcept { return shape.rank(); }
  int64_t numel() const { return shape.numel(); }
  /// True if the elements are densely packed in row-major order (size-1 dims may have any stride).
  bool is_contiguous() const noexcept;
  /// Smallest and one-past-largest storage offsets touched (both = offset for an empty tensor).
  std::pair<int64_t, int64_t> extent() const noexcept;
};

/// View arithmetic shared by every Tensor<T>. Each function returns the layout of the view, or
/// throws ShapeError / IndexError naming the op and the offending values.
namespace layout {

/// Maps a possibly negative dimension index into [0, rank); throws IndexError naming `op`.
int normalize_dim(int dim, int rank, const char* op);

Layout slice(const Layout& l, int dim, int64_t start, int64_t stop, int64_t step);
Layout select(const Layout& l, int dim, int64_t index);
Layout transpose(const Layout& l, int d0, int d1);
Layout permute(const Layout& l, std::span<const int> order);
/// The view layout if `shape` can be viewed without a copy, else nullopt. One entry of `shape`
/// may be -1 (inferred). Throws ShapeError if the element counts differ.
std::optional<Layout> reshape(const Layout& l, Shape shape);
/// Removes dimension `dim`, which must have size 1.
Layout squeeze(const Layout& l, int dim);
/// Removes every dimension of size 1.
Layout squeeze_all(const Layout& l);
/// Inserts a dimension of size 1 before position dim (0 <= dim <= rank; negative counts from end).
Layout unsqueeze(const Layout& l, int dim);
/// Broadcasts to `shape` (NumPy rules; -1 keeps a size) with stride 0 on repeated dimensions.
Layout expand(const Layout& l, const Shape& shape);
/// The NumPy broadcast of two shapes; throws ShapeError naming `op` and both shapes.
Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op);

}  // namespace layout
}  // namespace scholar
