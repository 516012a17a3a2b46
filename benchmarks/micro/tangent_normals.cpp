// Is a ziggurat cheaper than the sampler's Box-Muller for the float32 tangent normals?
// Both from the same precomputed 32-bit words (the Philox cost is the same for both and left out): the
// sampler's vectorized loop (cpu::box_muller_float, two words per pair of normals) against a 128-layer float
// ziggurat (G. Marsaglia, W. W. Tsang, "The ziggurat method for generating random variables", J. Stat. Softw.
// 5(8), 2000), one word per normal plus extra words on its ~1.5 % of rejections and tails. CPU time per normal,
// best of 30 passes over 2^20 normals, one thread. Run by benchmarks/micro/run_tangent_normals.sh.
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <ctime>
#include <vector>
#include "cpu/fast_normal.h"  // csrc/: the sampler's own Box-Muller loop

static float kn[128];
static float wn[128], fn[128];
static void zig_setup() {  // Marsaglia-Tsang table for the normal
  const double m1 = 2147483648.0;
  double dn = 3.442619855899, tn = dn, vn = 9.91256303526217e-3;
  double q = vn / std::exp(-.5 * dn * dn);
  kn[0] = (float)((dn / q) * m1);
  kn[1] = 0;
  wn[0] = (float)(q / m1);
  wn[127] = (float)(dn / m1);
  fn[0] = 1.f;
  fn[127] = (float)std::exp(-.5 * dn * dn);
  for (int i = 126; i >= 1; i--) {
    dn = std::sqrt(-2. * std::log(vn / dn + std::exp(-.5 * dn * dn)));
    kn[i + 1] = (float)((dn / tn) * m1);
    tn = dn;
    fn[i] = (float)std::exp(-.5 * dn * dn);
    wn[i] = (float)(dn / m1);
  }
}
static inline float uni(uint32_t w) { return (w >> 8) * (1.0f / 16777216.0f) + (0.5f / 16777216.0f); }
// one normal from word w; extra words from *fb on rejection
static inline float zig(uint32_t w, const uint32_t*& fb) {
  int32_t hz = (int32_t)w;
  uint32_t iz = hz & 127;
  if ((uint32_t)std::abs(hz) < (uint32_t)kn[iz]) return hz * wn[iz];
  for (;;) {
    const float r = 3.442620f;
    float x, y;
    x = hz * wn[iz];
    if (iz == 0) {
      do {
        x = -std::log(uni(*fb++)) * 0.2904764f;
        y = -std::log(uni(*fb++));
      } while (y + y < x * x);
      return hz > 0 ? r + x : -r - x;
    }
    if (fn[iz] + uni(*fb++) * (fn[iz - 1] - fn[iz]) < std::exp(-.5f * x * x)) return x;
    hz = (int32_t)*fb++;
    iz = hz & 127;
    if ((uint32_t)std::abs(hz) < (uint32_t)kn[iz]) return hz * wn[iz];
  }
}
int main() {  // prints the two costs and the ziggurat sample's mean and variance (a sanity check)
  zig_setup();
  const int64_t n = 1 << 20;  // normals
  std::vector<uint32_t> words(n + 4 * n / 10), fbw(n);
  uint32_t s = 12345;
  for (auto& w : words) {
    s = s * 1664525u + 1013904223u;
    w = s ^ (s >> 15);
  }
  for (auto& w : fbw) {
    s = s * 1664525u + 1013904223u;
    w = s ^ (s >> 13);
  }
  std::vector<float> out(n);
  auto cpu = [] { return (double)std::clock() / CLOCKS_PER_SEC; };
  double best_bm = 1e9, best_zig = 1e9;
  double sink = 0;
  for (int rep = 0; rep < 30; ++rep) {
    double t0 = cpu();
    hvae::cpu::box_muller_float(words.data(), out.data(), n / 2);
    double t1 = cpu();
    best_bm = std::min(best_bm, t1 - t0);
    sink += out[rep];
    t0 = cpu();
    const uint32_t* fb = fbw.data();
    for (int64_t i = 0; i < n; ++i) out[i] = zig(words[i], fb);
    t1 = cpu();
    best_zig = std::min(best_zig, t1 - t0);
    sink += out[rep + 1];
  }
  double m = 0, v = 0;
  for (auto x : out) {
    m += x;
    v += x * x;
  }
  m /= n;
  v = v / n - m * m;
  std::printf(
      "box_muller_float (vectorized): %.2f ns/normal\nziggurat (scalar, 128 layers): %.2f ns/normal  (its sample: mean "
      "%.4f, variance %.4f; checksum %g)\n",
      best_bm / n * 1e9, best_zig / n * 1e9, m, v, sink);
}
