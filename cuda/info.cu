// CUDA runtime queries for backends().
#include "../src/include/rk_common.h"
#include "common.cuh"

extern "C" int rk_cuda_device_count(int* count, char* err, size_t errlen) {
  *count = 0;
  cudaError_t e = cudaGetDeviceCount(count);
  if (e != cudaSuccess) {
    *count = 0;
    return rkc::report(e, "cudaGetDeviceCount", err, errlen);
  }
  return 0;
}

extern "C" int rk_cuda_device_info(int i, char* name, size_t namelen, size_t* memory_bytes) {
  cudaDeviceProp p;
  if (cudaGetDeviceProperties(&p, i) != cudaSuccess) {
    cudaGetLastError();
    if (namelen) name[0] = 0;
    *memory_bytes = 0;
    return 1;
  }
  snprintf(name, namelen, "%s", p.name);
  *memory_bytes = p.totalGlobalMem;
  return 0;
}
