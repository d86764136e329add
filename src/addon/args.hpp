// Argument reading for the N-API layer: each native entry point takes positional arguments
// (typed arrays, numbers, booleans) already validated by the TypeScript wrapper. These readers
// check them again, cheaply (type and exact length), so that no JS value, however malformed,
// reaches a kernel as a wrong pointer or length: a wrong argument is a TypeError, never a crash.
#pragma once
#include <napi.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "../include/rk_common.h"

namespace rk_addon {

class Args {
 public:
  explicit Args(const Napi::CallbackInfo& info) : info_(info), env_(info.Env()) {}
  Napi::Env env() const { return env_; }

  // Inputs (const) and outputs. An output may not share memory with any other array argument
  // (RangeError naming both): kernels read inputs after writing outputs, and an index input
  // that was checked must stay as checked. Int32 inputs and masks (labels, token ids, layouts:
  // what decides which memory a kernel touches) in a SharedArrayBuffer are copied first, so
  // another thread cannot change them between the check and the use.
  const float* f32(const char* name, size_t n) { return typed<float>(name, n, napi_float32_array, "Float32Array", false); }
  float* f32_out(const char* name, size_t n) { return typed<float>(name, n, napi_float32_array, "Float32Array", true); }
  const int32_t* i32(const char* name, size_t n) { return typed<int32_t>(name, n, napi_int32_array, "Int32Array", false, true); }
  int32_t* i32_out(const char* name, size_t n) { return typed<int32_t>(name, n, napi_int32_array, "Int32Array", true); }
  const uint8_t* u8(const char* name, size_t n) { return typed<uint8_t>(name, n, napi_uint8_array, "Uint8Array", false, true); }
  uint8_t* u8_out(const char* name, size_t n) { return typed<uint8_t>(name, n, napi_uint8_array, "Uint8Array", true); }
  const uint16_t* u16(const char* name, size_t n) { return typed<uint16_t>(name, n, napi_uint16_array, "Uint16Array", false); }

  // null/undefined → nullptr, else a Float32Array of n elements.
  const float* f32_opt(const char* name, size_t n) {
    if (is_null()) { ++i_; return nullptr; }
    return f32(name, n);
  }
  float* f32_out_opt(const char* name, size_t n) {
    if (is_null()) { ++i_; return nullptr; }
    return f32_out(name, n);
  }
  // A mask: null/undefined (kind NONE), Uint8Array or Float32Array of n elements.
  const void* mask(const char* name, size_t n, int* kind) {
    if (is_null()) { ++i_; *kind = RK_MASK_NONE; return nullptr; }
    Napi::Value v = info_[i_];
    if (v.IsTypedArray() && v.As<Napi::TypedArray>().TypedArrayType() == napi_uint8_array) {
      *kind = RK_MASK_U8; return u8(name, n);
    }
    *kind = RK_MASK_F32;
    return typed<float>(name, n, napi_float32_array, "Float32Array", false, true);
  }
  // Logits as f32 (Float32Array) or f16/bf16 (Uint16Array); dtype code given by the caller.
  const void* logits(const char* name, size_t n, int dtype) {
    if (dtype == RK_DT_F32) return f32(name, n);
    if (dtype == RK_DT_F16 || dtype == RK_DT_BF16) return u16(name, n);
    fail_type(name, "a logits dtype code");
    return nullptr;
  }

  double num(const char* name) {
    Napi::Value v = info_[i_++];
    if (!v.IsNumber()) fail_type(name, "a number");
    return v.As<Napi::Number>().DoubleValue();
  }
  double finite(const char* name) {
    double d = num(name);
    if (!std::isfinite(d)) range(name, "a finite number");
    return d;
  }
  // A non-negative integer that fits the sizes used by the kernels (< 2^53, and the product of
  // dimensions is checked by the typed-array lengths).
  size_t size(const char* name) {
    double d = num(name);
    if (!(d >= 0) || d != std::floor(d) || d > 9007199254740991.0) range(name, "a non-negative integer");
    return (size_t)d;
  }
  int64_t integer(const char* name) {
    double d = num(name);
    if (!std::isfinite(d) || d != std::floor(d) || std::fabs(d) > 9007199254740991.0) range(name, "an integer");
    return (int64_t)d;
  }
  bool boolean(const char* name) {
    Napi::Value v = info_[i_++];
    if (!v.IsBoolean()) fail_type(name, "a boolean");
    return v.As<Napi::Boolean>().Value();
  }
  // The trailing backend selector: false = CPU, true = CUDA.
  bool use_cuda() {
    if (i_ >= info_.Length() || info_[i_].IsUndefined()) { ++i_; return false; }
    return boolean("useCuda");
  }

