// The kernels, written once over a vector type V and included once per
// instruction set: in namespace kernels::portable for the translation unit's
// own target (V over xsimd), and inside each x86 target region (V over that
// set's intrinsics), so every function here is compiled with its set's
// instructions enabled. No include guard, on purpose; no #include either
// (the including header brings kernel_set.hpp, <algorithm> and <utility>).
//
// What V provides (static members): reg, width (floats per register),
// gemm_rows (rows of `a` per GEMM tile), name, zero(), set1(x), load(p),
// load_aligned(p), load_bf16(p) (width bfloat16 values in natural order),
// load_u8(p) (width unsigned bytes widened to floats),
// ireg, u8_width, izero(), iadd, isum(r) (the int32 lanes' total) and
// madd_u8_i16(acc, c, w) (acc plus c_j w_j for u8_width bytes c and int16
// weights w, pairs summed into int32 lanes),
// store(p, r), store_aligned(p, r), add, sub, mul, fma(a, b, c) = a*b + c,
// min, sum(r), any_le(a, b), any_eq(a, b).
//
// Summation orders are fixed by this file, not by V, so targets differ only
// in register width and in whether fma rounds once.

template <class V>
struct kernel_impl {
  using reg = typename V::reg;
  static constexpr std::size_t w = V::width;
  static constexpr std::size_t regs_per_panel_row = panel_width / w;

  // Four independent accumulators hide FMA latency. The tail is a plain loop:
  // building a zero-padded register on the stack stalls store forwarding,
  // which at d = 2 .. 7 cost more than the whole sum.
  template <bool Squared>
  static float reduce(const float* a, const float* b, std::size_t d) {
    std::size_t i = 0;
    float sum = 0.f;
    if (d >= w) {
      reg acc0 = V::zero(), acc1 = V::zero(), acc2 = V::zero(), acc3 = V::zero();
      for (; i + 4 * w <= d; i += 4 * w) {
        acc0 = step<Squared>(acc0, V::load(a + i), V::load(b + i));
        acc1 = step<Squared>(acc1, V::load(a + i + w), V::load(b + i + w));
        acc2 = step<Squared>(acc2, V::load(a + i + 2 * w), V::load(b + i + 2 * w));
        acc3 = step<Squared>(acc3, V::load(a + i + 3 * w), V::load(b + i + 3 * w));
      }
      for (; i + w <= d; i += w) acc0 = step<Squared>(acc0, V::load(a + i), V::load(b + i));
      sum = V::sum(V::add(V::add(acc0, acc1), V::add(acc2, acc3)));
    }
    float tail = 0.f;
    for (; i < d; ++i) {
      const float t = Squared ? a[i] - b[i] : a[i];
      tail += t * (Squared ? t : b[i]);
    }
    return sum + tail;
  }
  template <bool Squared>
  static reg step(reg acc, reg x, reg y) {
    if constexpr (Squared) {
      const reg t = V::sub(x, y);
      return V::fma(t, t, acc);
    } else {
      return V::fma(x, y, acc);
    }
  }

  static float dot(const float* a, const float* b, std::size_t d) { return reduce<false>(a, b, d); }
  static float l2sq(const float* a, const float* b, std::size_t d) { return reduce<true>(a, b, d); }
  static void dot_many(const float* q, matrix_view<const float> rows, float* out) {
    for (std::size_t i = 0; i < rows.rows(); ++i) out[i] = dot(q, rows.row_ptr(i), rows.cols());
  }
  static void l2sq_many(const float* q, matrix_view<const float> rows, float* out) {
    for (std::size_t i = 0; i < rows.rows(); ++i) out[i] = l2sq(q, rows.row_ptr(i), rows.cols());
  }
  static void norm_sq_many(matrix_view<const float> rows, float* out) {
    for (std::size_t i = 0; i < rows.rows(); ++i) out[i] = dot(rows.row_ptr(i), rows.row_ptr(i), rows.cols());
  }

