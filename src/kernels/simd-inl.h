// Helpers shared by the per-target SIMD sources. Highway's per-target header pattern: the guard
// toggles, so that every target's pass of foreach_target.h compiles the helpers once for it.
#if defined(LINATTN_KERNELS_SIMD_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef LINATTN_KERNELS_SIMD_INL_H_
#undef LINATTN_KERNELS_SIMD_INL_H_
#else
#define LINATTN_KERNELS_SIMD_INL_H_
#endif

#include <hwy/highway.h>

#include <cstdint>
#include <cstring>
#include <limits>

HWY_BEFORE_NAMESPACE();
namespace linattn::kernels::simd {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;
using D = hn::ScalableTag<float>;
using V = hn::Vec<D>;
constexpr size_t kMaxLanes = HWY_MAX_BYTES / sizeof(float);

// Runs op on full vectors of x, then once on the tail padded with `pad`: one code path, so the
// tail gets exactly the same arithmetic as the body. op(v, i) returns the vector to store at i.
template <class Op>
HWY_INLINE void map_inplace(const float* x, float* y, int64_t n, float pad, const Op& op) {
  const D d;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(d));
  int64_t i = 0;
  for (; i + lanes <= n; i += lanes) hn::StoreU(op(hn::LoadU(d, x + i)), d, y + i);
  if (i < n) {
    HWY_ALIGN float buf[kMaxLanes];
    for (int64_t j = 0; j < lanes; ++j) buf[j] = i + j < n ? x[i + j] : pad;
    hn::Store(op(hn::Load(d, buf)), d, buf);
    std::memcpy(y + i, buf, static_cast<size_t>(n - i) * sizeof(float));
  }
}

// Loads the tail of x (elements [i, n)) padded with `pad`.
HWY_INLINE V load_tail(const float* x, int64_t i, int64_t n, float pad) {
  const D d;
  HWY_ALIGN float buf[kMaxLanes];
  for (int64_t j = 0; j < static_cast<int64_t>(hn::Lanes(d)); ++j)
    buf[j] = i + j < n ? x[i + j] : pad;
  return hn::Load(d, buf);
}

// Decay products below 1e-30 become 0: their terms are negligible, and denormals are slow.
HWY_INLINE V flush_tiny(V e) {
  const D d;
  return hn::IfThenElseZero(hn::Gt(e, hn::Set(d, 1e-30f)), e);
}


// Makes v opaque to the compiler, so a loaded vector that feeds two FMAs stays one load in a
// register: otherwise GCC folds the load into both FMAs as memory operands, and a row of a
// packed state (never line-aligned) costs two split-line loads instead of one.
HWY_INLINE V in_register(V v) {
#if HWY_ARCH_X86 && HWY_TARGET != HWY_SCALAR && HWY_TARGET != HWY_EMU128
  asm("" : "+v"(v.raw));
#endif
  return v;
}

// bf16 -> f32 is a 16-bit left shift of the bit pattern.
HWY_INLINE V load_bf16(const uint16_t* x) {
  const D d;
  const hn::Rebind<uint16_t, D> d16;
  const hn::RebindToUnsigned<D> d32;
  return hn::BitCast(d, hn::ShiftLeft<16>(hn::PromoteTo(d32, hn::LoadU(d16, x))));
}

// Lanes whose group of G lanes is odd-numbered from `odd`, the others from `even`: a blend.
template <size_t G>
HWY_INLINE V odd_groups_from(V odd, V even) {
#if HWY_TARGET == HWY_SCALAR
  (void)odd;
  return even;  // one lane: never called
#else
  const D d;
  constexpr size_t kN = hn::MaxLanes(D());
  static_assert(2 * G <= kN);
  if constexpr (G == 1) {
    return hn::OddEven(odd, even);
  } else if constexpr (G == 2) {
    const hn::Repartition<uint64_t, D> d64;
    return hn::BitCast(d, hn::OddEven(hn::BitCast(d64, odd), hn::BitCast(d64, even)));
  } else if constexpr (G == 4 && kN == 16) {
    return hn::OddEvenBlocks(odd, even);
  } else {
    return hn::ConcatUpperLower(d, odd, even);
  }
#endif
}

// v with each pair of neighbouring groups of G lanes swapped: one single-source shuffle.
template <size_t G>
HWY_INLINE V swap_groups(V v) {
#if HWY_TARGET == HWY_SCALAR
  return v;  // one lane: never called
#else
  constexpr size_t kN = hn::MaxLanes(D());
  static_assert(2 * G <= kN);
  if constexpr (G == 1) {
    return hn::Shuffle2301(v);
  } else if constexpr (G == 2) {
    return hn::Shuffle1032(v);
#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX3  // 128-bit blocks: Highway 1.0.3 has no op for it
  } else if constexpr (G == 4 && kN == 16) {
    return V{_mm512_shuffle_f32x4(v.raw, v.raw, _MM_SHUFFLE(2, 3, 0, 1))};
#endif
  } else {
    return hn::ConcatLowerUpper(D(), v, v);
  }
#endif
}