  [[noreturn]] void fail_type(const char* name, const char* what) {
    throw Napi::TypeError::New(env_, std::string("rlhf-kernels native: argument '") + name + "' must be " + what);
  }
  [[noreturn]] void range(const char* name, const char* what) {
    throw Napi::RangeError::New(env_, std::string("rlhf-kernels native: argument '") + name + "' must be " + what);
  }

 private:
  bool is_null() const { return i_ >= info_.Length() || info_[i_].IsNull() || info_[i_].IsUndefined(); }
  template <class T>
  T* typed(const char* name, size_t n, napi_typedarray_type type, const char* tname, bool out, bool copy_shared = false) {
    if (i_ >= info_.Length()) fail_type(name, tname);
    napi_value v = info_[i_++];
    bool is_ta = false;
    if (napi_is_typedarray(env_, v, &is_ta) != napi_ok || !is_ta) fail_type(name, tname);
    napi_typedarray_type t;
    size_t len = 0;
    void* data = nullptr;
    napi_value ab = nullptr;
    if (napi_get_typedarray_info(env_, v, &t, &len, &data, &ab, nullptr) != napi_ok || t != type)
      fail_type(name, tname);
    if (len != n)
      throw Napi::RangeError::New(env_, std::string("rlhf-kernels native: argument '") + name + "' must have " +
                                            std::to_string(n) + " elements, got " + std::to_string(len));
    if (n == 0 || data == nullptr) { static T dummy[1]; return dummy; }
    const char* b = static_cast<const char*>(data);
    for (size_t k = 0; k < nspans_; ++k)
      if ((out || spans_[k].out) && b < spans_[k].end && spans_[k].begin < b + n * sizeof(T))
        throw Napi::RangeError::New(env_, std::string("rlhf-kernels native: argument '") + name +
                                              "' shares memory with argument '" + spans_[k].name + "'");
    if (nspans_ < kMaxSpans) spans_[nspans_++] = {name, b, b + n * sizeof(T), out};
    bool plain = true;  // a SharedArrayBuffer is not an ArrayBuffer to napi_is_arraybuffer
    if (copy_shared && (napi_is_arraybuffer(env_, ab, &plain) != napi_ok || !plain)) {
      copies_.emplace_back(new char[n * sizeof(T)]);
      std::memcpy(copies_.back().get(), data, n * sizeof(T));
      return reinterpret_cast<T*>(copies_.back().get());
    }
    return static_cast<T*>(data);
  }
  struct Span { const char* name; const char* begin; const char* end; bool out; };
  static constexpr size_t kMaxSpans = 48;
  const Napi::CallbackInfo& info_;
  Napi::Env env_;
  size_t i_ = 0;
  Span spans_[kMaxSpans];
  size_t nspans_ = 0;
  std::vector<std::unique_ptr<char[]>> copies_;
};

// Multiplies sizes, throwing RangeError on overflow of 2^53.
inline size_t mul_sizes(Napi::Env env, size_t a, size_t b, const char* what) {
  if (a != 0 && b > (size_t)9007199254740991ULL / a)
    throw Napi::RangeError::New(env, std::string("rlhf-kernels native: ") + what + " is too large");
  return a * b;
}

// Runs a CUDA entry point (or throws if the addon was built without CUDA).
#ifdef RK_WITH_CUDA
#define RK_CUDA_CALL(env, fn, args)                                                   \
  do {                                                                                \
    char rk_err_[512] = {0};                                                          \
    if (fn(args, rk_err_, sizeof rk_err_) != 0)                                       \
      throw Napi::Error::New(env, std::string("rlhf-kernels cuda: ") + rk_err_);      \
  } while (0)
#else
#define RK_CUDA_CALL(env, fn, args) \
  throw Napi::Error::New(env, "rlhf-kernels: backend 'cuda' unavailable: the addon was built without CUDA (run npm run build:cuda)")
#endif

// Each op family registers its functions here (addon/<family>.cc).
using Registrar = void (*)(Napi::Env, Napi::Object);
void register_rewards(Napi::Env, Napi::Object);
void register_advantages(Napi::Env, Napi::Object);
void register_logprobs(Napi::Env, Napi::Object);
void register_preference(Napi::Env, Napi::Object);
void register_ppo(Napi::Env, Napi::Object);
void register_prepack(Napi::Env, Napi::Object);
void register_sampling(Napi::Env, Napi::Object);

}  // namespace rk_addon
