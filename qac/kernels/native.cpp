// Fused CPU kernels for qac (built on first use by qac/kernels/__init__.py).
//
// if_simulate: the soft-reset IF neuron of Eqs. 1-3 over T steps in one pass per element
//   block (the membrane potential stays in a small stack buffer; each input and output value
//   is touched once).
// quantize_forward / quantize_backward: Eq. 5 and its straight-through gradients in one pass
//   each; the backward returns dQ/dx and the two sums the parameter gradients are built from.
//
// Every step of the arithmetic is done in the tensor's own dtype, in the same order as the
// eager PyTorch reference, so the results are bitwise identical to it, NaN and Inf included
// (NaN in the same places; payloads are not kept alike even among PyTorch's own code paths; the
// tests check this; one exception, a zero's sign, is documented at step_block). The quantizer's two
// parameter-gradient sums are the exception to "same order": see quantize_backward.
// Compiled with -ffp-contract=off so that a*b+c is never fused into an FMA.

#include <torch/extension.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

namespace {

constexpr int64_t kBlock = 1024;   // elements per inner block (kept in registers / L1)
constexpr int64_t kGrain = 16384;  // elements per parallel task

void check_dense(const torch::Tensor& t, const char* name) {
  TORCH_CHECK(t.is_non_overlapping_and_dense(), name, " must be dense (got strides ", t.strides(), ")");
}

// Whether a and b (same sizes, both dense) put every element at the same offset, i.e. can be
// walked as one flat array together. Strides of size-1 dimensions never matter (a [1, C, 1, 1]
// tensor is both contiguous and channels_last), and empty tensors have nothing to walk.
bool same_flat_layout(const torch::Tensor& a, const torch::Tensor& b) {
  if (a.sizes() != b.sizes()) return false;
  if (a.numel() == 0) return true;
  if (!a.is_non_overlapping_and_dense() || !b.is_non_overlapping_and_dense()) return false;
  for (int64_t d = 0; d < a.dim(); ++d) {
    if (a.size(d) > 1 && a.stride(d) != b.stride(d)) return false;
  }
  return true;
}

// One time step for n elements: m = v + I; out = v_th * H(m - v_th); v = m - out.
// As the PyTorch reference (spike = clip(floor(m / v_th), 0, 1) * v_th, v_th > 0 finite), a NaN
// m emits NaN (m itself) at this and every later step; m = +-Inf emits v_th / 0. The only difference: where m / v_th is -0.0 (m = -0.0, or a negative m so small
// that the quotient underflows) the reference emits -0.0 and this emits +0.0 (equal as values).
template <typename scalar_t>
inline void step_block(const scalar_t* __restrict__ c, scalar_t* __restrict__ ot,
                       scalar_t* __restrict__ v, const scalar_t* __restrict__ th, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    const scalar_t m = v[i] + c[i];                                      // m(t) = v(t-1) + I(t)
    const scalar_t fired = th[i] * static_cast<scalar_t>(m >= th[i]);   // v_th * H(m - v_th)
    const scalar_t spike = m == m ? fired : m;                           // NaN propagates
    ot[i] = spike;
    v[i] = m - spike;                                                    // soft reset
  }
}

