# Helpers of the CUDA part of the build (CMakeLists.txt), kept in a file of their own so that
# tests/integration/test_build.py can run them with `cmake -P` (tests/cmake/arch_list.cmake).

# hvae_torch_arch_list(<out> <architectures>): CMake's CUDA_ARCHITECTURES spelling ("80;86-real;90a;
# 100;120-virtual") -> the TORCH_CUDA_ARCH_LIST spelling ("8.0;8.6;9.0a;10.0;12.0+PTX"). The last digit is
# the minor version and the digits before it the major one, so 100 is 10.0, not 1.00; a letter suffix
# (a, f) stays; "-virtual" (PTX only) becomes "+PTX", "-real" drops.
function(hvae_torch_arch_list out archs)
  set(result "")
  foreach(arch IN LISTS archs)
    if(NOT arch MATCHES "^([0-9]+)([0-9])([a-z]?)(-real|-virtual)?$")
      message(FATAL_ERROR
        "hvae_ext: cannot read the CUDA architecture '${arch}' (expected a number such as 80, 90a, 100 "
        "or 120, optionally with -real or -virtual)")
    endif()
    set(entry "${CMAKE_MATCH_1}.${CMAKE_MATCH_2}${CMAKE_MATCH_3}")
    if(CMAKE_MATCH_4 STREQUAL "-virtual")
      set(entry "${entry}+PTX")
    endif()
    list(APPEND result "${entry}")
  endforeach()
  set(${out} "${result}" PARENT_SCOPE)
endfunction()

# hvae_default_cuda_architectures(<out> <numbers>): the given compute capabilities ("80;90", from the
# GPUs visible at build time or torch's own arch list), deduplicated and sorted, each as SASS
# ("-real") and the newest also as PTX, so that a newer GPU can JIT-compile it (forward compatibility).
function(hvae_default_cuda_architectures out numbers)
  set(nums "")
  foreach(n IN LISTS numbers)
    string(REGEX REPLACE "^sm_|^compute_" "" n "${n}")
    if(n MATCHES "^[0-9]+[a-z]?$")
      list(APPEND nums "${n}")
    endif()
  endforeach()
  list(REMOVE_DUPLICATES nums)
  list(SORT nums COMPARE NATURAL)
  set(result "")
  set(newest "")
  foreach(n IN LISTS nums)
    list(APPEND result "${n}-real")
    string(REGEX REPLACE "[a-z]$" "" plain "${n}")
    set(newest "${plain}")
  endforeach()
  if(NOT newest STREQUAL "")
    list(APPEND result "${newest}-virtual")
  endif()
  set(${out} "${result}" PARENT_SCOPE)
endfunction()
