// N-API glue of the ppo family (filled in by its issue).
#include "args.hpp"

namespace rk_addon {
void register_ppo(Napi::Env, Napi::Object) {}
}  // namespace rk_addon
