// Tensor<T> creation, element access, views sharing storage, copies and conversions.
#include <catch2/catch.hpp>
#include <sstream>

#include "scholar/tensor/ops.hpp"
#include "scholar/tensor/tensor.hpp"

using namespace scholar;

namespace {
FloatTensor iota(const Shape& shape) {
  FloatTensor t = FloatTensor::empty(shape);
  auto s = t.span();
  for (size_t i = 0; i < s.size(); ++i) s[i] = static_cast<float>(i);
  return t;
}
}  // namespace

TEST_CASE("creation, element access and 64-byte alignment", "[tensor]") {
  auto z = FloatTensor::zeros({2, 3});
  CHECK(z.numel() == 6);
  CHECK(reinterpret_cast<uintptr_t>(z.data()) % 64 == 0);
  z(1, 2) = 5.0f;
  CHECK(z.at({1, 2}) == 5.0f);
  CHECK(z.to_vector() == std::vector<float>{0, 0, 0, 0, 0, 5});
  CHECK_THROWS_WITH(z(2, 0), Catch::Contains("(2, 0)") && Catch::Contains("[2, 3]"));
  CHECK_THROWS_AS(z(0), IndexError);
  CHECK(Tensor<int32_t>::full({3}, 7).to_vector() == std::vector<int32_t>{7, 7, 7});
  CHECK(FloatTensor::scalar(2.5f).item() == 2.5f);
  CHECK(FloatTensor::scalar(2.5f).rank() == 0);
  CHECK_THROWS_AS(z.item(), ShapeError);
  CHECK_THROWS_AS(FloatTensor::from({2, 2}, {1.0f, 2.0f, 3.0f}), ShapeError);
  CHECK_THROWS_AS(FloatTensor::zeros({-1}), ShapeError);
  CHECK_THROWS_AS(FloatTensor::empty({int64_t{1} << 62, 8}), ShapeError);
  CHECK(!FloatTensor().defined());
}

TEST_CASE("views share storage and see each other's writes", "[tensor]") {
  const FloatTensor x = iota({3, 4});
  const FloatTensor row = x[1];
  CHECK(row.shape() == Shape{4});
  CHECK(row.shares_storage_with(x));
  row(2) = 100.0f;
  CHECK(x(1, 2) == 100.0f);
  const FloatTensor col = x.slice(1, 1, 4, 2);  // columns 1 and 3
  CHECK(col.shape() == Shape{3, 2});
  CHECK(col(2, 1) == x(2, 3));
  const FloatTensor xt = x.t();
  CHECK(xt.shape() == Shape{4, 3});
  CHECK(xt(3, 0) == x(0, 3));
  CHECK(!xt.is_contiguous());
  CHECK_THROWS_WITH(xt.reshape({12}), Catch::Contains("contiguous()"));
  const FloatTensor flat = xt.contiguous().reshape({12});
  CHECK(flat(1) == x(1, 0));
  CHECK(!flat.shares_storage_with(x));
  CHECK(x.reshape({2, -1}).shares_storage_with(x));
  const FloatTensor p = iota({2, 3, 4}).permute({2, 0, 1});
  CHECK(p.shape() == Shape{4, 2, 3});
  CHECK(p(3, 1, 2) == 1 * 12 + 2 * 4 + 3);
  CHECK(x.unsqueeze(0).shape() == Shape{1, 3, 4});
  CHECK(x.unsqueeze(0).squeeze().shape() == Shape{3, 4});
}

TEST_CASE("expand broadcasts without copying, contiguous materializes", "[tensor]") {
  const FloatTensor v = FloatTensor::from({3}, {1, 2, 3});
  const FloatTensor e = v.expand({2, 3});
  CHECK(e.strides() == Strides{0, 1});
  CHECK(e.contiguous().to_vector() == std::vector<float>{1, 2, 3, 1, 2, 3});
  CHECK_THROWS_AS(v.expand({2, 4}), ShapeError);
  // Writing in place into a broadcast view is refused by arithmetic ops.
  CHECK_THROWS_AS(add_(e, v), ValueError);
}

