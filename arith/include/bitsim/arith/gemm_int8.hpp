// Integer GEMM on 8-bit codes into 32-bit sums: the MAC array's integer datapath at native speed.
// Three kernels give the same bits; the plain C++ loop is the oracle the SIMD kernels are tested to.
#pragma once

#include <cstddef>
#include <cstdint>
#include <new>
#include <string_view>
#include <vector>

namespace bitsim::arith {

// Scalar: plain C++. Avx2: codes widened to 16 bits, vpmaddwd. Avx512Vnni: vpdpbusd on bytes, with
// one operand offset by 128 to make it unsigned and the offset's products subtracted afterwards.
enum class Int8Kernel : std::uint8_t { Scalar, Avx2, Avx512Vnni };
std::string_view to_string(Int8Kernel k);
// Whether this CPU runs kernel k (checked once, at run time).
bool available(Int8Kernel k);
// The fastest kernel this CPU runs.
Int8Kernel best_int8_kernel();

// A row-major matrix of 8-bit codes with leading dimension ld: two's complement int8 codes when
// is_signed, else uint8. trans: the matrix is stored transposed, as in BLAS.
struct Int8Matrix {
  const std::uint8_t* codes = nullptr;
  std::int64_t ld = 0;
  bool is_signed = true;
  bool trans = false;
};

// op(B) (K x N) laid out for one kernel: packed once per GEMM, then read (only) by every block of
// rows of C, from any number of threads.
class PackedInt8B {
 public:
  PackedInt8B(Int8Kernel kernel, const Int8Matrix& b, std::int64_t k, std::int64_t n);
  Int8Kernel kernel() const { return kernel_; }
  std::int64_t k() const { return k_; }
  std::int64_t n() const { return n_; }

 private:
  template <class T>
  struct Aligned {  // 64-byte aligned storage: whole cache lines per vector load
    using value_type = T;
    Aligned() = default;
    template <class U>
    Aligned(const Aligned<U>&) {}
    T* allocate(std::size_t n) { return static_cast<T*>(::operator new(n * sizeof(T), std::align_val_t{64})); }
    void deallocate(T* p, std::size_t) { ::operator delete(p, std::align_val_t{64}); }
    bool operator==(const Aligned&) const { return true; }
  };
  friend void gemm_int8(const Int8Matrix& a, std::int64_t m, const PackedInt8B& b, std::int32_t* c,
                        std::int64_t ldc);

  Int8Kernel kernel_;
  std::int64_t k_, n_;
  bool is_signed_;
  // The kernel's layout (gemm_int8_simd.hpp): bytes for Avx512Vnni, int16 codes for the others.
  std::vector<std::uint8_t, Aligned<std::uint8_t>> bytes_;
  std::vector<std::int16_t, Aligned<std::int16_t>> wide_;
  std::vector<std::uint32_t> col_sums_;  // Avx512Vnni: op(B)'s column sums of the offset codes, modulo 2^32
};

// C (M x N, row-major, leading dimension ldc) = op(A) (M x K) op(B), each sum modulo 2^32 as an
// int32 (vpdpbusd's and vpaddd's wrap-around), which is the exact sum whenever that lies in
// [-2^31, 2^31). A may be any block of rows of a larger op(A): the results do not depend on the split.
void gemm_int8(const Int8Matrix& a, std::int64_t m, const PackedInt8B& b, std::int32_t* c, std::int64_t ldc);

// The same in one call, packing B.
void gemm_int8(Int8Kernel kernel, const Int8Matrix& a, const Int8Matrix& b, std::int64_t m, std::int64_t n,
               std::int64_t k, std::int32_t* c, std::int64_t ldc);

}  // namespace bitsim::arith
