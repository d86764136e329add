// N-API glue of the sampling family (filled in by its issue).
#include "args.hpp"

namespace rk_addon {
void register_sampling(Napi::Env, Napi::Object) {}
}  // namespace rk_addon
