// The runtime of the CUDA host emulation (see cuda_emu.h): the threads of a block as fibers (ucontext) that
// run until they finish or reach a collective, the checked rendezvous of the warp collectives, the grid loop,
// the libm perturbation, and the Python module that configures the emulated device and reports counts.
#undef _FORTIFY_SOURCE  // glibc's fortified longjmp checks do not expect stacks that are not the thread's

#include <pybind11/pybind11.h>
#include <ucontext.h>
#include <sys/mman.h>
#include <unistd.h>

#include <c10/util/Exception.h>

#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>
#include <vector>

#include "emu_runtime.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/common_interface_defs.h>
#define HVAE_EMU_ASAN 1
#else
#define HVAE_EMU_ASAN 0
#endif

#define HVAE_EMU_STR2_(x) #x
#define HVAE_EMU_STR_(x) HVAE_EMU_STR2_(x)

thread_local hvae_emu::uint3 threadIdx;
thread_local hvae_emu::uint3 blockIdx;
thread_local hvae_emu::dim3 blockDim;
thread_local hvae_emu::dim3 gridDim;

namespace hvae_emu {
namespace {

// ---- configuration and counts ----------------------------------------------------------------------------
std::atomic<int> g_multiprocessors{4};
std::atomic<int> g_fault{0};
std::atomic<int> g_perturb_mode{0};  // 0 off, 1 up, 2 down, 3 pseudo-random
std::atomic<uint64_t> g_perturb_seed{0};
std::atomic<uint64_t> n_launches{0}, n_blocks{0}, n_threads{0}, n_collectives{0}, n_perturbed{0};
#if HVAE_EMU_ASAN
constexpr size_t kStackBytes = 1 << 20;
#else
constexpr size_t kStackBytes = 256 << 10;
#endif

const char* op_name(Collective op) {
  switch (op) {
    case Collective::kShfl:
      return "__shfl_sync";
    case Collective::kShflXor:
      return "__shfl_xor_sync";
    case Collective::kShflUp:
      return "__shfl_up_sync";
    case Collective::kShflDown:
      return "__shfl_down_sync";
    case Collective::kBallot:
      return "__ballot_sync";
    case Collective::kAny:
      return "__any_sync";
    case Collective::kAll:
      return "__all_sync";
    case Collective::kSyncWarp:
      return "__syncwarp";
    case Collective::kSyncThreads:
      return "__syncthreads";
  }
  return "?";
}

std::string base_name(const char* file) {
  const char* slash = std::strrchr(file, '/');
  return slash ? slash + 1 : file;
}

// ---- fibers ------------------------------------------------------------------------------------------------
enum class State { kReady, kWaiting, kDone, kFailed };

struct Pending {
  Collective op;
  const char* file;
  int line;
  unsigned mask;
  uint64_t value;
  int arg, width;
  uint64_t result;
};

struct Thread {
  ucontext_t ctx;
  State state;
  Pending at;
  void* fake_stack = nullptr;  // ASan's fiber bookkeeping
};

struct Block {
  ucontext_t sched;
  std::vector<Thread> threads;
  void (*body)(void*) = nullptr;
  void* ctx = nullptr;
  int current = -1;
  std::string error;
  void* sched_fake_stack = nullptr;
  const void* sched_bottom = nullptr;
  size_t sched_size = 0;
};

thread_local Block* t_block = nullptr;

// Fiber stacks with a guard page below each (an overflow faults instead of corrupting a neighbour), kept for
// the next launch.
struct StackPool {
  std::vector<char*> stacks;
  size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  char* get(size_t i) {
    while (stacks.size() <= i) {
      void* p =
          mmap(nullptr, kStackBytes + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
      TORCH_CHECK(p != MAP_FAILED, "cuda emulation: cannot map a fiber stack");
      mprotect(p, page, PROT_NONE);
      stacks.push_back(static_cast<char*>(p) + page);
    }
    return stacks[i];
  }
  ~StackPool() {
    for (char* s : stacks) munmap(s - page, kStackBytes + page);
  }
};
thread_local StackPool t_stacks;

void set_thread_idx(int i) {
  const unsigned bx = blockDim.x, by = blockDim.y;
  threadIdx.x = static_cast<unsigned>(i) % bx;
  threadIdx.y = (static_cast<unsigned>(i) / bx) % by;
  threadIdx.z = static_cast<unsigned>(i) / (bx * by);
}

void fail(Block* b, const std::string& msg) {
  if (b->error.empty()) b->error = msg;
}

void thread_main() {
  Block* b = t_block;
  const int me = b->current;
#if HVAE_EMU_ASAN
  __sanitizer_finish_switch_fiber(nullptr, &b->sched_bottom, &b->sched_size);
#endif
  try {
    b->body(b->ctx);
    b->threads[me].state = State::kDone;
  } catch (const c10::Error& e) {
    fail(b, "thread " + std::to_string(me) + " threw: " + e.what_without_backtrace());
    b->threads[me].state = State::kFailed;
  } catch (const std::exception& e) {
    fail(b, "thread " + std::to_string(me) + " threw: " + e.what());
    b->threads[me].state = State::kFailed;
  } catch (...) {
    fail(b, "thread " + std::to_string(me) + " threw an exception");
    b->threads[me].state = State::kFailed;
  }
#if HVAE_EMU_ASAN
  __sanitizer_start_switch_fiber(nullptr, b->sched_bottom, b->sched_size);  // this fiber ends
#endif
  // returning resumes uc_link, the scheduler
}

void resume(Block& b, int i, char* stack) {
  b.current = i;
  set_thread_idx(i);
#if HVAE_EMU_ASAN
  __sanitizer_start_switch_fiber(&b.sched_fake_stack, stack, kStackBytes);
#else
  (void)stack;
#endif
  swapcontext(&b.sched, &b.threads[i].ctx);
#if HVAE_EMU_ASAN
  __sanitizer_finish_switch_fiber(b.sched_fake_stack, nullptr, nullptr);
#endif
}

std::string where(const Pending& p) {
  return std::string(op_name(p.op)) + " at " + base_name(p.file) + ":" + std::to_string(p.line);
}

// Resolves the collective that warp w's lanes wait at; false (with the error) if they may not meet.
bool resolve_warp(Block& b, int w, int n, bool* resolved) {
  const int lo = 32 * w;
  int ref = -1;
  for (int i = lo; i < lo + 32 && i < n; ++i)
    if (b.threads[i].state == State::kWaiting && b.threads[i].at.op != Collective::kSyncThreads) {
      ref = i;
      break;
    }
  if (ref < 0) return true;
  const Pending& r = b.threads[ref].at;
  const std::string head = where(r) + " (warp " + std::to_string(w) + "): ";
  for (int lane = 0; lane < 32; ++lane) {
    const int i = lo + lane;
    if (i >= n) {
      fail(&b, head + "lane " + std::to_string(lane) + " does not exist (" + std::to_string(n) + " threads per block)");
      return false;
    }
    const Thread& t = b.threads[i];
    if (t.state == State::kDone) {
      fail(&b, head + "lane " + std::to_string(lane) + " has exited");
      return false;
    }
    if (t.at.op != r.op || t.at.line != r.line || std::strcmp(t.at.file, r.file) != 0) {
      fail(&b, head + "lane " + std::to_string(lane) + " waits at " + where(t.at) + " instead");
      return false;
    }
    if (t.at.mask != 0xffffffffu) {
      char buf[64];
      std::snprintf(buf, sizeof buf, "0x%08x", t.at.mask);
      fail(&b, head + "lane " + std::to_string(lane) + " passes the mask " + buf + ", not the full mask");
      return false;
    }
    const int width = t.at.width;
    if (width != r.width || width < 1 || width > 32 || (width & (width - 1)) != 0) {
      fail(&b, head + "lane " + std::to_string(lane) + " passes the width " + std::to_string(width));
      return false;
    }
  }
  uint64_t ballot = 0;
  for (int lane = 0; lane < 32; ++lane) ballot |= (b.threads[lo + lane].at.value != 0 ? 1ull : 0ull) << lane;
  uint64_t results[32];
  for (int lane = 0; lane < 32; ++lane) {
    const Pending& p = b.threads[lo + lane].at;
    const int width = p.width, base = lane & ~(width - 1);
    int src = lane;
    switch (p.op) {
      case Collective::kShfl:
        src = base + (((p.arg % width) + width) % width);
        break;
      case Collective::kShflXor:
        src = lane ^ p.arg;
        if (src < 0 || src >= base + width) src = lane;
        break;
      case Collective::kShflUp:
        src = lane - p.arg;
        if (src < base) src = lane;
        break;
      case Collective::kShflDown:
        src = lane + p.arg;
        if (src >= base + width) src = lane;
        break;
      default:
        break;
    }
    switch (p.op) {
      case Collective::kBallot:
        results[lane] = ballot;
        break;
      case Collective::kAny:
        results[lane] = ballot != 0;
        break;
      case Collective::kAll:
        results[lane] = ballot == 0xffffffffull;
        break;
      case Collective::kSyncWarp:
        results[lane] = 0;
        break;
      default:
        results[lane] = b.threads[lo + src].at.value;
        break;
    }
  }
  for (int lane = 0; lane < 32; ++lane) {
    b.threads[lo + lane].at.result = results[lane];
    b.threads[lo + lane].state = State::kReady;
  }
  n_collectives.fetch_add(1, std::memory_order_relaxed);
  *resolved = true;
  return true;
}

bool run_block(Block& b, int n) {
  for (int i = 0; i < n; ++i) {
    Thread& t = b.threads[i];
    getcontext(&t.ctx);
    t.ctx.uc_stack.ss_sp = t_stacks.get(static_cast<size_t>(i));
    t.ctx.uc_stack.ss_size = kStackBytes;
    t.ctx.uc_link = &b.sched;
    makecontext(&t.ctx, &thread_main, 0);
    t.state = State::kReady;
  }
  for (;;) {
    for (int i = 0; i < n; ++i)
      if (b.threads[i].state == State::kReady) resume(b, i, t_stacks.get(static_cast<size_t>(i)));
    int done = 0, waiting_block = 0;
    for (int i = 0; i < n; ++i) {
      const State s = b.threads[i].state;
      if (s == State::kFailed) return false;
      if (s == State::kDone) ++done;
      if (s == State::kWaiting && b.threads[i].at.op == Collective::kSyncThreads) ++waiting_block;
    }
    if (done == n) return true;
    bool resolved = false;
    for (int w = 0; w < (n + 31) / 32; ++w)
      if (!resolve_warp(b, w, n, &resolved)) return false;
    if (resolved) continue;
    // every waiting thread is at __syncthreads
    if (done > 0) {
      for (int i = 0; i < n; ++i)
        if (b.threads[i].state == State::kWaiting) {
          fail(&b, where(b.threads[i].at) + ": " + std::to_string(done) + " thread(s) of the block have exited");
          break;
        }
      return false;
    }
    const Pending& r = b.threads[0].at;
    for (int i = 0; i < n; ++i) {
      const Pending& p = b.threads[i].at;
      if (p.line != r.line || std::strcmp(p.file, r.file) != 0) {
        fail(&b, "thread " + std::to_string(i) + " waits at " + where(p) + ", thread 0 at " + where(r));
        return false;
      }
    }
    for (int i = 0; i < n; ++i) b.threads[i].state = State::kReady;
    n_collectives.fetch_add(1, std::memory_order_relaxed);
  }
}

uint64_t splitmix64(uint64_t z) {
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// The signed number of ulps to move f(x) by, or 0.
template <class T, class Bits>
int perturb_steps(T y, int ulps, int fn, T x) {
  const int mode = g_perturb_mode.load(std::memory_order_relaxed);
  // exact results (0, +-1, non-finite) stay exact, as CUDA's functions return them exactly
  if (mode == 0 || ulps == 0 || !std::isfinite(y) || y == T(0) || y == T(1) || y == T(-1)) return 0;
  n_perturbed.fetch_add(1, std::memory_order_relaxed);
  if (mode == 1) return ulps;
  if (mode == 2) return -ulps;
  Bits bits;
  std::memcpy(&bits, &x, sizeof bits);
  const uint64_t h = splitmix64(static_cast<uint64_t>(bits) ^ (static_cast<uint64_t>(fn) << 56) ^
                                g_perturb_seed.load(std::memory_order_relaxed));
  return static_cast<int>(h % static_cast<uint64_t>(2 * ulps + 1)) - ulps;
}

}  // namespace

// ---- the interface ---------------------------------------------------------------------------------------
uint64_t collective(Collective op, const char* file, int line, unsigned mask, uint64_t value, int arg, int width) {
  Block* b = t_block;
  if (b == nullptr) {
    std::fprintf(stderr, "cuda emulation: %s outside a kernel\n", op_name(op));
    std::abort();
  }
  Thread& t = b->threads[b->current];
  t.at = Pending{op, file, line, mask, value, arg, width, 0};
  t.state = State::kWaiting;
#if HVAE_EMU_ASAN
  __sanitizer_start_switch_fiber(&t.fake_stack, b->sched_bottom, b->sched_size);
#endif
  swapcontext(&t.ctx, &b->sched);
#if HVAE_EMU_ASAN
  __sanitizer_finish_switch_fiber(t.fake_stack, &b->sched_bottom, &b->sched_size);
#endif
  return t.at.result;
}

void run_grid(dim3 grid, dim3 block, void (*body)(void*), void* ctx, const char* kernel_name) {
  TORCH_CHECK(t_block == nullptr, "cuda emulation: a launch inside a kernel is not emulated");
  const long long n = static_cast<long long>(block.x) * block.y * block.z;
  TORCH_CHECK(n >= 1 && n <= 1024, "cuda emulation: invalid block of ", n, " threads");
  TORCH_CHECK(grid.x >= 1 && grid.y >= 1 && grid.z >= 1, "cuda emulation: empty grid");
  n_launches.fetch_add(1, std::memory_order_relaxed);
  Block b;
  b.threads.resize(static_cast<size_t>(n));
  b.body = body;
  b.ctx = ctx;
  const dim3 saved_grid = gridDim, saved_block = blockDim;
  gridDim = grid;
  blockDim = block;
  t_block = &b;
  bool ok = true;
  for (unsigned z = 0; ok && z < grid.z; ++z)
    for (unsigned y = 0; ok && y < grid.y; ++y)
      for (unsigned x = 0; ok && x < grid.x; ++x) {
        blockIdx.x = x;
        blockIdx.y = y;
        blockIdx.z = z;
        ok = run_block(b, static_cast<int>(n));
        n_blocks.fetch_add(1, std::memory_order_relaxed);
        n_threads.fetch_add(static_cast<uint64_t>(n), std::memory_order_relaxed);
      }
  t_block = nullptr;
  gridDim = saved_grid;
  blockDim = saved_block;
  TORCH_CHECK(ok, "cuda emulation: ", kernel_name, ", block (", blockIdx.x, ", ", blockIdx.y, ", ", blockIdx.z,
              "): ", b.error);
}

int fault() { return g_fault.load(std::memory_order_relaxed); }

int multiprocessor_count() { return g_multiprocessors.load(std::memory_order_relaxed); }

double perturb(double y, int ulps, int fn, double x) {
  int k = perturb_steps<double, uint64_t>(y, ulps, fn, x);
  for (; k > 0; --k) y = std::nextafter(y, INFINITY);
  for (; k < 0; ++k) y = std::nextafter(y, -INFINITY);
  return y;
}
float perturb(float y, int ulps, int fn, float x) {
  int k = perturb_steps<float, uint32_t>(y, ulps, fn, x);
  for (; k > 0; --k) y = std::nextafterf(y, INFINITY);
  for (; k < 0; ++k) y = std::nextafterf(y, -INFINITY);
  return y;
}

}  // namespace hvae_emu

namespace py = pybind11;

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "CUDA kernels of hvae_ext run on the host (tests/cuda_emulation)";
  m.attr("op_namespace") = HVAE_EMU_STR_(HVAE_EMU_NS);
  m.def(
      "configure",
      [](int multiprocessors, int perturb_mode, uint64_t perturb_seed, int fault) {
        TORCH_CHECK(multiprocessors >= 1, "multiprocessors must be >= 1");
        TORCH_CHECK(perturb_mode >= 0 && perturb_mode <= 3,
                    "perturb_mode must be 0 (off), 1 (up), 2 (down) or 3 (random)");
        hvae_emu::g_multiprocessors = multiprocessors;
        hvae_emu::g_perturb_mode = perturb_mode;
        hvae_emu::g_perturb_seed = perturb_seed;
        hvae_emu::g_fault = fault;
      },
      py::arg("multiprocessors") = 4, py::arg("perturb_mode") = 0, py::arg("perturb_seed") = 0, py::arg("fault") = 0,
      "The emulated device: its multiprocessor count, the libm perturbation (0 off, 1 up, 2 down, 3 random) and\n"
      "the seeded fault of a fault-injection build (0 none).");
  m.def(
      "stats",
      []() {
        py::dict d;
        d["launches"] = hvae_emu::n_launches.load();
        d["blocks"] = hvae_emu::n_blocks.load();
        d["threads"] = hvae_emu::n_threads.load();
        d["collectives"] = hvae_emu::n_collectives.load();
        d["perturbed"] = hvae_emu::n_perturbed.load();
        return d;
      },
      "Counts since the library was loaded: launches, blocks, threads, resolved collectives, perturbed libm results.");
}
