#include "runtime/kernels/bf16_transpose.hpp"

#include <emmintrin.h>  // SSE2: the x86-64 baseline

namespace tconv3d {
namespace {

// dst[j * ds + i] = src[i * ss + j] for an 8 x 8 tile of 16-bit values:
// three rounds of unpacks (16, 32, 64 bits) in 128-bit registers.
inline void transpose_8x8(const uint16_t* src, int64_t ss, uint16_t* dst, int64_t ds) {
  __m128i r[8];
  for (int i = 0; i < 8; ++i) r[i] = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i * ss));
  const __m128i a0 = _mm_unpacklo_epi16(r[0], r[1]), a1 = _mm_unpackhi_epi16(r[0], r[1]);
  const __m128i a2 = _mm_unpacklo_epi16(r[2], r[3]), a3 = _mm_unpackhi_epi16(r[2], r[3]);
  const __m128i a4 = _mm_unpacklo_epi16(r[4], r[5]), a5 = _mm_unpackhi_epi16(r[4], r[5]);
  const __m128i a6 = _mm_unpacklo_epi16(r[6], r[7]), a7 = _mm_unpackhi_epi16(r[6], r[7]);
  const __m128i b0 = _mm_unpacklo_epi32(a0, a2), b1 = _mm_unpackhi_epi32(a0, a2);
  const __m128i b2 = _mm_unpacklo_epi32(a1, a3), b3 = _mm_unpackhi_epi32(a1, a3);
  const __m128i b4 = _mm_unpacklo_epi32(a4, a6), b5 = _mm_unpackhi_epi32(a4, a6);
  const __m128i b6 = _mm_unpacklo_epi32(a5, a7), b7 = _mm_unpackhi_epi32(a5, a7);
  const __m128i c[8] = {_mm_unpacklo_epi64(b0, b4), _mm_unpackhi_epi64(b0, b4), _mm_unpacklo_epi64(b1, b5),
                        _mm_unpackhi_epi64(b1, b5), _mm_unpacklo_epi64(b2, b6), _mm_unpackhi_epi64(b2, b6),
                        _mm_unpacklo_epi64(b3, b7), _mm_unpackhi_epi64(b3, b7)};
  for (int j = 0; j < 8; ++j) _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + j * ds), c[j]);
}

}  // namespace

void transpose_block_u16(const uint16_t* src, int64_t ss, uint16_t* dst, int64_t ds, int64_t rows, int64_t cols) {
  const int64_t r8 = rows / 8 * 8, c8 = cols / 8 * 8;
  // Finish with far-apart lines before moving on (as the float32
  // transpose_block): source rows far apart (an NCDHW input): use up each
  // source row's lines in one go; destination rows far apart (an NCDHW
  // output): fill each destination row front to back.
  if (ss > ds) {
    for (int64_t r = 0; r < r8; r += 8)
      for (int64_t c = 0; c < c8; c += 8) transpose_8x8(src + r * ss + c, ss, dst + c * ds + r, ds);
  } else {
    for (int64_t c = 0; c < c8; c += 8)
      for (int64_t r = 0; r < r8; r += 8) transpose_8x8(src + r * ss + c, ss, dst + c * ds + r, ds);
  }
  // The ragged right and bottom edges.
  for (int64_t c = c8; c < cols; ++c)
    for (int64_t r = 0; r < rows; ++r) dst[c * ds + r] = src[r * ss + c];
  for (int64_t c = 0; c < c8; ++c)
    for (int64_t r = r8; r < rows; ++r) dst[c * ds + r] = src[r * ss + c];
}

}  // namespace tconv3d
