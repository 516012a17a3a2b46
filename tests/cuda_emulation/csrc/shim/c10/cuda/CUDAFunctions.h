// The emulation's stand-in for <c10/cuda/CUDAFunctions.h> (current_device): see ../../../cuda_emu.h.
#pragma once
#include "../../../cuda_emu.h"
