// Shapes, strides and view arithmetic (independent of the element type).
#include <algorithm>
#include <ostream>

#include "scholar/error.hpp"
#include "scholar/tensor/shape.hpp"

namespace scholar {

Dims::Dims(std::initializer_list<int64_t> dims)
    : Dims(std::span<const int64_t>(dims.begin(), dims.size())) {}

Dims::Dims(std::span<const int64_t> dims) {
  if (dims.size() > static_cast<size_t>(kMaxDims))
    fail<ShapeError>("shape: ", dims.size(), " dimensions, at most ", kMaxDims, " are supported");
  rank_ = static_cast<int>(dims.size());
  std::copy(dims.begin(), dims.end(), d_);
}

void Dims::push_back(int64_t v) {
  if (rank_ == kMaxDims) fail<ShapeError>("shape: more than ", kMaxDims, " dimensions");
  d_[rank_++] = v;
}

void Dims::insert(int i, int64_t v) {
  if (rank_ == kMaxDims) fail<ShapeError>("shape: more than ", kMaxDims, " dimensions");
  if (i < 0 || i > rank_)
    fail<IndexError>("shape: insert position ", i, " outside [0, ", rank_, "]");
  for (int k = rank_; k > i; --k) d_[k] = d_[k - 1];
  d_[i] = v;
  ++rank_;
}

void Dims::erase(int i) {
  if (i < 0 || i >= rank_)
    fail<IndexError>("shape: erase position ", i, " outside [0, ", rank_, ")");
  for (int k = i; k + 1 < rank_; ++k) d_[k] = d_[k + 1];
  --rank_;
}

int64_t Dims::numel(const char* op) const {
  int64_t n = 1;
  for (int i = 0; i < rank_; ++i) {
    if (d_[i] < 0) fail<ShapeError>(op, ": negative size ", d_[i], " in shape ", str());
    if (d_[i] != 0 && n > INT64_MAX / d_[i])
      fail<ShapeError>(op, ": shape ", str(), " has more elements than int64 can count");
    n *= d_[i];
  }
  return n;
}

std::string Dims::str() const {
  std::string s = "[";
  for (int i = 0; i < rank_; ++i) {
    if (i) s += ", ";
    s += std::to_string(d_[i]);
  }
  return s + "]";
}

bool operator==(const Dims& a, const Dims& b) noexcept {
  return a.rank_ == b.rank_ && std::equal(a.begin(), a.end(), b.begin());
}

std::ostream& operator<<(std::ostream& os, const Dims& d) {
  return os << d.str();
}

Layout Layout::contiguous(const Shape& shape) {
  shape.numel("tensor");  // validates sizes
  Layout l;
  l.shape = shape;
  l.strides = shape;
  int64_t s = 1;
  for (int i = shape.rank() - 1; i >= 0; --i) {
    l.strides[i] = s;
    s *= std::max<int64_t>(shape[i], 1);
  }
  return l;
}

bool Layout::is_contiguous() const noexcept {
  int64_t expected = 1;
  for (int i = shape.rank() - 1; i >= 0; --i) {
    if (shape[i] == 0) return true;
    if (shape[i] != 1 && strides[i] != expected) return false;
    expected *= shape[i];
  }
  return true;
}

std::pair<int64_t, int64_t> Layout::extent() const noexcept {
  int64_t hi = offset;
  for (int i = 0; i < shape.rank(); ++i) {
    if (shape[i] == 0) return {offset, offset};
    hi += (shape[i] - 1) * strides[i];
  }
  return {offset, hi + 1};
}

namespace layout {

int normalize_dim(int dim, int rank, const char* op) {
  const int d = dim < 0 ? dim + rank : dim;
  if (d < 0 || d >= rank)
    fail<IndexError>(op, ": dimension ", dim, " is out of range for a tensor of rank ", rank);
  return d;
}

Layout slice(const Layout& l, int dim, int64_t start, int64_t stop, int64_t step) {
  const int d = normalize_dim(dim, l.rank(), "slice");
  const int64_t n = l.shape[d];
  if (step < 1) fail<ValueError>("slice: step must be >= 1, got ", step);
  const int64_t s = start < 0 ? start + n : start;
  const int64_t e = stop < 0 ? stop + n : stop;
  if (s < 0 || s > n || e < s || e > n)
    fail<IndexError>("slice: range [", start, ", ", stop, ") is out of bounds for dimension ", d,
                     " of size ", n, " (shape ", l.shape.str(), ")");
  Layout r = l;
  r.offset += s * l.strides[d];
  r.shape[d] = (e - s + step - 1) / step;
  r.strides[d] = l.strides[d] * step;
  return r;
}

Layout select(const Layout& l, int dim, int64_t index) {
  const int d = normalize_dim(dim, l.rank(), "select");
  const int64_t n = l.shape[d];
  const int64_t i = index < 0 ? index + n : index;
  if (i < 0 || i >= n)
    fail<IndexError>("select: index ", index, " is out of bounds for dimension ", d, " of size ", n,
                     " (shape ", l.shape.str(), ")");
  Layout r = l;
  r.offset += i * l.strides[d];
  r.shape.erase(d);
  r.strides.erase(d);
  return r;
}

Layout transpose(const Layout& l, int d0, int d1) {
  const int a = normalize_dim(d0, l.rank(), "transpose");
  const int b = normalize_dim(d1, l.rank(), "transpose");
  Layout r = l;
  std::swap(r.shape[a], r.shape[b]);
  std::swap(r.strides[a], r.strides[b]);
  return r;
}

Layout permute(const Layout& l, std::span<const int> order) {
  if (static_cast<int>(order.size()) != l.rank())
    fail<ShapeError>("permute: ", order.size(), " dimensions given for a tensor of rank ",
                     l.rank());
  bool seen[kMaxDims] = {};
  Layout r = l;
  for (int i = 0; i < l.rank(); ++i) {
    const int d = normalize_dim(order[i], l.rank(), "permute");
    if (seen[d]) fail<ShapeError>("permute: dimension ", d, " appears twice");
    seen[d] = true;
    r.shape[i] = l.shape[d];
    r.strides[i] = l.strides[d];
  }
  return r;
}

std::optional<Layout> reshape(const Layout& l, Shape shape) {
  const int64_t n = l.numel();
  int infer = -1;
  int64_t known = 1;
  for (int i = 0; i < shape.rank(); ++i) {
    if (shape[i] == -1) {
      if (infer >= 0) fail<ShapeError>("reshape: more than one -1 in ", shape.str());
      infer = i;
    } else if (shape[i] < 0) {
      fail<ShapeError>("reshape: negative size in ", shape.str());
    } else {
      known *= shape[i];
    }
  }
  if (infer >= 0) {
    if (known == 0 || n % known != 0)
      fail<ShapeError>("reshape: cannot reshape ", l.shape.str(), " (", n, " elements) into ",
                       shape.str());
    shape[infer] = n / known;
  }
  if (shape.numel("reshape") != n)
    fail<ShapeError>("reshape: cannot reshape ", l.shape.str(), " (", n, " elements) into ",
                     shape.str(), " (", shape.numel("reshape"), " elements)");
  Layout r = Layout::contiguous(shape);
  r.offset = l.offset;
  if (l.is_contiguous() || n == 0) return r;
  // Walk the old dimensions from the innermost, in chunks whose elements are evenly spaced, and
  // give the new dimensions that cover each chunk strides within it. A new dimension straddling
  // two chunks makes the view impossible.
  int view_d = shape.rank() - 1;
  int64_t chunk_stride = l.strides[l.rank() - 1];
  int64_t tensor_numel = 1, view_numel = 1;
  for (int td = l.rank() - 1; td >= 0; --td) {
    tensor_numel *= l.shape[td];
    if (td == 0 || (l.shape[td - 1] != 1 && l.strides[td - 1] != tensor_numel * chunk_stride)) {
      while (view_d >= 0 && (view_numel < tensor_numel || shape[view_d] == 1)) {
        r.strides[view_d] = view_numel * chunk_stride;
        view_numel *= shape[view_d];
        --view_d;
      }
      if (view_numel != tensor_numel) return std::nullopt;
      if (td > 0) {
        chunk_stride = l.strides[td - 1];
        tensor_numel = 1;
        view_numel = 1;
      }
    }
  }
  if (view_d != -1) return std::nullopt;
  return r;
}

Layout squeeze(const Layout& l, int dim) {
  const int d = normalize_dim(dim, l.rank(), "squeeze");
  if (l.shape[d] != 1)
    fail<ShapeError>("squeeze: dimension ", d, " has size ", l.shape[d], ", not 1 (shape ",
                     l.shape.str(), ")");
  Layout r = l;
  r.shape.erase(d);
  r.strides.erase(d);
  return r;
}

Layout squeeze_all(const Layout& l) {
  Layout r;
  r.offset = l.offset;
  for (int i = 0; i < l.rank(); ++i) {
    if (l.shape[i] == 1) continue;
    r.shape.push_back(l.shape[i]);
    r.strides.push_back(l.strides[i]);
  }
  return r;
}

Layout unsqueeze(const Layout& l, int dim) {
  const int d = dim < 0 ? dim + l.rank() + 1 : dim;
  if (d < 0 || d > l.rank())
    fail<IndexError>("unsqueeze: position ", dim, " is out of range for a tensor of rank ",
                     l.rank());
  if (l.rank() == kMaxDims)
    fail<ShapeError>("unsqueeze: tensor already has ", kMaxDims, " dimensions");
  Layout r = l;
  const int64_t stride = d < l.rank() ? l.strides[d] * l.shape[d] : 1;
  r.shape.insert(d, 1);
  r.strides.insert(d, stride);
  return r;
}

Layout expand(const Layout& l, const Shape& shape) {
  if (shape.rank() < l.rank())
    fail<ShapeError>("expand: cannot expand ", l.shape.str(), " to fewer dimensions ", shape.str());
  Layout r;
  r.offset = l.offset;
  const int lead = shape.rank() - l.rank();
  for (int i = 0; i < shape.rank(); ++i) {
    const int j = i - lead;
    int64_t size = shape[i];
    if (j < 0) {
      if (size < 0)
        fail<ShapeError>("expand: -1 is not allowed for a new leading dimension in ", shape.str());
      r.shape.push_back(size);
      r.strides.push_back(0);
      continue;
    }
    if (size == -1) size = l.shape[j];
    if (l.shape[j] == size) {
      r.shape.push_back(size);
      r.strides.push_back(l.strides[j]);
    } else if (l.shape[j] == 1 && size >= 0) {
      r.shape.push_back(size);
      r.strides.push_back(0);
    } else {
      fail<ShapeError>("expand: cannot expand ", l.shape.str(), " to ", shape.str(), " (dimension ",
                       i, ": ", l.shape[j], " -> ", shape[i], ")");
    }
  }
  r.shape.numel("expand");
  return r;
}

Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op) {
  const int rank = std::max(a.rank(), b.rank());
  Shape r;
  for (int i = 0; i < rank; ++i) {
    const int ia = i - (rank - a.rank()), ib = i - (rank - b.rank());
    const int64_t sa = ia >= 0 ? a[ia] : 1, sb = ib >= 0 ? b[ib] : 1;
    if (sa != sb && sa != 1 && sb != 1)
      fail<ShapeError>(op, ": shapes ", a.str(), " and ", b.str(), " cannot be broadcast (", sa,
                       " vs ", sb, " in dimension ", i, " of the result)");
    r.push_back(sa == 1 ? sb : sa);
  }
  return r;
}

}  // namespace layout
}  // namespace scholar