TEST_CASE("clone, copy_from with broadcasting, fill and conversions", "[tensor]") {
  const FloatTensor x = iota({2, 3});
  FloatTensor c = x.clone();
  c(0, 0) = -1.0f;
  CHECK(x(0, 0) == 0.0f);
  const FloatTensor dst = FloatTensor::zeros({2, 3});
  dst.copy_from(FloatTensor::from({3}, {7, 8, 9}));
  CHECK(dst.to_vector() == std::vector<float>{7, 8, 9, 7, 8, 9});
  CHECK_THROWS_AS(dst.copy_from(FloatTensor::zeros({4})), ShapeError);
  dst.t().fill(1.5f);
  CHECK(dst.to_vector() == std::vector<float>(6, 1.5f));
  const FloatTensor odd = iota({4, 4}).slice(0, 0, 4, 2).slice(1, 1, 3);  // strided
  odd.fill(-2.0f);
  CHECK(odd.to_vector() == std::vector<float>(4, -2.0f));

  const FloatTensor f = FloatTensor::from({4}, {1.0f, 1.00390625f, -3.5f, 65520.0f});
  const auto h = f.to<f16>();
  CHECK(h.to_vector()[3].bits == 0x7c00);  // overflow to infinity
  CHECK(h.to<float>().to_vector()[2] == -3.5f);
  CHECK(f.to<bf16>().to<float>().to_vector()[1] == 1.0f);  // tie to even
  CHECK(f.to<int32_t>().to_vector()[2] == -3);
  CHECK(x.t().to<bf16>().shape() == Shape{3, 2});  // strided source
  CHECK(x.t().to<bf16>().to<float>().to_vector() == std::vector<float>{0, 3, 1, 4, 2, 5});
}

TEST_CASE("wrap views external memory with any strides", "[tensor]") {
  float buf[6] = {1, 2, 3, 4, 5, 6};
  const FloatTensor w = FloatTensor::wrap(buf, {3, 2}, Strides{1, 3});
  CHECK(w(0, 1) == 4.0f);
  w(2, 1) = 60.0f;
  CHECK(buf[5] == 60.0f);
  CHECK_THROWS_AS(FloatTensor::wrap(buf, {3, 2}, Strides{1}), ShapeError);
  CHECK_THROWS_AS(FloatTensor::wrap(nullptr, {3}), ValueError);
}

TEST_CASE("printing shows dtype, shape and a summary", "[tensor]") {
  std::ostringstream os;
  os << FloatTensor::from({2, 2}, {1, 2, 3, 4.5f});
  CHECK(os.str() == "Tensor<f32>[2, 2]\n[[1, 2],\n [3, 4.5]]");
  const std::string big = to_string(iota({100, 100}));
  CHECK(big.find("...") != std::string::npos);
  CHECK(big.size() < 400);
  CHECK(to_string(Tensor<int32_t>::scalar(3)) == "Tensor<i32>[] 3");
  CHECK(to_string(FloatTensor()) == "Tensor<f32>(undefined)");
}

TEST_CASE("large storage is recycled by size, within the cache limit", "[tensor]") {
  // The default: a quarter of physical memory, at least 1 GiB (unless the environment set one).
  CHECK(scholar::default_storage_cache_limit() >= (size_t{1} << 30));
  const size_t saved = scholar::storage_cache_limit();
  scholar::set_storage_cache_limit(size_t{64} << 20);  // whatever the environment set
  scholar::empty_storage_cache();
  CHECK(scholar::storage_cache_bytes() == 0);

  // A freed 1 MiB block waits in the cache and goes to the next tensor of that size.
  const float* first = nullptr;
  {
    FloatTensor t = FloatTensor::empty({256, 1024});
    first = t.data();
  }
  CHECK(scholar::storage_cache_bytes() == (size_t{1} << 20));
  {
    FloatTensor t = FloatTensor::empty({1024, 256});
    CHECK(t.data() == first);
    CHECK(scholar::storage_cache_bytes() == 0);
  }
  // Small blocks are never cached.
  { FloatTensor small = FloatTensor::empty({16, 16}); }
  CHECK(scholar::storage_cache_bytes() == (size_t{1} << 20));

  // A limit below what is cached frees the excess at once, and later frees past it.
  scholar::set_storage_cache_limit(size_t{1} << 19);
  CHECK(scholar::storage_cache_limit() == (size_t{1} << 19));
  CHECK(scholar::storage_cache_bytes() == 0);
  { FloatTensor t = FloatTensor::empty({256, 1024}); }
  CHECK(scholar::storage_cache_bytes() == 0);
  scholar::set_storage_cache_limit(0);
  { FloatTensor t = FloatTensor::empty({64, 1024}); }
  CHECK(scholar::storage_cache_bytes() == 0);

  scholar::set_storage_cache_limit(size_t{64} << 20);
  { FloatTensor t = FloatTensor::empty({64, 1024}); }
  CHECK(scholar::storage_cache_bytes() == (size_t{1} << 18));
  scholar::empty_storage_cache();  // frees the blocks, keeps the limit
  CHECK(scholar::storage_cache_bytes() == 0);
  CHECK(scholar::storage_cache_limit() == (size_t{64} << 20));
  scholar::set_storage_cache_limit(saved);
}
