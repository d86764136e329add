// N-API glue of the preference family (filled in by its issue).
#include "args.hpp"

namespace rk_addon {
void register_preference(Napi::Env, Napi::Object) {}
}  // namespace rk_addon
