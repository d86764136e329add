// N-API glue of the logprobs family (filled in by its issue).
#include "args.hpp"

namespace rk_addon {
void register_logprobs(Napi::Env, Napi::Object) {}
}  // namespace rk_addon