// One step of the transposing tree below, for rows' partial sums a (even groups of G lanes)
// and b (odd groups): each lane keeps its own partial sum and adds its neighbouring group's,
// for two blends and one single-source shuffle (even/odd concatenations take two two-source
// shuffles), and the lanes keep their rows' order level by level, so the first levels can run
// on a few rows at a time.
template <size_t G>
HWY_INLINE V sum_neighbouring_groups(V a, V b) {
  return hn::Add(odd_groups_from<G>(b, a), swap_groups<G>(odd_groups_from<G>(a, b)));
}

// The levels of the transposing tree below for groups of kFirst up to kLast lanes, over the
// kLast / kFirst vectors v (overwritten) that the levels before left; returns the last level's.
template <size_t kFirst, size_t kLast>
HWY_INLINE V sum_tree_levels(V* v) {
  if constexpr (kFirst < kLast) {
    for (size_t k = 0; k < kLast / (2 * kFirst); ++k) v[k] = sum_neighbouring_groups<kFirst>(v[2 * k], v[2 * k + 1]);
    return sum_tree_levels<2 * kFirst, kLast>(v);
  } else {
    return v[0];
  }
}

// Lane r of the result = the sum of the lanes of row r, for Lanes(d) rows given as vectors
// (overwritten): a transposing tree, lanes - 1 adds for lanes rows, where one SumOfLanes per row
// costs a log2(lanes)-deep chain of shuffles each. A caller producing rows in registers may run
// the first levels on kRowGroup rows at a time (sum_tree_levels<1, kRowGroup>) and the rest on
// those partial sums (sum_tree_levels<kRowGroup, lanes>): the same numbers, fewer stored.
HWY_INLINE V sum_lanes_of_rows(V* v) { return sum_tree_levels<1, hn::MaxLanes(D())>(v); }
constexpr size_t kRowGroup = hn::MaxLanes(D()) < 4 ? hn::MaxLanes(D()) : 4;

// The same for the rows stored at rows + r * Lanes(d).
HWY_INLINE V sum_lanes_of_rows(const float* rows) {
  const D d;
  constexpr size_t kN = hn::MaxLanes(D());
  V v[kN];
  for (size_t r = 0; r < kN; ++r) v[r] = hn::LoadU(d, rows + r * kN);
  return sum_lanes_of_rows(v);
}

// y = A x for rows of one to four whole vectors (a low-rank state's U [d, r], r = 16 to 64; A's
// numbers through load(p)): the dots of Lanes(d) rows at a time, held in registers, summed across
// lanes by one transposing tree, where a SumOfLanes per row would cost more than the row's own
// multiply-adds. Returns the rows done (a multiple of Lanes(d)), 0 for other widths.
template <int kVectors, class T, class Load>
HWY_INLINE int64_t gemv_n_short_rows(const T* a, int64_t lda, const float* x, int64_t m, float* y, const Load& load) {
  const D d;
  constexpr size_t kN = hn::MaxLanes(D());
  const int64_t lanes = static_cast<int64_t>(kN);
  V xv[kVectors];
  for (int j = 0; j < kVectors; ++j) xv[j] = hn::LoadU(d, x + j * lanes);
  int64_t i = 0;
  for (; i + lanes <= m; i += lanes) {
    V dots[kN];
#pragma GCC unroll 16
    for (size_t r = 0; r < kN; ++r) {
      const T* row = a + (i + static_cast<int64_t>(r)) * lda;
      dots[r] = hn::Mul(load(row), xv[0]);
      for (int j = 1; j < kVectors; ++j) dots[r] = hn::MulAdd(load(row + j * lanes), xv[j], dots[r]);
    }
    hn::StoreU(sum_lanes_of_rows(dots), d, y + i);
  }
  return i;
}

template <class T, class Load>
HWY_INLINE int64_t gemv_n_short_rows(const T* a, int64_t lda, const float* x, int64_t m, int64_t n, float* y,
                                     const Load& load) {
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(D()));
  if (lanes == 1 || n % lanes != 0) return 0;
  switch (n / lanes) {
    case 1: return gemv_n_short_rows<1>(a, lda, x, m, y, load);
    case 2: return gemv_n_short_rows<2>(a, lda, x, m, y, load);
    case 3: return gemv_n_short_rows<3>(a, lda, x, m, y, load);
    case 4: return gemv_n_short_rows<4>(a, lda, x, m, y, load);
    default: return 0;
  }
}

// Max and Scale are also used by the causal kernels' sources, hence here.
HWY_INLINE float Max(const float* x, int64_t n) {
  const D d;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(d));
  const float neg_inf = -std::numeric_limits<float>::infinity();
  V acc = hn::Set(d, neg_inf);
  int64_t i = 0;
  for (; i + lanes <= n; i += lanes) acc = hn::Max(acc, hn::LoadU(d, x + i));
  if (i < n) acc = hn::Max(acc, load_tail(x, i, n, neg_inf));
  return hn::GetLane(hn::MaxOfLanes(d, acc));
}

HWY_INLINE void Scale(float* x, int64_t n, float a) {
  const D d;
  const V va = hn::Set(d, a);
  map_inplace(x, x, n, 0.f, [&](V v) { return hn::Mul(v, va); });
}

}  // namespace HWY_NAMESPACE
}  // namespace linattn::kernels::simd
HWY_AFTER_NAMESPACE();

#endif  // the toggled include guard