  // ---- GEMM: a tile of MR rows of `a` against one packed panel ----
  // out[i][0 .. panel_width) (+)= the products of MR rows of `a` with the
  // panel over dimensions [k0, k0 + kc); `add` accumulates onto out. The
  // MR x panel_width results stay in registers for the whole depth loop:
  // one load of each panel register per step and one broadcast per row.
  template <std::size_t MR>
  static void tile(matrix_view<const float> a, std::size_t first, std::size_t k0, std::size_t kc,
                   const float* panel, float* out, std::size_t out_stride, bool add) {
    constexpr std::size_t R = regs_per_panel_row;
    const float* rows[MR];
    for (std::size_t i = 0; i < MR; ++i) rows[i] = a.row_ptr(first + i) + k0;
    panel += k0 * panel_width;
    reg c[MR][R];
    for (std::size_t i = 0; i < MR; ++i)
      for (std::size_t r = 0; r < R; ++r) c[i][r] = V::zero();
    for (std::size_t k = 0; k < kc; ++k, panel += panel_width) {
      reg b[R];
      for (std::size_t r = 0; r < R; ++r) b[r] = V::load_aligned(panel + r * w);
#pragma GCC unroll 16  // the accumulators must stay in registers, also at -O2
      for (std::size_t i = 0; i < MR; ++i) {
        const reg av = V::set1(rows[i][k]);
        for (std::size_t r = 0; r < R; ++r) c[i][r] = V::fma(av, b[r], c[i][r]);
      }
    }
    for (std::size_t i = 0; i < MR; ++i) {
      float* o = out + i * out_stride;
      for (std::size_t r = 0; r < R; ++r) {
        if (add) c[i][r] = V::add(c[i][r], V::load(o + r * w));
        V::store(o + r * w, c[i][r]);
      }
    }
  }
  template <std::size_t... MR>
  static void tile_rest(std::size_t rest, matrix_view<const float> a, std::size_t first,
                        std::size_t k0, std::size_t kc, const float* panel, float* out,
                        std::size_t out_stride, bool add, std::index_sequence<MR...>) {
    ((rest == MR + 1 ? tile<MR + 1>(a, first, k0, kc, panel, out, out_stride, add) : void()), ...);
  }

  static void panel_products(matrix_view<const float> a, const float* panels, std::size_t b_rows,
                             float* out, std::size_t out_stride) {
    constexpr std::size_t nr = panel_width, mr = V::gemm_rows;
    const std::size_t d = a.cols();
    const std::size_t n_panels = (b_rows + nr - 1) / nr;
    // Dimension chunks of depth_block keep a panel's slice (16 KiB) in L1
    // while every row tile of a passes over it.
    for (std::size_t k0 = 0; k0 < d; k0 += depth_block) {
      const std::size_t kc = std::min(depth_block, d - k0);
      const bool add = k0 != 0;
      for (std::size_t p = 0; p < n_panels; ++p) {
        const std::size_t cols = std::min(nr, b_rows - p * nr);
        const float* panel = panels + p * nr * d;
        for (std::size_t i = 0; i < a.rows(); i += mr) {
          const std::size_t rows = std::min(mr, a.rows() - i);
          float* dst = out + i * out_stride + p * nr;
          // A last, partial panel computes into `edge`, then copies its columns.
          alignas(64) float edge[mr * nr] = {};
          const bool direct = cols == nr;
          float* target = direct ? dst : edge;
          const std::size_t stride = direct ? out_stride : nr;
          if (!direct && add)
            for (std::size_t r = 0; r < rows; ++r) std::copy_n(dst + r * out_stride, cols, edge + r * nr);
          if (rows == mr)
            tile<mr>(a, i, k0, kc, panel, target, stride, add);
          else
            tile_rest(rows, a, i, k0, kc, panel, target, stride, add, std::make_index_sequence<mr - 1>{});
          if (!direct)
            for (std::size_t r = 0; r < rows; ++r) std::copy_n(edge + r * nr, cols, dst + r * out_stride);
        }
      }
    }
  }

  // ---- One row against P consecutive panels ----
  // The per-output arithmetic of tile (FMAs in dimension order from zero
  // within a depth block, then added to the partial sum), so one query gets
  // bit for bit what a batch gets, with P x R independent accumulators.
  static reg load_panel(const float* p) { return V::load_aligned(p); }
  static reg load_panel(const std::uint16_t* p) { return V::load_bf16(p); }

