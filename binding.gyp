{
  "variables": { "rk_sanitize%": "none" },
  "targets": [{
    "target_name": "rlhf_kernels",
    "sources": ["<!@(ls -1 src/addon/*.cc src/cpu/*.cc)", "src/capi/cuda_stubs.cc"],
    "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
    "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS", "NODE_ADDON_API_CPP_EXCEPTIONS_ALL"],
    "cflags!": ["-fno-exceptions"],
    "cflags_cc!": ["-fno-exceptions", "-std=gnu++17", "-std=gnu++20"],
    "cflags_cc": ["-std=c++17", "-O3", "-fno-math-errno", "-fno-trapping-math", "-fno-thread-jumps", "-fvisibility=hidden", "-Wall", "-Wno-unused-function"],
    "conditions": [
      ["rk_sanitize=='asan'", {
        "cflags_cc": ["-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-fno-sanitize-recover=undefined", "-g", "-O1"],
        "ldflags": ["-fsanitize=address,undefined"]
      }]
    ]
  }]
}
