// The interface between the emulated kernels (cuda_emu.h) and the emulation's runtime (runtime.cpp): thread
// coordinates, warp and block collectives, the grid launch, the configuration of the emulated device.
#pragma once

#include <cstdint>

namespace hvae_emu {

struct uint3 {
  unsigned x = 0, y = 0, z = 0;
};
struct dim3 {
  unsigned x, y, z;
  constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};

enum class Collective : int { kShfl, kShflXor, kShflUp, kShflDown, kBallot, kAny, kAll, kSyncWarp, kSyncThreads };

// Blocks the calling emulated thread until its warp (its block, for kSyncThreads) meets at this call and
// returns the thread's result. A violation (a lane missing or exited, lanes at different calls, a mask that
// is not full) is recorded, the block stops, and run_grid throws.
uint64_t collective(Collective op, const char* file, int line, unsigned mask, uint64_t value, int arg, int width);

// Runs body(ctx) once per thread of the grid: blocks one after another, the threads of a block as fibers that
// run until they finish or reach a collective. Throws c10::Error for a bad configuration, a violation or an
// exception thrown by a kernel.
void run_grid(dim3 grid, dim3 block, void (*body)(void*), void* ctx, const char* kernel_name);

// The seeded fault selected from Python (0: none). Only the fault-injection builds, whose kernel text was
// patched to consult it, change behaviour (tests/integration/test_cuda_emulation.py).
int fault();
inline bool fault_is(int k) { return fault() == k; }

// The multiprocessor count cudaDeviceGetAttribute reports (configurable from Python).
int multiprocessor_count();

// The device libm's result y = f(x) moved by up to `ulps` units in the last place, as configured from Python
// (off, all up, all down, or a pseudo-random amount per (function, argument)); fn numbers the function.
double perturb(double y, int ulps, int fn, double x);
float perturb(float y, int ulps, int fn, float x);

}  // namespace hvae_emu

// The coordinates of the running emulated thread (set by the scheduler before it resumes a fiber).
extern thread_local hvae_emu::uint3 threadIdx;
extern thread_local hvae_emu::uint3 blockIdx;
extern thread_local hvae_emu::dim3 blockDim;
extern thread_local hvae_emu::dim3 gridDim;
