// The rk_cuda_* half of the C ABI for a library built without CUDA (CMakeLists.txt links this file
// into librlhf_kernels instead of cuda/*.cu): every function fails with "built without CUDA", so
// one header and one set of symbols serve both builds.
#include <cstdio>

#include "../core/ppo.hpp"
#include "../include/rlhf_kernels.h"

namespace {
int no_cuda(char* err, size_t errlen) {
  if (err && errlen) std::snprintf(err, errlen, "rlhf-kernels: built without CUDA");
  return 1;
}
}  // namespace

extern "C" {

#define RK_STUB_(op, T)                                                                                              \
  int rk_cuda_##op(const T*, char* err, size_t errlen) { return no_cuda(err, errlen); }                              \
  int rk_cuda_##op##_dev(const T*, void*, char* err, size_t errlen) { return no_cuda(err, errlen); }
RK_FOR_EACH_CUDA_OP(RK_STUB_)
#undef RK_STUB_

int rk_has_cuda(void) { return 0; }
int rk_cuda_linear_logits(const void*, const void*, const float*, int, size_t, size_t, size_t, float*, char* err, size_t errlen) {
  return no_cuda(err, errlen);
}
size_t rk_ppo_workspace_bytes(size_t B, size_t T) { return rk::ppo_workspace_bytes(B, T); }
int rk_cuda_device_count(int* count, char* err, size_t errlen) {
  *count = 0;
  return no_cuda(err, errlen);
}
int rk_cuda_device_info(int, char* name, size_t namelen, size_t* memory_bytes) {
  if (namelen) name[0] = 0;
  *memory_bytes = 0;
  return 1;
}
int rk_cuda_set_device(int, char* err, size_t errlen) { return no_cuda(err, errlen); }
int rk_cuda_default_stream(int, void** stream, char* err, size_t errlen) { *stream = nullptr; return no_cuda(err, errlen); }
int rk_cuda_stream_create(int, void** stream, char* err, size_t errlen) { *stream = nullptr; return no_cuda(err, errlen); }
int rk_cuda_stream_destroy(int, void*) { return 1; }
int rk_cuda_stream_synchronize(int, void*, char* err, size_t errlen) { return no_cuda(err, errlen); }
int rk_cuda_stream_wait(int, void*, void*, char* err, size_t errlen) { return no_cuda(err, errlen); }
int rk_cuda_event_record(int, void*, void** event, char* err, size_t errlen) { *event = nullptr; return no_cuda(err, errlen); }
int rk_cuda_event_synchronize(void*, char* err, size_t errlen) { return no_cuda(err, errlen); }
int rk_cuda_malloc_async(int, size_t, void*, void** ptr, char* err, size_t errlen) { *ptr = nullptr; return no_cuda(err, errlen); }
int rk_cuda_free_async(int, void*, void*) { return 1; }
int rk_cuda_memcpy(int, void*, const void*, size_t, int, void*, int, char* err, size_t errlen) { return no_cuda(err, errlen); }
int rk_cuda_memset(int, void*, int, size_t, void*, char* err, size_t errlen) { return no_cuda(err, errlen); }
int rk_cuda_convert_f32(int, const void*, int, float*, size_t, void*, char* err, size_t errlen) { return no_cuda(err, errlen); }
int rk_cuda_memory_stats_get(int, rk_cuda_memory_stats* s, char* err, size_t errlen) {
  *s = rk_cuda_memory_stats{0, 0, 0, 0};
  return no_cuda(err, errlen);
}
int rk_cuda_empty_cache(int, char* err, size_t errlen) { return no_cuda(err, errlen); }

}  // extern "C"
