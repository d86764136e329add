// N-API glue of the prepack family (filled in by its issue).
#include "args.hpp"

namespace rk_addon {
void register_prepack(Napi::Env, Napi::Object) {}
}  // namespace rk_addon