  template <std::size_t P, class E>
  static void row_tile(const float* q, std::size_t d, const E* panels, std::size_t panel_elems, float* out) {
    constexpr std::size_t R = regs_per_panel_row;
    reg t[P][R];
    for (std::size_t p = 0; p < P; ++p)
      for (std::size_t r = 0; r < R; ++r) t[p][r] = V::zero();  // overwritten by the first block
    for (std::size_t k0 = 0; k0 < d; k0 += depth_block) {
      reg c[P][R];
      for (std::size_t p = 0; p < P; ++p)
        for (std::size_t r = 0; r < R; ++r) c[p][r] = V::zero();
      for (std::size_t k = k0, end = std::min(d, k0 + depth_block); k < end; ++k) {
        const reg qv = V::set1(q[k]);
#pragma GCC unroll 16
        for (std::size_t p = 0; p < P; ++p)
          for (std::size_t r = 0; r < R; ++r)
            c[p][r] = V::fma(qv, load_panel(panels + p * panel_elems + k * panel_width + r * w), c[p][r]);
      }
      for (std::size_t p = 0; p < P; ++p)
        for (std::size_t r = 0; r < R; ++r) t[p][r] = k0 == 0 ? c[p][r] : V::add(c[p][r], t[p][r]);
    }
    for (std::size_t p = 0; p < P; ++p)
      for (std::size_t r = 0; r < R; ++r) V::store_aligned(out + p * panel_width + r * w, t[p][r]);
  }

  template <class E>
  static void row_products_of(const float* q, std::size_t d, const E* panels, std::size_t n_panels,
                              float* out) {
    constexpr std::size_t group = 8 / regs_per_panel_row > 0 ? 8 / regs_per_panel_row : 1;
    const std::size_t panel_elems = panel_width * d;
    std::size_t p = 0;
    for (; p + group <= n_panels; p += group)
      row_tile<group>(q, d, panels + p * panel_elems, panel_elems, out + p * panel_width);
    for (; p < n_panels; ++p) row_tile<1>(q, d, panels + p * panel_elems, panel_elems, out + p * panel_width);
  }
  static void row_products(const float* q, std::size_t d, const float* panels, std::size_t n_panels,
                           float* out) {
    row_products_of(q, d, panels, n_panels, out);
  }
  static void row_products_bf16(const float* q, std::size_t d, const std::uint16_t* panels,
                                std::size_t n_panels, float* out) {
    row_products_of(q, d, panels, n_panels, out);
  }

  // ---- Selection ----
  // Two passes without a loop-carried blend: the minimum over four
  // independent registers, then the first register holding it. The second
  // pass evaluates the same expressions as the first (vector lanes, then the
  // scalar tail), so equality finds what the minimum came from.
  static reg keys_at(const float* dots, const float* norms, std::size_t c) {
    const reg d = V::load(dots + c);
    return norms ? V::sub(V::load(norms + c), V::mul(V::set1(2.f), d)) : V::sub(V::zero(), d);
  }
  static float key_at(const float* dots, const float* norms, std::size_t c) {
    return norms ? norms[c] - 2.f * dots[c] : -dots[c];
  }
  static std::uint32_t argmin_key(const float* dots, const float* norms, std::size_t n, float& key) {
    const std::size_t full = n / w * w;
    const float inf = __builtin_huge_valf();
    reg m0 = V::set1(inf), m1 = m0, m2 = m0, m3 = m0;
    std::size_t c = 0;
    for (; c + 4 * w <= full; c += 4 * w) {
      m0 = V::min(m0, keys_at(dots, norms, c));
      m1 = V::min(m1, keys_at(dots, norms, c + w));
      m2 = V::min(m2, keys_at(dots, norms, c + 2 * w));
      m3 = V::min(m3, keys_at(dots, norms, c + 3 * w));
    }
    for (; c < full; c += w) m0 = V::min(m0, keys_at(dots, norms, c));
    alignas(64) float lanes[w];
    V::store_aligned(lanes, V::min(V::min(m0, m1), V::min(m2, m3)));
    float best = lanes[0];
    for (std::size_t l = 1; l < w; ++l) best = lanes[l] < best ? lanes[l] : best;
    for (; c < n; ++c) {
      const float k = key_at(dots, norms, c);
      best = k < best ? k : best;
    }
    key = best;
    for (c = 0; c < full; c += w) {
      const reg v = keys_at(dots, norms, c);
      if (!V::any_eq(v, V::set1(best))) continue;
      V::store_aligned(lanes, v);
      for (std::size_t l = 0; l < w; ++l)
        if (lanes[l] == best) return std::uint32_t(c + l);
    }
    for (; c < n; ++c)
      if (key_at(dots, norms, c) == best) return std::uint32_t(c);
    return 0;  // unreachable unless keys are NaN
  }

