// The emulation's stand-in for <c10/cuda/CUDAGuard.h>: see ../../../cuda_emu.h.
#pragma once
#include "../../../cuda_emu.h"
