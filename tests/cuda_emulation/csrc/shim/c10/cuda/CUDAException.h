// The emulation's stand-in for <c10/cuda/CUDAException.h>: see ../../../cuda_emu.h.
#pragma once
#include "../../../cuda_emu.h"