// current: [T_in, ...] with T_in in {1, T}; out: [T, ...]; every step of `current` and `out`
// and the tensors v0 / vth (unless scalar) share one dense memory layout.
void if_simulate(torch::Tensor current, torch::Tensor out, torch::Tensor v0, torch::Tensor vth) {
  const int64_t T = out.size(0);
  const int64_t T_in = current.size(0);
  TORCH_CHECK(T_in == 1 || T_in == T, "current has ", T_in, " steps, out has ", T);
  TORCH_CHECK(current.scalar_type() == out.scalar_type() && v0.scalar_type() == out.scalar_type() &&
                  vth.scalar_type() == out.scalar_type(),
              "if_simulate: current, out, v0 and v_th must share one dtype");
  const int64_t N = out[0].numel();
  if (N == 0 || T == 0) return;
  TORCH_CHECK(same_flat_layout(current[0], out[0]), "if_simulate: current and out steps must share "
              "one dense layout (got strides ", current.strides(), " and ", out.strides(), ")");
  TORCH_CHECK(T == 1 || out.stride(0) >= N, "if_simulate: out steps overlap");
  TORCH_CHECK(T_in == 1 || current.stride(0) >= N, "if_simulate: current steps overlap");
  TORCH_CHECK(v0.numel() == 1 || same_flat_layout(v0, out[0]), "if_simulate: v0 must be a scalar "
              "or share the layout of one step");
  TORCH_CHECK(vth.numel() == 1 || same_flat_layout(vth, out[0]), "if_simulate: v_th must be a "
              "scalar or share the layout of one step");
  const int64_t in_step = T_in == 1 ? 0 : current.stride(0);
  const int64_t out_step = out.stride(0);
  const bool v0_scalar = v0.numel() == 1;
  const bool th_scalar = vth.numel() == 1;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, out.scalar_type(), "if_simulate", [&] {
    const scalar_t* cur = current.data_ptr<scalar_t>();
    scalar_t* o = out.data_ptr<scalar_t>();
    const scalar_t* pv0 = v0.data_ptr<scalar_t>();
    const scalar_t* pth = vth.data_ptr<scalar_t>();
    at::parallel_for(0, N, kGrain, [&](int64_t begin, int64_t end) {
      scalar_t v[kBlock];
      scalar_t th[kBlock];
      for (int64_t s = begin; s < end; s += kBlock) {
        const int64_t n = std::min(kBlock, end - s);
        for (int64_t i = 0; i < n; ++i) {
          v[i] = v0_scalar ? pv0[0] : pv0[s + i];
          th[i] = th_scalar ? pth[0] : pth[s + i];
        }
        for (int64_t t = 0; t < T; ++t) {
          step_block(cur + t * in_step + s, o + t * out_step + s, v, th, n);
        }
      }
    });
  });
}

// Time average of a [T, ...] train (Eq. 12): out = (x[0] + x[1] + ... + x[T-1]) / T, added in
// step order as the PyTorch fallback (T-1 in-place additions, then one division) does.
template <typename scalar_t>
void mean_block(const scalar_t* __restrict__ x, scalar_t* __restrict__ out, int64_t T,
                int64_t step, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) out[i] = x[i];
  for (int64_t t = 1; t < T; ++t) {
    const scalar_t* __restrict__ xt = x + t * step;
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) out[i] = out[i] + xt[i];
  }
  const scalar_t divisor = static_cast<scalar_t>(T);
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) out[i] = out[i] / divisor;
}

// x: [T, ...] whose steps share out's dense layout (step stride x.stride(0)); out: one step.
void time_mean(torch::Tensor x, torch::Tensor out) {
  const int64_t T = x.size(0);
  const int64_t N = out.numel();
  const int64_t step = x.stride(0);
  TORCH_CHECK(x.scalar_type() == out.scalar_type(), "time_mean: x and out must share one dtype");
  if (N == 0 || T == 0) return;
  TORCH_CHECK(same_flat_layout(x[0], out), "time_mean: the steps of x and out must share one "
              "dense layout (got strides ", x.strides(), " and ", out.strides(), ")");
  AT_DISPATCH_FLOATING_TYPES(out.scalar_type(), "time_mean", [&] {
    const scalar_t* px = x.data_ptr<scalar_t>();
    scalar_t* po = out.data_ptr<scalar_t>();
    at::parallel_for(0, N, kGrain, [=](int64_t b, int64_t e) {
      for (int64_t s = b; s < e; s += kBlock) {
        mean_block<scalar_t>(px + s, po + s, T, step, std::min(kBlock, e - s));
      }
    });
  });
}

// Element access for the quantizer kernels. Arithmetic runs in `op` (float for bfloat16, as
// PyTorch's CPU kernels do) and every intermediate result is rounded back to the storage type,
// exactly like a chain of eager PyTorch operations. bfloat16 is handled through its bits
// (round-to-nearest-even, NaN -> 0x7FC0, as c10::BFloat16) so that the loops vectorise.
template <typename T>
struct Elem {
  using raw = T;
  using op = T;
  static op load(const raw* p, int64_t i) { return p[i]; }
  static void store(raw* p, int64_t i, op v) { p[i] = v; }
  static op round(op v) { return v; }
};

