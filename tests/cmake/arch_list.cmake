# cmake -DARCHS="80;90a" -DMODE=torch|default -P tests/cmake/arch_list.cmake  -> prints the result
include("${CMAKE_CURRENT_LIST_DIR}/../../cmake/HvaeCuda.cmake")
if(MODE STREQUAL "default")
  hvae_default_cuda_architectures(result "${ARCHS}")
else()
  hvae_torch_arch_list(result "${ARCHS}")
endif()
message(STATUS "RESULT=${result}")