  // A register's worth at a time: in a full top-k scan almost no block holds
  // a value at or below the threshold.
  static std::size_t first_at_most(const float* x, std::size_t n, float t) {
    std::size_t j = 0;
    const reg tv = V::set1(t);
    for (; j + w <= n; j += w)
      if (V::any_le(V::load(x + j), tv)) break;
    for (; j < n; ++j)
      if (x[j] <= t) return j;
    return n;
  }

  // ---- 8-bit scalar-quantised vectors ----
  // Two accumulators: a byte widening and its conversion sit in front of
  // each FMA, which already hides most of its latency.
  static float sq8_l2(const float* a, const float* scale, const std::uint8_t* c, std::size_t d) {
    std::size_t i = 0;
    float sum = 0.f;
    if (d >= w) {
      reg acc0 = V::zero(), acc1 = V::zero();
      for (; i + 2 * w <= d; i += 2 * w) {
        const reg t0 = V::fma(V::load(scale + i), V::load_u8(c + i), V::load(a + i));
        const reg t1 = V::fma(V::load(scale + i + w), V::load_u8(c + i + w), V::load(a + i + w));
        acc0 = V::fma(t0, t0, acc0);
        acc1 = V::fma(t1, t1, acc1);
      }
      for (; i + w <= d; i += w) {
        const reg t = V::fma(V::load(scale + i), V::load_u8(c + i), V::load(a + i));
        acc0 = V::fma(t, t, acc0);
      }
      sum = V::sum(V::add(acc0, acc1));
    }
    float tail = 0.f;
    for (; i < d; ++i) {
      const float t = scale[i] * float(c[i]) + a[i];
      tail += t * t;
    }
    return sum + tail;
  }
  static float sq8_dot(const float* wq, const std::uint8_t* c, std::size_t d) {
    std::size_t i = 0;
    float sum = 0.f;
    if (d >= w) {
      reg acc0 = V::zero(), acc1 = V::zero();
      for (; i + 2 * w <= d; i += 2 * w) {
        acc0 = V::fma(V::load(wq + i), V::load_u8(c + i), acc0);
        acc1 = V::fma(V::load(wq + i + w), V::load_u8(c + i + w), acc1);
      }
      for (; i + w <= d; i += w) acc0 = V::fma(V::load(wq + i), V::load_u8(c + i), acc0);
      sum = V::sum(V::add(acc0, acc1));
    }
    float tail = 0.f;
    for (; i < d; ++i) tail += wq[i] * float(c[i]);
    return sum + tail;
  }

  // Integer products cannot overflow (the caller bounds the weights), so the
  // order of the sum does not matter and every set gives the same value.
  // A set with masked loads (AVX-512) takes the last d % u8_width dimensions
  // in one step; the others in the scalar loop.
  static constexpr bool masked_u8_tail =
      requires(typename V::ireg a, const std::uint8_t* p, const std::int16_t* q, std::size_t n) {
        V::madd_u8_i16_partial(a, p, q, n);
      };
  static std::int32_t dot_u8_i16(const std::uint8_t* c, const std::int16_t* wq, std::size_t d) {
    constexpr std::size_t u = V::u8_width;
    std::size_t i = 0;
    std::int32_t sum = 0;
    if (d >= u || (masked_u8_tail && d > 0)) {
      typename V::ireg acc0 = V::izero(), acc1 = V::izero();
      for (; i + 2 * u <= d; i += 2 * u) {
        acc0 = V::madd_u8_i16(acc0, c + i, wq + i);
        acc1 = V::madd_u8_i16(acc1, c + i + u, wq + i + u);
      }
      for (; i + u <= d; i += u) acc0 = V::madd_u8_i16(acc0, c + i, wq + i);
      if constexpr (masked_u8_tail)
        if (i < d) acc1 = V::madd_u8_i16_partial(acc1, c + i, wq + i, d - i), i = d;
      sum = V::isum(V::iadd(acc0, acc1));
    }
    for (; i < d; ++i) sum += std::int32_t{c[i]} * wq[i];
    return sum;
  }

  static constexpr kernel_set table{V::name, &dot, &l2sq, &dot_many, &l2sq_many, &norm_sq_many,
                                    &panel_products, &row_products, &row_products_bf16,
                                    &argmin_key, &first_at_most, &sq8_l2, &sq8_dot, &dot_u8_i16};
};