inline float bf16_bits_to_float(uint16_t h) {
  const uint32_t u = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &u, sizeof(f));
  return f;
}

inline uint16_t float_to_bf16_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof(u));
  const uint32_t rounded = (u + 0x7FFFu + ((u >> 16) & 1u)) >> 16;
  return std::isnan(f) ? static_cast<uint16_t>(0x7FC0) : static_cast<uint16_t>(rounded);
}

template <>
struct Elem<at::BFloat16> {
  using raw = uint16_t;
  using op = float;
  static op load(const raw* p, int64_t i) { return bf16_bits_to_float(p[i]); }
  static void store(raw* p, int64_t i, op v) { p[i] = float_to_bf16_bits(v); }
  static op round(op v) { return bf16_bits_to_float(float_to_bf16_bits(v)); }
};

// Eq. 5 for one value: (x * (T/alpha)) + 1/2 -> floor -> clip(., 0, T) -> * (alpha/T).
template <typename E>
inline typename E::op quantize_value(typename E::op x, typename E::op k, typename E::op inv,
                                     typename E::op L) {
  using op = typename E::op;
  op z = E::round(x * k);
  z = E::round(z + op(0.5));
  z = std::floor(z);
  z = z < op(0) ? op(0) : (z > L ? L : z);
  return E::round(z * inv);
}

template <typename E>
void quantize_block(const typename E::raw* __restrict__ px, typename E::raw* __restrict__ po,
                    typename E::op k, typename E::op inv, typename E::op L, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    E::store(po, i, quantize_value<E>(E::load(px, i), k, inv, L));
  }
}

// "inside" = not (x <= 0 or x >= alpha): 0 < x < alpha, and NaN x (PyTorch's hardtanh_backward
// test, so the boundary points, measure zero, and NaN are classified as the reference does).
// dQ/dx = g inside (else 0); the sums are of g*(Q - x) inside (NaN for a NaN x) and of g where
// x >= alpha (+Inf included, -Inf and NaN not). Each term is the dtype value the PyTorch path
// computes; the sums run in double: per block of kBlock elements over kLanes fixed interleaved
// lanes (element i to lane i % kLanes) added in a fixed order, blocks in order within fixed
// chunks, chunks in order. The loops vectorise without reassociation, and the result is the
// same on every CPU, vector width and thread count. The PyTorch path adds the same terms in
// double in its own order: the two sums are bitwise equal whenever the double sum is exact
// (terms spanning fewer than 53 - 24 - log2(N) binades for float32; practically always for
// bfloat16) and otherwise differ by a few double ulps, which may move the rounded sum by 1 ulp.
constexpr int64_t kLanes = 8;

template <typename E>
void backward_block(const typename E::raw* __restrict__ px, const typename E::raw* __restrict__ pg,
                    typename E::raw* __restrict__ pgx, typename E::op k, typename E::op inv,
                    typename E::op L, typename E::op a, int64_t n, double* s_in,
                    double* s_above) {
  using op = typename E::op;
  double term_in[kBlock], term_above[kBlock];  // n <= kBlock
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {  // elementwise: dQ/dx and each element's two terms
    const op x = E::load(px, i);
    const op g = E::load(pg, i);
    const bool inside = !(x <= op(0)) & !(x >= a);  // hardtanh_backward's test: NaN is inside
    const op q = quantize_value<E>(x, k, inv, L);
    pgx[i] = inside ? pg[i] : typename E::raw(0);
    // the term exactly as eager PyTorch computes grad * (Q - x) (rounded to the dtype twice)
    const op term = E::round(g * E::round(q - x));
    term_in[i] = inside ? static_cast<double>(term) : 0.0;
    term_above[i] = x >= a ? static_cast<double>(g) : 0.0;
  }
  double acc_in[kLanes] = {0}, acc_above[kLanes] = {0};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    for (int64_t l = 0; l < kLanes; ++l) {
      acc_in[l] += term_in[i + l];
      acc_above[l] += term_above[i + l];
    }
  }
  for (int64_t l = 0; i < n; ++i, ++l) {
    acc_in[l] += term_in[i];
    acc_above[l] += term_above[i];
  }
  double total_in = 0.0, total_above = 0.0;
  for (int64_t l = 0; l < kLanes; ++l) {
    total_in += acc_in[l];
    total_above += acc_above[l];
  }
  *s_in += total_in;
  *s_above += total_above;
}

