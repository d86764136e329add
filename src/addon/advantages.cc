// N-API glue of the advantages family (filled in by its issue).
#include "args.hpp"

namespace rk_addon {
void register_advantages(Napi::Env, Napi::Object) {}
}  // namespace rk_addon