// Scale factors arrive as doubles and are rounded to opmath (float for float/bfloat16/half),
// as PyTorch does with a Python scalar multiplying such a tensor.
torch::Tensor quantize_forward(torch::Tensor x, double scale, double inv_scale, double levels) {
  check_dense(x, "x");
  auto out = torch::empty_like(x);
  const int64_t N = x.numel();
  AT_DISPATCH_FLOATING_TYPES_AND(at::kBFloat16, x.scalar_type(), "quantize_forward", [&] {
    using E = Elem<scalar_t>;
    using op = typename E::op;
    const op k = static_cast<op>(scale), inv = static_cast<op>(inv_scale);
    const op L = static_cast<op>(levels);
    const auto* px = reinterpret_cast<const typename E::raw*>(x.data_ptr<scalar_t>());
    auto* po = reinterpret_cast<typename E::raw*>(out.data_ptr<scalar_t>());
    at::parallel_for(0, N, kGrain, [=](int64_t b, int64_t e) {
      quantize_block<E>(px + b, po + b, k, inv, L, e - b);
    });
  });
  return out;
}

// Returns (grad_x, [sum over 0<x<alpha of g*(Q(x)-x), sum over x>=alpha of g]), the sums in
// double, added over fixed chunks in a fixed order (independent of the thread count).
std::vector<torch::Tensor> quantize_backward(torch::Tensor grad, torch::Tensor x, double alpha,
                                             double scale, double inv_scale, double levels) {
  check_dense(x, "x");
  TORCH_CHECK(grad.sizes() == x.sizes(), "grad has shape ", grad.sizes(), ", x has ", x.sizes());
  TORCH_CHECK(grad.scalar_type() == x.scalar_type(), "grad and x must share one dtype");
  if (!same_flat_layout(grad, x)) grad = torch::empty_like(x).copy_(grad);  // x's dense strides
  auto grad_x = torch::empty_like(x);
  const int64_t N = x.numel();
  const int64_t chunks = std::max<int64_t>(1, (N + kGrain - 1) / kGrain);
  std::vector<double> part_in(chunks, 0.0), part_above(chunks, 0.0);
  AT_DISPATCH_FLOATING_TYPES_AND(at::kBFloat16, x.scalar_type(), "quantize_backward", [&] {
    using E = Elem<scalar_t>;
    using op = typename E::op;
    const op k = static_cast<op>(scale), inv = static_cast<op>(inv_scale);
    const op L = static_cast<op>(levels), a = static_cast<op>(alpha);
    const auto* px = reinterpret_cast<const typename E::raw*>(x.data_ptr<scalar_t>());
    const auto* pg = reinterpret_cast<const typename E::raw*>(grad.data_ptr<scalar_t>());
    auto* pgx = reinterpret_cast<typename E::raw*>(grad_x.data_ptr<scalar_t>());
    double* pin = part_in.data();
    double* pab = part_above.data();
    at::parallel_for(0, chunks, 1, [=](int64_t cb, int64_t ce) {
      for (int64_t c = cb; c < ce; ++c) {
        const int64_t end = std::min(N, (c + 1) * kGrain);
        for (int64_t b = c * kGrain; b < end; b += kBlock) {
          const int64_t n = std::min(kBlock, end - b);
          backward_block<E>(px + b, pg + b, pgx + b, k, inv, L, a, n, pin + c, pab + c);
        }
      }
    });
  });
  double s_in = 0.0, s_above = 0.0;
  for (int64_t c = 0; c < chunks; ++c) {
    s_in += part_in[c];
    s_above += part_above[c];
  }
  auto sums = torch::tensor({s_in, s_above}, torch::dtype(torch::kFloat64));
  return {grad_x, sums};
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("if_simulate", &if_simulate, "soft-reset IF neuron over T steps (in place into out)");
  m.def("time_mean", &time_mean, "time average of a [T, ...] train (into out)");
  m.def("quantize_forward", &quantize_forward, "Eq. 5 forward");
  m.def("quantize_backward", &quantize_backward, "Eq. 5 straight-through backward");
}
